//! Real unpacks as root: each hostile layer is built in memory, unpacked
//! into `<tmp>/layer`, and `<tmp>/outside` (a sentinel holding one file) is
//! checked to be exactly as it was.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use super::*;
use crate::compression::{decompress, Compression};

const VICTIM: &str = "original contents";

struct Scratch {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().expect("temp dir");
        let base = tmp.path().to_path_buf();
        let (dest, outside) = (base.join("layer"), base.join("outside"));
        fs::create_dir(&dest).expect("mkdir layer");
        fs::create_dir(&outside).expect("mkdir outside");
        fs::write(outside.join("victim"), VICTIM).expect("write victim");
        Scratch {
            _tmp: tmp,
            base,
            dest,
            outside,
        }
    }

    fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(tar, &self.dest, &UnpackOptions::default())
    }

    /// `p` inside the layer (absolute names are taken relative to it).
    fn at(&self, p: &str) -> PathBuf {
        self.dest.join(p.trim_start_matches('/'))
    }

    fn assert_outside_untouched(&self) {
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d)
                .expect("read dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&self.base),
            ["layer", "outside"],
            "nothing may appear next to the layer"
        );
        assert_eq!(
            names(&self.outside),
            ["victim"],
            "sentinel dir must keep exactly its file"
        );
        let victim = self.outside.join("victim");
        let meta = fs::symlink_metadata(&victim).expect("victim");
        assert!(meta.is_file(), "victim must stay a regular file");
        assert_eq!(meta.nlink(), 1, "victim must not gain a hard link");
        assert_eq!(fs::read_to_string(&victim).expect("read victim"), VICTIM);
    }
}

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: unpack tests need root");
    false
}

/// A layer tar written header by header, hostile names included.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn raw(
        &mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        link: &str,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_000_000_000);
        h.set_cksum();
        self.0.append(&h, data).expect("append");
        self
    }

    fn file(&mut self, name: &str, data: &str) -> &mut Self {
        self.raw(name, EntryType::Regular, 0o644, "", data.as_bytes())
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name, EntryType::Directory, 0o755, "", b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, EntryType::Symlink, 0o777, target, b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, EntryType::Link, 0o644, target, b"")
    }

    /// A PAX extended header for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = 3 + k.len() + v.len(); // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend(format!("{len} {k}=").as_bytes());
            body.extend(*v);
            body.push(b'\n');
        }
        self.raw("PaxHeaders/x", EntryType::XHeader, 0o644, "", &body)
    }

    fn with(&mut self, f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> &mut Self {
        f(&mut self.0);
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        b.into_inner().expect("finish tar")
    }
}

fn expect_refused(s: &Scratch, tar: &[u8], entry: &str, why: &str) {
    match s.unpack(tar) {
        Ok(stats) => panic!("entry {entry:?} must be refused, unpack succeeded: {stats:?}"),
        Err(e) => {
            let msg = e.to_string();
            let want = format!("layer entry {entry:?}: {why}");
            assert!(
                msg.starts_with(&want),
                "expected error {want:?}..., got {msg:?}"
            );
        }
    }
    s.assert_outside_untouched();
}

fn lgetxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(p.as_os_str().as_bytes()).expect("path");
    let name = CString::new(name).expect("name");
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the length passed.
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn dotdot_names_are_refused() {
    if !is_root() {
        return;
    }
    for name in ["../outside/victim", "a/../../outside/victim", "../pwned"] {
        let s = Scratch::new();
        let tar = Layer::new().file("ok", "x").file(name, "pwned").bytes();
        expect_refused(&s, &tar, name, "path escapes the layer");
    }
}

#[test]
fn absolute_names_land_inside_the_layer() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let abs = format!("{}/victim", s.outside.display());
    let tar = Layer::new()
        .file(&abs, "pwned")
        .file("/etc/abs", "a")
        .bytes();
    s.unpack(&tar).expect("unpack");
    assert_eq!(fs::read_to_string(s.at(&abs)).expect("read"), "pwned");
    assert_eq!(fs::read_to_string(s.at("etc/abs")).expect("read"), "a");
    s.assert_outside_untouched();
}

#[test]
fn writes_through_symlinks_stay_inside() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let out = s.outside.display().to_string();
    let tar = Layer::new()
        .symlink("abs", &out)
        .symlink("rel", "../../../../../../../../outside")
        .symlink("final", &format!("{out}/victim"))
        .dir(&format!("{}/", &out[1..]))
        .file("abs/victim", "pwned-abs")
        .dir("outside")
        .file("rel/victim", "pwned-rel")
        .file("final", "pwned-final")
        .bytes();
    s.unpack(&tar).expect("unpack");
    assert_eq!(
        fs::read_to_string(s.at(&format!("{out}/victim"))).expect("read"),
        "pwned-abs"
    );
    assert_eq!(
        fs::read_to_string(s.at("outside/victim")).expect("read"),
        "pwned-rel"
    );
    let fin = fs::symlink_metadata(s.at("final")).expect("final");
    assert!(
        fin.is_file(),
        "a file entry must replace the symlink, not write through it"
    );
    s.assert_outside_untouched();
}

#[test]
fn symlink_parent_to_missing_outside_dir_is_refused() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let out = s.outside.display().to_string();
    let tar = Layer::new()
        .symlink("evil", &out)
        .file("evil/victim", "pwned")
        .bytes();
    expect_refused(&s, &tar, "evil/victim", "resolve parent directory \"evil\"");
}

#[test]
fn hard_links_to_outside_are_refused() {
    if !is_root() {
        return;
    }
    type Case = fn(&str) -> Vec<u8>;
    let cases: [(Case, &str); 3] = [
        (
            |_| Layer::new().hardlink("l", "../outside/victim").bytes(),
            "hard link target",
        ),
        (
            |out| {
                Layer::new()
                    .symlink("evil", out)
                    .hardlink("l", "evil/victim")
                    .bytes()
            },
            "hard link to \"evil/victim\"",
        ),
        (
            |out| Layer::new().hardlink("l", &format!("{out}/victim")).bytes(),
            "hard link to",
        ),
    ];
    for (make, why) in cases {
        let s = Scratch::new();
        let tar = make(&s.outside.display().to_string());
        expect_refused(&s, &tar, "l", why);
    }
}

#[test]
fn symlink_replacing_a_directory_does_not_redirect_later_entries() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let out = s.outside.display().to_string();
    let tar = Layer::new()
        .dir("d/")
        .file("d/a", "a")
        .symlink("d", &out)
        .dir(&format!("{}/", &out[1..]))
        .file("d/victim", "pwned")
        .bytes();
    s.unpack(&tar).expect("unpack");
    let d = fs::symlink_metadata(s.at("d")).expect("d");
    assert!(d.file_type().is_symlink(), "d must now be the symlink");
    assert_eq!(
        fs::read_to_string(s.at(&format!("{out}/victim"))).expect("read"),
        "pwned"
    );
    s.assert_outside_untouched();
}

#[test]
fn whiteouts_naming_outside_are_refused() {
    if !is_root() {
        return;
    }
    for name in ["../.wh.victim", "a/../../outside/.wh.victim"] {
        let s = Scratch::new();
        let tar = Layer::new().file(name, "").bytes();
        expect_refused(&s, &tar, name, "path escapes the layer");
    }
    let s = Scratch::new();
    let tar = Layer::new().file("a/.wh..", "").bytes();
    expect_refused(&s, &tar, "a/.wh..", "whiteout names no file");
    let s = Scratch::new();
    let out = s.outside.display().to_string();
    let tar = Layer::new()
        .symlink("evil", &out)
        .file("evil/.wh.victim", "")
        .bytes();
    expect_refused(&s, &tar, "evil/.wh.victim", "resolve parent directory");
}

#[test]
fn whiteouts_and_opaque_dirs_become_overlay_form() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let tar = Layer::new()
        .dir("a/")
        .file("a/.wh..wh..opq", "")
        .file(".wh.gone", "")
        .file("b/.wh..wh.plnk", "")
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("forged/")
        .bytes();
    let stats = s.unpack(&tar).expect("unpack");
    let gone = fs::symlink_metadata(s.at("gone")).expect("whiteout");
    assert!(
        gone.file_type().is_char_device(),
        "whiteout must be a char device"
    );
    assert_eq!(gone.rdev(), 0, "whiteout must be device 0/0");
    assert_eq!(
        lgetxattr(&s.at("a"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert_eq!(
        lgetxattr(&s.at("forged"), "trusted.overlay.opaque"),
        None,
        "tar may not set overlay xattrs"
    );
    assert!(
        !s.at("b/.wh..wh.plnk").exists(),
        "aufs metadata must be skipped"
    );
    assert_eq!(stats.whiteouts, 2);
}

#[test]
fn modes_owners_and_times_are_kept() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let mut l = Layer::new();
    l.with(|b| {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o4755);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_size(2);
        h.set_mtime(1_600_000_000);
        b.append_data(&mut h, "bin/su", &b"su"[..]).expect("append");
    });
    l.raw("ro/", EntryType::Directory, 0o2555, "", b"")
        .file("ro/inner", "x")
        .raw("tmp/", EntryType::Directory, 0o1777, "", b"")
        .pax(&[("mtime", b"1700000000.123456789")])
        .file("precise", "p");
    let tar = l.bytes();
    s.unpack(&tar).expect("unpack");
    let su = fs::metadata(s.at("bin/su")).expect("su");
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid must survive the chown");
    assert_eq!((su.uid(), su.gid()), (1234, 5678));
    assert_eq!(su.mtime(), 1_600_000_000);
    let ro = fs::metadata(s.at("ro")).expect("ro");
    assert_eq!(
        ro.mode() & 0o7777,
        0o2555,
        "dir mode applied after its children"
    );
    assert_eq!(
        ro.mtime(),
        1_000_000_000,
        "dir mtime must survive its children"
    );
    assert_eq!(
        fs::metadata(s.at("tmp")).expect("tmp").mode() & 0o7777,
        0o1777
    );
    let p = fs::metadata(s.at("precise")).expect("precise");
    assert_eq!((p.mtime(), p.mtime_nsec()), (1_700_000_000, 123_456_789));
}

#[test]
fn security_capability_xattr_is_kept() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW (13).
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend(word.to_le_bytes());
    }
    let tar = Layer::new()
        .pax(&[
            ("SCHILY.xattr.security.capability", &cap),
            ("SCHILY.xattr.user.note", b"hi"),
        ])
        .raw("ping", EntryType::Regular, 0o755, "", b"ELF")
        .bytes();
    s.unpack(&tar).expect("unpack");
    assert_eq!(lgetxattr(&s.at("ping"), "security.capability"), Some(cap));
    assert_eq!(lgetxattr(&s.at("ping"), "user.note"), Some(b"hi".to_vec()));
}

#[test]
fn hard_links_symlinks_fifos_and_devices() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let mut l = Layer::new();
    l.file("etc/passwd", "root")
        .hardlink("etc/passwd-", "etc/passwd");
    l.symlink("etc/link", "/etc/passwd");
    l.raw("run/fifo", EntryType::Fifo, 0o600, "", b"");
    l.with(|b| {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_mode(0o666);
        h.set_device_major(1).expect("major");
        h.set_device_minor(3).expect("minor");
        h.set_size(0);
        b.append_data(&mut h, "dev/null", std::io::empty())
            .expect("append");
    });
    let tar = l.bytes();
    let stats = s.unpack(&tar).expect("unpack");
    let (a, b) = (
        fs::metadata(s.at("etc/passwd")).expect("passwd"),
        fs::metadata(s.at("etc/passwd-")).expect("passwd-"),
    );
    assert_eq!(a.ino(), b.ino(), "hard link must share the inode");
    assert_eq!(a.nlink(), 2);
    assert_eq!(
        fs::read_link(s.at("etc/link")).expect("link"),
        Path::new("/etc/passwd")
    );
    let fifo = fs::symlink_metadata(s.at("run/fifo")).expect("fifo");
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o600);
    let null = fs::symlink_metadata(s.at("dev/null")).expect("null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    assert_eq!((stats.entries, stats.bytes), (5, 4));
}

#[test]
fn pax_and_gnu_long_names() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let long_dir = "d".repeat(120);
    let pax_name = format!("{long_dir}/{}", "p".repeat(200));
    let gnu_name = format!("{long_dir}/{}", "g".repeat(150));
    let gnu_link = format!("{long_dir}/{}", "h".repeat(150));
    let mut l = Layer::new();
    l.pax(&[("path", pax_name.as_bytes())])
        .file("short-pax", "pax");
    l.with(|b| {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(3);
        b.append_data(&mut h, &gnu_name, &b"gnu"[..])
            .expect("long name");
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, &gnu_link, &gnu_name)
            .expect("long link");
    });
    let tar = l.bytes();
    s.unpack(&tar).expect("unpack");
    assert_eq!(
        fs::read_to_string(s.at(&pax_name)).expect("pax name"),
        "pax"
    );
    assert!(
        !s.at("short-pax").exists(),
        "the PAX path must win over the header name"
    );
    let (g, h) = (
        fs::metadata(s.at(&gnu_name)).expect("gnu name"),
        fs::metadata(s.at(&gnu_link)).expect("gnu link"),
    );
    assert_eq!(g.ino(), h.ino(), "GNU long link must link the long name");
}

#[test]
fn file_replaces_a_populated_directory() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let tar = Layer::new()
        .dir("x/")
        .file("x/y/z", "deep")
        .symlink("x/y/out", &s.outside.display().to_string())
        .file("x", "now a file")
        .bytes();
    s.unpack(&tar).expect("unpack");
    assert_eq!(fs::read_to_string(s.at("x")).expect("x"), "now a file");
    s.assert_outside_untouched();
}

fn sample_layer() -> Vec<u8> {
    Layer::new()
        .dir("etc/")
        .file("etc/hostname", "berth\n")
        .file("usr/bin/tool", &"t".repeat(100_000))
        .bytes()
}

#[test]
fn gzip_and_zstd_layers_unpack_through_decompress() {
    if !is_root() {
        return;
    }
    let tar = sample_layer();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
    for (blob, c) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
        assert_eq!(Compression::sniff(&blob), c);
        let s = Scratch::new();
        let r = decompress(&blob[..], c).expect("decoder");
        let stats = unpack_layer(r, &s.dest, &UnpackOptions::default()).expect("unpack");
        assert_eq!(
            fs::read_to_string(s.at("etc/hostname")).expect("hostname"),
            "berth\n"
        );
        assert_eq!(stats.bytes, 100_006, "{c}: bytes written");
    }
}

/// Hashes what passes, as the pull path's DigestReader does.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

#[test]
fn diff_id_covers_trailing_padding() {
    if !is_root() {
        return;
    }
    let mut tar = sample_layer();
    tar.resize(tar.len() + 9 * 1024 + 7, 0);
    let s = Scratch::new();
    let mut r = Hashing {
        inner: &tar[..],
        sha: Sha256::new(),
        n: 0,
    };
    unpack_layer(&mut r, &s.dest, &UnpackOptions::default()).expect("unpack");
    assert_eq!(r.n, tar.len() as u64, "every byte must be read");
    assert_eq!(
        r.sha.finalize()[..],
        Sha256::digest(&tar)[..],
        "diff_id must hash the whole stream"
    );
}

#[test]
fn root_entry_sets_the_layer_root_mode() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let tar = Layer::new()
        .raw("./", EntryType::Directory, 0o750, "", b"")
        .file("a", "a")
        .bytes();
    s.unpack(&tar).expect("unpack");
    assert_eq!(fs::metadata(&s.dest).expect("dest").mode() & 0o7777, 0o750);
    let s = Scratch::new();
    let tar = Layer::new().file("./", "x").bytes();
    assert!(
        s.unpack(&tar).is_err(),
        "a file may not replace the layer root"
    );
}
