//! A tar entry of a layer, validated once at the border and turned into a
//! typed description of what to create.
//!
//! Nothing here touches the filesystem: names are cleaned lexically (a
//! `..` that would climb above the layer root is refused, a leading `/` is
//! dropped, as Docker does), whiteouts are recognised by name, and PAX
//! records (high-resolution mtime, `SCHILY.xattr.*`) are parsed. The tar
//! crate already folds GNU long names/links and PAX `path`/`linkpath`/
//! `size`/`uid`/`gid` into the entry it hands us.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::{EntryError, Whiteouts};

/// Prefix of AUFS-style whiteout names in layer tars.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The whiteout that marks its directory opaque.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Other `.wh..wh.` names are AUFS bookkeeping (hard link dirs), ignored.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";
/// Overlay's own xattrs: a layer that carries them could forge whiteouts,
/// opaque directories or redirects, so they never come from the tar.
const FORBIDDEN_XATTR_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

/// Ownership, permission bits and time of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits incl. setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub mtime: Timestamp,
}

/// What an entry asks to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink {
        target: PathBuf,
    },
    /// A hard link to `target`, a cleaned path inside the layer.
    HardLink {
        target: PathBuf,
    },
    Fifo,
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    /// `dir/.wh.NAME`: `path` is `dir/NAME`, to be hidden.
    Whiteout,
    /// `dir/.wh..wh..opq`: `path` is `dir`, to be made opaque.
    Opaque,
    /// Nothing to do (PAX global headers, AUFS metadata).
    Skip,
}

/// A validated layer entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerEntry {
    /// Cleaned and relative to the layer root; empty for the root itself.
    pub path: PathBuf,
    pub kind: Kind,
    pub meta: Meta,
    /// Extended attributes to set (name, value), overlay's already removed.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl LayerEntry {
    /// Validates the entry `e` of a layer tar.
    pub(crate) fn from_tar<R: Read>(
        e: &mut tar::Entry<'_, R>,
        whiteouts: Whiteouts,
    ) -> Result<LayerEntry, EntryError> {
        let path = clean(&e.path_bytes())?;
        let h = e.header();
        let old = h.as_old();
        let mut meta = Meta {
            uid: numeric(&old.uid, h.uid())? as u32,
            gid: numeric(&old.gid, h.gid())? as u32,
            mode: numeric(&old.mode, h.mode().map(u64::from))? as u32 & 0o7777,
            mtime: Timestamp {
                sec: numeric(&old.mtime, h.mtime())? as i64,
                nsec: 0,
            },
        };
        let kind = kind_of(e, h.entry_type())?;
        let mut xattrs = Vec::new();
        if let Some(pax) = e.pax_extensions().map_err(EntryError::Header)? {
            for ext in pax {
                let ext = ext.map_err(EntryError::Header)?;
                pax_record(ext.key_bytes(), ext.value_bytes(), &mut meta, &mut xattrs);
            }
        }
        let (path, kind) = match (&kind, whiteouts) {
            (Kind::File, Whiteouts::Overlay) => whiteout(path)?,
            _ => (path, kind),
        };
        Ok(LayerEntry {
            path,
            kind,
            meta,
            xattrs,
        })
    }
}

/// A numeric header field; one left blank (all NUL or spaces) reads as 0,
/// as Go's archive/tar (and so Docker) reads it.
fn numeric(raw: &[u8], parsed: std::io::Result<u64>) -> Result<u64, EntryError> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        other => other.map_err(EntryError::Header),
    }
}

fn kind_of<R: Read>(e: &tar::Entry<'_, R>, t: EntryType) -> Result<Kind, EntryError> {
    let h = e.header();
    let dev = || -> Result<(u32, u32), EntryError> {
        let major = h.device_major().map_err(EntryError::Header)?.unwrap_or(0);
        let minor = h.device_minor().map_err(EntryError::Header)?.unwrap_or(0);
        Ok((major, minor))
    };
    let link = || -> Result<Vec<u8>, EntryError> {
        match e.link_name_bytes() {
            Some(l) if !l.is_empty() => Ok(l.into_owned()),
            _ => Err(EntryError::NoLinkTarget),
        }
    };
    Ok(match t {
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => Kind::Symlink {
            target: PathBuf::from(OsStr::from_bytes(&link()?)),
        },
        EntryType::Link => {
            let raw = link()?;
            let target = clean(&raw).map_err(|_| EntryError::LinkEscapes {
                target: String::from_utf8_lossy(&raw).into_owned(),
            })?;
            Kind::HardLink { target }
        }
        EntryType::Fifo => Kind::Fifo,
        EntryType::Char => {
            let (major, minor) = dev()?;
            Kind::CharDev { major, minor }
        }
        EntryType::Block => {
            let (major, minor) = dev()?;
            Kind::BlockDev { major, minor }
        }
        EntryType::XGlobalHeader => Kind::Skip,
        other => return Err(EntryError::Unsupported(other.as_byte() as char)),
    })
}

/// Applies one PAX record to `meta`/`xattrs`; records the tar crate already
/// applied (path, size, uid, gid) or that do not matter are ignored.
fn pax_record(key: &[u8], value: &[u8], meta: &mut Meta, xattrs: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    if key == b"mtime" {
        if let Some(t) = std::str::from_utf8(value).ok().and_then(parse_pax_time) {
            meta.mtime = t;
        }
    } else if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
        let forbidden = FORBIDDEN_XATTR_PREFIXES.iter().any(|p| name.starts_with(p));
        if !name.is_empty() && !forbidden && !name.contains(&0) {
            xattrs.push((name.to_vec(), value.to_vec()));
        }
    }
}

/// Parses a PAX time, `[-]SECONDS[.FRACTION]`.
pub(crate) fn parse_pax_time(s: &str) -> Option<Timestamp> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: i64 = int.parse().ok()?;
    let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
    let nsec: u32 = digits.parse().ok()?;
    Some(match (neg, nsec) {
        (false, _) => Timestamp { sec, nsec },
        (true, 0) => Timestamp { sec: -sec, nsec: 0 },
        (true, n) => Timestamp {
            sec: -sec - 1,
            nsec: 1_000_000_000 - n,
        },
    })
}

/// Cleans an entry name lexically: drops a leading `/`, `.` and empty
/// components, resolves `..` against what precedes it, and refuses a `..`
/// that would climb above the layer root. The empty path is the root.
pub(crate) fn clean(raw: &[u8]) -> Result<PathBuf, EntryError> {
    if raw.contains(&0) {
        return Err(EntryError::NulInName);
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(EntryError::Escapes);
                }
            }
            name => parts.push(name),
        }
    }
    Ok(parts
        .iter()
        .map(|p| Path::new(OsStr::from_bytes(p)))
        .collect())
}

/// Turns a regular-file entry named like a whiteout into its meaning.
fn whiteout(path: PathBuf) -> Result<(PathBuf, Kind), EntryError> {
    let name = match path.file_name() {
        Some(n) => n.as_bytes(),
        None => return Ok((path, Kind::File)),
    };
    if name == OPAQUE_MARKER {
        return Ok((parent_of(&path), Kind::Opaque));
    }
    if name.starts_with(AUFS_META_PREFIX) {
        return Ok((path, Kind::Skip));
    }
    let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok((path, Kind::File));
    };
    if hidden.is_empty() || hidden == b"." || hidden == b".." {
        return Err(EntryError::BadWhiteout);
    }
    let hidden = OsStr::from_bytes(hidden).to_os_string();
    Ok((parent_of(&path).join(hidden), Kind::Whiteout))
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(s: &str) -> Result<String, String> {
        clean(s.as_bytes())
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn names_are_cleaned_lexically() {
        assert_eq!(cleaned("./etc/passwd"), Ok("etc/passwd".into()));
        assert_eq!(cleaned("/etc//passwd"), Ok("etc/passwd".into()));
        assert_eq!(cleaned("usr/lib/../bin/"), Ok("usr/bin".into()));
        assert_eq!(cleaned("./"), Ok("".into()));
        assert_eq!(cleaned("a/b/../../c"), Ok("c".into()));
    }

    #[test]
    fn names_climbing_above_the_root_are_refused() {
        for bad in ["..", "../x", "a/../../x", "/../etc/passwd", "./.."] {
            assert!(
                matches!(clean(bad.as_bytes()), Err(EntryError::Escapes)),
                "{bad:?} must be refused as escaping"
            );
        }
        assert!(matches!(clean(b"a\0b"), Err(EntryError::NulInName)));
    }

    #[test]
    fn whiteouts_are_recognised() {
        let w = |s: &str| whiteout(PathBuf::from(s)).map_err(|e| e.to_string());
        assert_eq!(w("a/.wh.b"), Ok((PathBuf::from("a/b"), Kind::Whiteout)));
        assert_eq!(w(".wh.b"), Ok((PathBuf::from("b"), Kind::Whiteout)));
        assert_eq!(w("a/.wh..wh..opq"), Ok((PathBuf::from("a"), Kind::Opaque)));
        assert_eq!(w(".wh..wh..opq"), Ok((PathBuf::new(), Kind::Opaque)));
        assert_eq!(
            w("a/.wh..wh.plnk"),
            Ok((PathBuf::from("a/.wh..wh.plnk"), Kind::Skip))
        );
        assert_eq!(w("a/b.wh.c"), Ok((PathBuf::from("a/b.wh.c"), Kind::File)));
        for bad in ["a/.wh.", "a/.wh..", "a/.wh..."] {
            assert!(w(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        let t = |sec, nsec| Some(Timestamp { sec, nsec });
        assert_eq!(
            parse_pax_time("1700000000.123456789"),
            t(1700000000, 123456789)
        );
        assert_eq!(parse_pax_time("1700000000.5"), t(1700000000, 500000000));
        assert_eq!(
            parse_pax_time("1700000000.1234567891"),
            t(1700000000, 123456789)
        );
        assert_eq!(parse_pax_time("42"), t(42, 0));
        assert_eq!(parse_pax_time("-1.25"), t(-2, 750000000));
        assert_eq!(parse_pax_time("x1"), None);
        assert_eq!(parse_pax_time(""), None);
    }

    #[test]
    fn overlay_xattrs_from_the_tar_are_dropped() {
        let mut meta = Meta {
            uid: 0,
            gid: 0,
            mode: 0,
            mtime: Timestamp { sec: 0, nsec: 0 },
        };
        let mut x = Vec::new();
        pax_record(
            b"SCHILY.xattr.trusted.overlay.opaque",
            b"y",
            &mut meta,
            &mut x,
        );
        pax_record(
            b"SCHILY.xattr.user.overlay.redirect",
            b"/",
            &mut meta,
            &mut x,
        );
        pax_record(
            b"SCHILY.xattr.security.capability",
            b"\x01",
            &mut meta,
            &mut x,
        );
        pax_record(b"mtime", b"5.5", &mut meta, &mut x);
        assert_eq!(x, vec![(b"security.capability".to_vec(), b"\x01".to_vec())]);
        assert_eq!(
            meta.mtime,
            Timestamp {
                sec: 5,
                nsec: 500000000
            }
        );
    }
}
