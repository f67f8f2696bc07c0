//! Layer compression: which codec a layer blob uses, and a streaming
//! decoder for it.
//!
//! A layer is streamed exactly once (registry -> digest -> decompress ->
//! untar), so decoding is a `Read` adapter, never a temporary file. The
//! manifest's media type says the codec; when it is unknown (foreign or
//! home-made media types, `docker load` archives) the first bytes tell, as
//! containerd and Docker also sniff.
//!
//! Gzip goes through flate2's zlib-rs backend, which runs at zlib-ng speed
//! without a C toolchain. `MultiGzDecoder` is required: some tools (pigz,
//! concatenated layers) write several gzip members, and a single-member
//! decoder would silently stop after the first one and fail the diff_id.

use std::io::{self, BufReader, Read};

/// Input buffer of the decoders: large enough that a layer of hundreds of
/// megabytes costs few `read` calls on the blob stream.
const INPUT_BUFFER: usize = 128 * 1024;

/// The codec of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (RFC 1952), possibly several concatenated members.
    Gzip,
    /// Zstandard, possibly several frames.
    Zstd,
}

const OCI_LAYER: &str = "application/vnd.oci.image.layer.";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.";

impl Compression {
    /// The codec a layer media type names, or `None` when the media type is
    /// not a layer type this crate knows (the caller then sniffs).
    ///
    /// Covers OCI `...layer.v1.tar`, `+gzip`, `+zstd` and their
    /// `nondistributable` (foreign) variants, and Docker's
    /// `...rootfs.diff.tar.gzip` and `...rootfs.foreign.diff.tar.gzip`.
    /// Media type parameters (`; charset=...`) are ignored.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        let mt = media_type.split(';').next().unwrap_or("").trim();
        let mt = mt.to_ascii_lowercase();
        if !(mt.starts_with(OCI_LAYER) || mt.starts_with(DOCKER_LAYER)) {
            return None;
        }
        if mt.ends_with("tar+gzip") || mt.ends_with("tar.gzip") || mt.ends_with("tar.gz") {
            Some(Compression::Gzip)
        } else if mt.ends_with("tar+zstd") || mt.ends_with("tar.zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// The codec the first bytes of a blob reveal by their magic number;
    /// anything unrecognised is taken as a plain tar.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            // A zstd skippable frame (magic 0x184D2A50..=0x184D2A5F).
            [b0, 0x2a, 0x4d, 0x18, ..] if b0 & 0xf0 == 0x50 => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// The short name used in logs and progress lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reader of the decompressed stream of `r`.
///
/// Errors only when the zstd decoder cannot be set up; corrupt input shows
/// up as an error of the returned reader's `read`.
pub fn decompress<'a, R: Read + 'a>(r: R, c: Compression) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(INPUT_BUFFER, r),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(
            BufReader::with_capacity(INPUT_BUFFER, r),
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn media_types_name_their_codec() {
        let cases = [
            (
                "application/vnd.oci.image.layer.v1.tar",
                Some(Compression::None),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Some(Compression::Zstd),
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar",
                Some(Compression::None),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip; foo=bar",
                Some(Compression::Gzip),
            ),
            ("application/vnd.oci.image.config.v1+json", None),
            ("application/vnd.oci.image.layer.v1.tar+encrypted", None),
            ("", None),
        ];
        for (mt, want) in cases {
            assert_eq!(Compression::from_media_type(mt), want, "media type {mt:?}");
        }
    }

    #[test]
    fn magic_bytes_are_sniffed() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(
            Compression::sniff(&[0x5e, 0x2a, 0x4d, 0x18]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/passwd\0"), Compression::None);
        assert_eq!(Compression::sniff(&[0x1f]), Compression::None);
        assert_eq!(Compression::sniff(&[]), Compression::None);
    }

    fn sample() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn read_all(mut r: Box<dyn Read + '_>) -> Vec<u8> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("decompress");
        out
    }

    #[test]
    fn gzip_round_trip_reads_every_member() {
        let data = sample();
        let (a, b) = data.split_at(data.len() / 3);
        let mut blob = Vec::new();
        for part in [a, b] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).expect("gzip");
            blob.extend(enc.finish().expect("gzip"));
        }
        assert_eq!(Compression::sniff(&blob), Compression::Gzip);
        let out = read_all(decompress(&blob[..], Compression::Gzip).expect("decoder"));
        assert!(
            out == data,
            "two gzip members must decode to the whole input"
        );
    }

    #[test]
    fn zstd_round_trip_reads_every_frame() {
        let data = sample();
        let (a, b) = data.split_at(data.len() / 2);
        let mut blob = zstd::encode_all(a, 3).expect("zstd");
        blob.extend(zstd::encode_all(b, 3).expect("zstd"));
        assert_eq!(Compression::sniff(&blob), Compression::Zstd);
        let out = read_all(decompress(&blob[..], Compression::Zstd).expect("decoder"));
        assert!(
            out == data,
            "two zstd frames must decode to the whole input"
        );
    }

    #[test]
    fn none_passes_bytes_through() {
        let out = read_all(decompress(&b"plain"[..], Compression::None).expect("decoder"));
        assert_eq!(out, b"plain");
    }

    #[test]
    fn corrupt_gzip_is_a_read_error() {
        let mut r = decompress(&[0x1f, 0x8b, 8, 0, 1, 2, 3][..], Compression::Gzip).expect("dec");
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err(), "truncated gzip must fail");
    }
}
