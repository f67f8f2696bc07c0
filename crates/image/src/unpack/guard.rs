//! A size cap on tar extension headers, enforced below the `tar` crate.
//!
//! `tar` 0.4 reads GNU long names and long links (`L`, `K`) and PAX
//! extended headers (`x`, and `g` when we ask for an entry's PAX records)
//! wholly into memory, trusting the size the header declares. A gzip bomb
//! holding one `L` header that claims 8 GiB of name would make us allocate
//! 8 GiB. [`HeaderGuard`] sits between the layer stream and the tar crate:
//! it passes every byte through unchanged and in order (the caller hashes
//! them for the diff_id), follows the tar block structure exactly as the
//! tar crate does, and fails with [`io::ErrorKind::InvalidData`] when an
//! extension header declares more than [`EXTENSION_LIMIT`] bytes, before
//! any of that entry's data is passed on.
//!
//! Mirroring the tar crate (`archive.rs`, `next_entry_raw`/`next_entry`/
//! `parse_sparse_header`) matters: if the guard lost track of where headers
//! are, it would judge file contents as headers and miss the real ones. So
//! the header fields are read with the tar crate's own parsers, an entry's
//! data length is its size (octal or base-256) rounded up to 512, a pending
//! PAX `size=` record overrides the size of the next entry that is not an
//! extension header, GNU sparse extension blocks follow an `S` header whose
//! `isextended` byte is 1, and the first zero block ends the archive (we
//! never set `ignore_zeros`). A header the tar crate will itself refuse
//! (bad checksum, unparsable size) ends the interpretation: the tar crate
//! stops reading entries there, and the bytes pass through as they are.

use std::io::{self, Read};

use tar::{Header, PaxExtensions};

/// The most an extension header (`L`, `K`, `x`, `g`) may declare.
pub const EXTENSION_LIMIT: u64 = 1 << 20;
const BLOCK: usize = 512;
/// Offset of `isextended` in a GNU sparse extension block.
const EXT_ISEXTENDED: usize = 504;

/// An extension header declared more than [`EXTENSION_LIMIT`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tar extension header '{kind}' of {size} bytes exceeds the 1 MiB limit")]
pub struct ExtensionTooLarge {
    /// The entry type byte (`L`, `K`, `x` or `g`).
    pub kind: char,
    /// The size the header declares.
    pub size: u64,
}

impl From<ExtensionTooLarge> for io::Error {
    fn from(e: ExtensionTooLarge) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Where the stream stands in the tar block structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The next block is an entry header.
    Header,
    /// The next block is a GNU sparse extension block; `data` bytes of
    /// entry data (padding included) follow the last one.
    SparseExt { data: u64 },
    /// `left` bytes of entry data and padding; the first `capture` of them
    /// are PAX records, kept for the next entry.
    Data { left: u64, capture: u64 },
    /// End of archive, or a header the tar crate refuses: no more parsing.
    Through,
    /// An extension header was too large; every read fails.
    Refused(ExtensionTooLarge),
}

/// A pass-through reader that refuses oversized tar extension headers.
pub struct HeaderGuard<R: Read> {
    inner: R,
    state: State,
    /// A header or sparse extension block being gathered, then handed on.
    block: [u8; BLOCK],
    filled: usize,
    served: usize,
    /// Records of a PAX `x` header not yet consumed by an entry.
    pax: Option<Vec<u8>>,
}

impl<R: Read> HeaderGuard<R> {
    pub fn new(inner: R) -> HeaderGuard<R> {
        HeaderGuard {
            inner,
            state: State::Header,
            block: [0; BLOCK],
            filled: 0,
            served: 0,
            pax: None,
        }
    }

    /// Hands on staged block bytes.
    fn serve(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.filled - self.served);
        buf[..n].copy_from_slice(&self.block[self.served..self.served + n]);
        self.served += n;
        if self.served == self.filled {
            (self.filled, self.served) = (0, 0);
        }
        n
    }

    /// Gathers a whole block from `inner`; judges it once complete.
    fn gather(&mut self) -> io::Result<()> {
        while self.filled < BLOCK {
            match self.inner.read(&mut self.block[self.filled..])? {
                0 if self.filled == 0 => return Ok(()),
                // A torn block: the tar crate fails on it, nothing to judge.
                0 => {
                    self.state = State::Through;
                    return Ok(());
                }
                n => self.filled += n,
            }
        }
        self.state = match self.state {
            State::SparseExt { data } if self.block[EXT_ISEXTENDED] == 1 => {
                State::SparseExt { data }
            }
            State::SparseExt { data } => State::Data {
                left: data,
                capture: 0,
            },
            _ => self.judge_header()?,
        };
        Ok(())
    }

    /// The state after the header in `self.block`, as the tar crate reads it.
    fn judge_header(&mut self) -> Result<State, ExtensionTooLarge> {
        if self.block.iter().all(|b| *b == 0) {
            return Ok(State::Through);
        }
        let h = Header::from_byte_slice(&self.block);
        let Ok(size) = h.entry_size() else {
            return Ok(State::Through);
        };
        let ty = h.entry_type();
        let is_ext = ty.is_gnu_longname()
            || ty.is_gnu_longlink()
            || ty.is_pax_local_extensions()
            || ty.is_pax_global_extensions();
        if is_ext && size > EXTENSION_LIMIT {
            let kind = char::from(ty.as_byte());
            let e = ExtensionTooLarge { kind, size };
            self.state = State::Refused(e);
            return Err(e);
        }
        if !checksum_ok(h) {
            return Ok(State::Through);
        }
        let recognized = h.as_gnu().is_some() || h.as_ustar().is_some();
        let collected = recognized
            && (ty.is_gnu_longname() || ty.is_gnu_longlink() || ty.is_pax_local_extensions());
        let pax_size = match &self.pax {
            Some(records) if !is_ext => pax_size(records),
            _ => None,
        };
        let size = pax_size.unwrap_or(size);
        let capture = if recognized && ty.is_pax_local_extensions() {
            self.pax = Some(Vec::new());
            size
        } else {
            if !collected {
                // The entry the pending extensions describe: consumed.
                self.pax = None;
            }
            0
        };
        let Some(data) = size.checked_add(BLOCK as u64 - 1) else {
            return Ok(State::Through);
        };
        let data = data & !(BLOCK as u64 - 1);
        if !ty.is_gnu_sparse() {
            return Ok(State::Data {
                left: data,
                capture,
            });
        }
        Ok(match h.as_gnu() {
            None => State::Through,
            Some(gnu) if gnu.is_extended() => State::SparseExt { data },
            Some(_) => State::Data {
                left: data,
                capture: 0,
            },
        })
    }

    /// Passes on entry data, keeping PAX records as they go by.
    fn data(&mut self, buf: &mut [u8], left: u64, capture: u64) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            // Truncated archive: the tar crate fails on it.
            self.state = State::Through;
            return Ok(0);
        }
        let kept = n.min(usize::try_from(capture).unwrap_or(usize::MAX));
        if let Some(pax) = self.pax.as_mut().filter(|_| kept > 0) {
            pax.extend_from_slice(&buf[..kept]);
        }
        self.state = match left - n as u64 {
            0 => State::Header,
            left => State::Data {
                left,
                capture: capture - kept as u64,
            },
        };
        Ok(n)
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Refused(e) => return Err(e.into()),
                _ if self.served < self.filled => return Ok(self.serve(buf)),
                State::Through => return self.inner.read(buf),
                State::Data { left: 0, .. } => self.state = State::Header,
                State::Data { left, capture } => return self.data(buf, left, capture),
                State::Header | State::SparseExt { .. } => {
                    self.gather()?;
                    if self.filled == 0 {
                        return Ok(0);
                    }
                }
            }
        }
    }
}

/// The tar crate's header checksum test.
fn checksum_ok(h: &Header) -> bool {
    let b = h.as_bytes();
    let sum = b[..148]
        .iter()
        .chain(&b[156..])
        .map(|x| u32::from(*x))
        .sum::<u32>()
        + 8 * 32;
    h.cksum().is_ok_and(|c| c == sum)
}

/// The `size` record of PAX data, found as the tar crate finds it: the
/// first `size` key; a malformed record before it, or a bad value, is none.
fn pax_size(records: &[u8]) -> Option<u64> {
    for ext in PaxExtensions::new(records) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use tar::{EntryType, GnuExtSparseHeader, Header};

    use super::*;
    use crate::unpack::{unpack_layer, UnpackError, UnpackOptions};

    const HUGE: u64 = 8 << 30;
    const BOMB_CAP: u64 = 64 << 20;

    /// Hands out at most `chunk` bytes per read, to split blocks anywhere.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// `head`, then zeros (never allocated), counting what is read. It
    /// fails past [`BOMB_CAP`] so that a broken guard fails the test
    /// instead of eating the machine's memory.
    struct Bomb {
        head: Vec<u8>,
        pos: u64,
    }

    impl Read for Bomb {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let at = usize::try_from(self.pos).unwrap_or(usize::MAX);
            let head = self.head.get(at..).unwrap_or_default();
            if self.pos > BOMB_CAP {
                return Err(io::Error::other("bomb read past its cap"));
            }
            let n = buf.len();
            let h = head.len().min(n);
            buf[..h].copy_from_slice(&head[..h]);
            buf[h..n].fill(0);
            self.pos += n as u64;
            Ok(n)
        }
    }

    fn through(data: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        HeaderGuard::new(Trickle { data, chunk }).read_to_end(&mut out)?;
        Ok(out)
    }

    /// (type, path, link, size, contents) of every entry the tar crate reads.
    type Listed = (u8, Vec<u8>, Option<Vec<u8>>, u64, Vec<u8>);

    fn list(r: impl Read) -> Vec<Listed> {
        let mut a = tar::Archive::new(r);
        let mut v = Vec::new();
        for e in a.entries().expect("entries") {
            let mut e = e.expect("entry");
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("entry data");
            let link = e.link_name_bytes().map(|l| l.into_owned());
            let ty = e.header().entry_type().as_byte();
            v.push((ty, e.path_bytes().into_owned(), link, e.size(), data));
        }
        let mut rest = Vec::new();
        a.into_inner().read_to_end(&mut rest).expect("trailer");
        v
    }

    fn header(ty: EntryType, gnu: bool, name: &str, size: u64) -> Header {
        let mut h = if gnu {
            Header::new_gnu()
        } else {
            Header::new_ustar()
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(ty);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        h
    }

    fn pax_body(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = 3 + k.len() + v.len();
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend(format!("{len} {k}=").as_bytes());
            body.extend(*v);
            body.push(b'\n');
        }
        body
    }

    /// An `S` entry whose map lives in two extension blocks.
    fn append_sparse(b: &mut tar::Builder<Vec<u8>>) {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..6].copy_from_slice(b"sparse");
        h.set_entry_type(EntryType::GNUSparse);
        h.set_mode(0o644);
        h.set_size(1024);
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.set_real_size(2048);
        gnu.set_is_extended(true);
        h.set_cksum();
        let mut ext = [GnuExtSparseHeader::new(), GnuExtSparseHeader::new()];
        ext[0].sparse[0].set_offset(512);
        ext[0].sparse[0].set_length(512);
        ext[0].set_is_extended(true);
        ext[1].sparse[0].set_offset(1536);
        ext[1].sparse[0].set_length(512);
        let w = b.get_mut();
        w.write_all(h.as_bytes()).expect("write");
        for e in &ext {
            w.write_all(e.as_bytes()).expect("write");
        }
        // Data that looks like headers: a guard lost in the map refuses it.
        let fake = header(EntryType::GNULongName, true, "././@LongLink", HUGE);
        w.write_all(fake.as_bytes()).expect("write");
        w.write_all(fake.as_bytes()).expect("write");
    }

    fn valid_archive() -> Vec<u8> {
        let long_dir = "d".repeat(120);
        let gnu_name = format!("{long_dir}/{}", "g".repeat(150));
        let gnu_link = format!("{long_dir}/{}", "h".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, format!("{long_dir}/"), io::empty())
            .expect("dir");
        let mut h = Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(700);
        b.append_data(&mut h, &gnu_name, &[b'g'; 700][..])
            .expect("long name");
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, &gnu_link, &gnu_name)
            .expect("long link");
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "sym", &gnu_link).expect("symlink");
        // PAX `size` overrides the header's 0; the data hides a fake `L`.
        let pax_name = format!("{long_dir}/{}", "p".repeat(200));
        let body = pax_body(&[("path", pax_name.as_bytes()), ("size", b"1000")]);
        let x = header(EntryType::XHeader, false, "PaxHeaders/p", body.len() as u64);
        b.append(&x, &body[..]).expect("pax");
        let mut data = header(EntryType::GNULongName, true, "././@LongLink", HUGE)
            .as_bytes()
            .to_vec();
        data.resize(1000, b'p');
        b.append(&header(EntryType::Regular, false, "short", 0), &data[..])
            .expect("pax file");
        append_sparse(&mut b);
        let body = pax_body(&[("comment", b"global")]);
        let g = header(EntryType::XGlobalHeader, false, "global", body.len() as u64);
        b.append(&g, &body[..]).expect("global");
        let mut tar = b.into_inner().expect("finish");
        tar.extend_from_slice(&[0; 1024]);
        tar.extend_from_slice(b"trailing bytes after the end of the archive");
        tar
    }

    #[test]
    fn valid_archive_passes_unchanged_and_lists_the_same() {
        let tar = valid_archive();
        for chunk in [1, 7, 512, 100_000] {
            assert!(
                through(&tar, chunk).expect("valid archive") == tar,
                "chunk {chunk}"
            );
        }
        let direct = list(&tar[..]);
        let names: Vec<u8> = direct.iter().map(|e| e.0).collect();
        assert_eq!(names, b"50120Sg");
        assert_eq!(direct[1].1.len(), 271, "GNU long name");
        assert_eq!(direct[2].2.as_ref().map(Vec::len), Some(271), "long link");
        assert_eq!(
            (direct[4].1.len(), direct[4].3),
            (321, 1000),
            "PAX path and size"
        );
        assert_eq!(direct[5].4.len(), 2048, "sparse contents");
        for chunk in [1, 7, 4096] {
            let guarded = list(HeaderGuard::new(Trickle { data: &tar, chunk }));
            assert!(guarded == direct, "chunk {chunk}");
        }
    }

    #[test]
    fn extension_of_exactly_the_limit_passes() {
        let mut b = tar::Builder::new(Vec::new());
        let mut name = vec![b'n'; EXTENSION_LIMIT as usize];
        name[EXTENSION_LIMIT as usize - 1] = 0;
        let l = header(
            EntryType::GNULongName,
            true,
            "././@LongLink",
            EXTENSION_LIMIT,
        );
        b.append(&l, &name[..]).expect("long name");
        b.append(&header(EntryType::Regular, true, "f", 1), &b"x"[..])
            .expect("file");
        let tar = b.into_inner().expect("finish");
        assert!(through(&tar, 65536).expect("at the limit") == tar);
        let listed = list(HeaderGuard::new(&tar[..]));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.len(), EXTENSION_LIMIT as usize - 1);
    }

    /// The first error the tar crate meets listing `a`.
    fn first_error<R: Read>(a: &mut tar::Archive<R>) -> io::Error {
        for e in a.entries().expect("entries") {
            if let Err(e) = e {
                return e;
            }
        }
        panic!("the tar crate must see the refusal")
    }

    fn refused(head: Vec<u8>, want: &str) {
        let mut bomb = Bomb { head, pos: 0 };
        let err = HeaderGuard::new(&mut bomb)
            .read_to_end(&mut Vec::new())
            .expect_err("must be refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), want);
        assert!(bomb.pos < EXTENSION_LIMIT + 512, "read {} bytes", bomb.pos);

        bomb.pos = 0;
        let mut a = tar::Archive::new(HeaderGuard::new(&mut bomb));
        let err = first_error(&mut a);
        assert_eq!(err.to_string(), want);
        drop(a);
        assert!(bomb.pos < EXTENSION_LIMIT + 512, "read {} bytes", bomb.pos);
    }

    #[test]
    fn huge_long_name_is_refused_before_its_data() {
        let h = header(EntryType::GNULongName, true, "././@LongLink", HUGE);
        assert_eq!(h.as_old().size[0] & 0x80, 0x80, "size in base-256");
        refused(
            h.as_bytes().to_vec(),
            "tar extension header 'L' of 8589934592 bytes exceeds the 1 MiB limit",
        );
    }

    #[test]
    fn large_pax_and_long_link_headers_are_refused() {
        let two_mib = 2 << 20;
        for (ty, gnu, c) in [
            (EntryType::XHeader, false, 'x'),
            (EntryType::XGlobalHeader, false, 'g'),
            (EntryType::GNULongLink, true, 'K'),
        ] {
            let h = header(ty, gnu, "ext", two_mib);
            let want =
                format!("tar extension header '{c}' of {two_mib} bytes exceeds the 1 MiB limit");
            refused(h.as_bytes().to_vec(), &want);
        }
        let mut h = Header::new_old();
        h.set_entry_type(EntryType::GNULongName);
        h.set_size(EXTENSION_LIMIT + 1);
        h.set_cksum();
        let want = "tar extension header 'L' of 1048577 bytes exceeds the 1 MiB limit";
        refused(h.as_bytes().to_vec(), want);
    }

    #[test]
    fn huge_long_name_after_entries_is_refused() {
        let mut b = tar::Builder::new(Vec::new());
        append_sparse(&mut b);
        // PAX `size=0` makes the next header start right after this one.
        let body = pax_body(&[("size", b"0")]);
        let x = header(EntryType::XHeader, false, "PaxHeaders/f", body.len() as u64);
        b.append(&x, &body[..]).expect("pax");
        let f = header(EntryType::Regular, false, "f", 512);
        b.get_mut().write_all(f.as_bytes()).expect("write");
        let l = header(EntryType::GNULongName, true, "././@LongLink", HUGE);
        b.get_mut().write_all(l.as_bytes()).expect("write");
        let head = b.get_ref().clone();
        let want = "tar extension header 'L' of 8589934592 bytes exceeds the 1 MiB limit";
        refused(head, want);
    }

    #[test]
    fn unpack_layer_names_the_oversized_header() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let h = header(EntryType::GNULongName, true, "././@LongLink", HUGE);
        let mut bomb = Bomb {
            head: h.as_bytes().to_vec(),
            pos: 0,
        };
        match unpack_layer(&mut bomb, tmp.path(), &UnpackOptions::default()) {
            Err(e @ UnpackError::Read(_)) => assert_eq!(
                e.to_string(),
                "read layer tar: tar extension header 'L' of 8589934592 bytes exceeds the 1 MiB limit"
            ),
            other => panic!("expected a read error, got {other:?}"),
        }
        assert!(bomb.pos < EXTENSION_LIMIT + 512, "read {} bytes", bomb.pos);
        let left = std::fs::read_dir(tmp.path()).expect("read dir").count();
        assert_eq!(left, 0, "nothing may be unpacked");
    }
}
