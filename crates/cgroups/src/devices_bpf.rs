//! Device rules -> an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program, for
//! cgroup v2, which has no `devices.*` files.
//!
//! Like runc's `devicefilter`, the program is emitted as raw BPF
//! instructions by this module (no C compiler, no LLVM at run time). The
//! kernel calls it for every device open and mknod in the cgroup with a
//! `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! where the low 16 bits of `access_type` are the device type
//! (`BPF_DEVCG_DEV_BLOCK` 1, `BPF_DEVCG_DEV_CHAR` 2) and the high 16 bits
//! the access (`BPF_DEVCG_ACC_MKNOD` 1, `READ` 2, `WRITE` 4); it returns 1
//! to allow and 0 to deny.
//!
//! # Semantics
//!
//! The OCI rules are applied in order starting from "deny all", so the
//! **last** rule that matches a request decides it. The program checks the
//! rules in reverse order and returns at the first match; nothing matching
//! means deny. A rule matches when type, major and minor match (missing or
//! `-1` numbers and type `a` are wildcards) and:
//! * for an *allow* rule, every requested access bit is in the rule's
//!   access (a rule allowing `r` does not allow an `rw` open);
//! * for a *deny* rule, any requested access bit is in the rule's access
//!   (denying `w` denies an `rw` open).
//!
//! This equals the v1 devices controller for the rule lists runtimes use
//! (deny-all first, then allows); runc's devices emulator differs only in
//! corner cases of partially overlapping deny rules after allows.

use crate::resources::LinuxDeviceCgroup;
use crate::CgroupError;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8-byte kernel encoding (little endian: dst in the low nibble).
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

// Opcode parts from <linux/bpf_common.h> and <linux/bpf.h>.
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2; // device type
const R3: u8 = 3; // requested access
const R4: u8 = 4; // major
const R5: u8 = 5; // minor

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    Insn {
        code: BPF_LDX | BPF_MEM | BPF_W,
        dst,
        src,
        off,
        imm: 0,
    }
}

fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_ALU | op | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}

fn mov32_reg(dst: u8, src: u8) -> Insn {
    Insn {
        code: BPF_ALU | BPF_MOV | BPF_X,
        dst,
        src,
        off: 0,
        imm: 0,
    }
}

fn mov64_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_ALU64 | BPF_MOV | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}

/// Conditional jump to the end of the current rule block (offset patched
/// in [`finish_block`]; `off == -1` marks "to be patched").
fn jmp_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_JMP | op | BPF_K,
        dst,
        src: 0,
        off: -1,
        imm,
    }
}

fn jmp_reg(op: u8, dst: u8, src: u8) -> Insn {
    Insn {
        code: BPF_JMP | op | BPF_X,
        dst,
        src,
        off: -1,
        imm: 0,
    }
}

fn exit() -> Insn {
    Insn {
        code: BPF_JMP | BPF_EXIT,
        dst: 0,
        src: 0,
        off: 0,
        imm: 0,
    }
}

/// A validated rule in the program's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    allow: bool,
    /// `None`: any type.
    typ: Option<i32>,
    major: Option<u32>,
    minor: Option<u32>,
    access: i32,
}

fn parse_rule(d: &LinuxDeviceCgroup) -> Result<Rule, CgroupError> {
    // Same validation and messages as the v1 rule text.
    crate::resources::device_rule(d)?;
    let typ = match d.typ.as_deref().unwrap_or("a") {
        "b" => Some(DEV_BLOCK),
        "c" => Some(DEV_CHAR),
        _ => None,
    };
    let num = |n: Option<i64>, what: &str| -> Result<Option<u32>, CgroupError> {
        match n {
            None | Some(-1) => Ok(None),
            Some(v) => u32::try_from(v).map(Some).map_err(|_| {
                CgroupError::invalid(format!("devices.{what}"), format!("{v} is out of range"))
            }),
        }
    };
    let access = d
        .access
        .as_deref()
        .unwrap_or("rwm")
        .chars()
        .fold(0, |acc, c| {
            acc | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => ACC_MKNOD,
            }
        });
    Ok(Rule {
        allow: d.allow,
        typ,
        major: num(d.major, "major")?,
        minor: num(d.minor, "minor")?,
        access,
    })
}

/// Patch the placeholder jumps of a block to land just after it.
fn finish_block(block: &mut [Insn]) {
    let n = block.len();
    for (i, insn) in block.iter_mut().enumerate() {
        if insn.off == -1 && insn.code & 0x07 == BPF_JMP {
            insn.off = (n - i - 1) as i16;
        }
    }
}

fn rule_block(r: &Rule) -> Vec<Insn> {
    let mut b = Vec::new();
    if let Some(t) = r.typ {
        b.push(jmp_imm(BPF_JNE, R2, t));
    }
    if let Some(m) = r.major {
        b.push(jmp_imm(BPF_JNE, R4, m as i32));
    }
    if let Some(m) = r.minor {
        b.push(jmp_imm(BPF_JNE, R5, m as i32));
    }
    let all = ACC_READ | ACC_WRITE | ACC_MKNOD;
    if r.allow && r.access != all {
        // if ((access & rule) != access) skip: R1 is free after the loads.
        b.push(mov32_reg(R1, R3));
        b.push(alu32_imm(BPF_AND, R1, r.access));
        b.push(jmp_reg(BPF_JNE, R1, R3));
    } else if !r.allow && r.access != all {
        // if ((access & rule) == 0) skip
        b.push(mov32_reg(R1, R3));
        b.push(alu32_imm(BPF_AND, R1, r.access));
        b.push(jmp_imm(BPF_JEQ, R1, 0));
    }
    b.push(mov64_imm(R0, i32::from(r.allow)));
    b.push(exit());
    finish_block(&mut b);
    b
}

/// The program for `rules` (applied in order from "deny all").
pub fn device_filter(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, CgroupError> {
    let rules = rules
        .iter()
        .map(parse_rule)
        .collect::<Result<Vec<_>, _>>()?;
    let mut p = vec![
        ldx_w(R2, R1, 0),
        alu32_imm(BPF_AND, R2, 0xffff),
        ldx_w(R3, R1, 0),
        alu32_imm(BPF_RSH, R3, 16),
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ];
    for r in rules.iter().rev() {
        let block = rule_block(r);
        let wildcard = block.len() == 2;
        p.extend(block);
        if wildcard {
            // Matches everything: later (= earlier-listed) rules are dead.
            return Ok(p);
        }
    }
    p.push(mov64_imm(R0, 0));
    p.push(exit());
    Ok(p)
}

/// The program as the bytes `BPF_PROG_LOAD` takes.
pub fn encode(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(Insn::encode).collect()
}

/// A tiny interpreter of exactly the instructions [`device_filter`]
/// emits, for tests: what the kernel would answer.
#[cfg(test)]
pub(crate) fn eval(prog: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
    let mut r = [0u64; 11];
    let ctx = [((access as u32) << 16) | typ as u32, major, minor];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (d, s) = (i.dst as usize, i.src as usize);
        let src_val = if i.code & BPF_X != 0 {
            r[s]
        } else {
            i.imm as u32 as u64
        };
        pc += 1;
        match i.code {
            0x61 => r[d] = u64::from(ctx[(i.off / 4) as usize]),
            0x54 => r[d] = (r[d] as u32 & i.imm as u32) as u64,
            0x74 => r[d] = ((r[d] as u32) >> i.imm) as u64,
            0xbc => r[d] = r[s] as u32 as u64,
            0xb7 => r[d] = i.imm as i64 as u64,
            0x55 | 0x5d => {
                if r[d] != src_val {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            0x15 => {
                if r[d] == src_val {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            0x95 => return r[0],
            c => panic!("unexpected opcode {c:#x} at {}", pc - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: &str,
        major: Option<i64>,
        minor: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        LinuxDeviceCgroup {
            allow,
            typ: Some(typ.into()),
            major,
            minor,
            access: Some(acc.into()),
        }
    }

    /// The OCI default: deny all, mknod of anything, a few char devices.
    fn default_rules() -> Vec<LinuxDeviceCgroup> {
        vec![
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", None, None, "m"),
            rule(true, "b", None, None, "m"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(136), None, "rwm"),
            rule(true, "c", Some(1), Some(9), "r"),
        ]
    }

    #[test]
    fn prologue_loads_the_context() {
        let p = device_filter(&[]).unwrap();
        let want = [
            "6112000000000000", // r2 = *(u32 *)(r1 + 0)
            "54020000ffff0000", // w2 &= 0xffff
            "6113000000000000", // r3 = *(u32 *)(r1 + 0)
            "7403000010000000", // w3 >>= 16
            "6114040000000000", // r4 = *(u32 *)(r1 + 4)
            "6115080000000000", // r5 = *(u32 *)(r1 + 8)
            "b700000000000000", // r0 = 0
            "9500000000000000", // exit
        ];
        let got: Vec<String> = p
            .iter()
            .map(|i| i.encode().iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rule_block_jumps_past_itself() {
        let p = device_filter(&[rule(true, "c", Some(1), Some(3), "r")]).unwrap();
        // prologue(6) + [jne type, jne major, jne minor, mov, and, jne, mov r0, exit] + default(2)
        assert_eq!(p.len(), 6 + 8 + 2);
        let offs: Vec<i16> = p[6..14].iter().map(|i| i.off).collect();
        assert_eq!(offs, [7, 6, 5, 0, 0, 2, 0, 0]);
        assert_eq!(p[6].imm, DEV_CHAR);
        assert_eq!(p[7].imm, 1);
        assert_eq!(p[8].imm, 3);
        assert_eq!(p[10].imm, ACC_READ);
        assert_eq!(p[12], mov64_imm(R0, 1));
    }

    #[test]
    fn default_rules_allow_listed_devices_only() {
        let p = device_filter(&default_rules()).unwrap();
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(eval(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null rw");
        assert_eq!(eval(&p, DEV_CHAR, rw, 136, 7), 1, "pts rw");
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 9), 1, "urandom r");
        assert_eq!(
            eval(&p, DEV_CHAR, rw, 1, 9),
            0,
            "urandom rw (only r allowed)"
        );
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem r");
        assert_eq!(eval(&p, DEV_CHAR, ACC_MKNOD, 1, 1), 1, "mknod c 1:1");
        assert_eq!(eval(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1, "mknod b 8:0");
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "sda r");
    }

    #[test]
    fn last_matching_rule_wins() {
        let rules = vec![
            rule(true, "a", None, None, "rwm"),
            rule(false, "c", Some(1), None, "w"),
        ];
        let p = device_filter(&rules).unwrap();
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 0);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 1);
        // A wildcard allow at the end makes everything before it dead code.
        let mut rules = default_rules();
        rules.push(rule(true, "a", None, None, "rwm"));
        let p = device_filter(&rules).unwrap();
        assert_eq!(p.len(), 6 + 2);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 1), 1);
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            rule(true, "x", None, None, "r"),
            rule(true, "c", Some(-5), None, "r"),
            rule(true, "c", Some(1 << 40), None, "r"),
            rule(true, "c", None, None, "rq"),
        ] {
            assert!(
                device_filter(std::slice::from_ref(&bad)).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn encoding_is_8_bytes_per_insn() {
        let p = device_filter(&default_rules()).unwrap();
        assert_eq!(encode(&p).len(), p.len() * 8);
    }
}
