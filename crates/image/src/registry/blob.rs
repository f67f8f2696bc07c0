//! Streaming a blob with resume.
//!
//! Layers are large and connections drop. Rather than starting a 500 MB
//! layer again (and rehashing everything the consumer already saw), the
//! reader asks for the rest with `Range: bytes=N-`. It accepts the answer
//! only when it is `206` starting exactly at N; a `200` (server ignoring
//! ranges) is read from the start and the first N bytes are skipped, so
//! the consumer still sees one continuous stream. The descriptor's size is
//! enforced: more bytes, or an end before `size`, is an error.

use std::io::{self, Read};

use super::{Body, ErrorKind, RegistryClient, RegistryError, Target};

/// A `Read` over one blob. I/O errors carry a `RegistryError` (see
/// `registry::into_registry_error`).
pub struct BlobReader {
    client: RegistryClient,
    target: Target,
    path: String,
    size: u64,
    pos: u64,
    body: Option<Box<dyn Read + Send + Sync>>,
    interruptions: u32,
}

impl BlobReader {
    pub(crate) fn open(
        client: RegistryClient,
        target: Target,
        path: String,
        size: u64,
    ) -> Result<BlobReader, RegistryError> {
        let mut r = BlobReader {
            client,
            target,
            path,
            size,
            pos: 0,
            body: None,
            interruptions: 0,
        };
        r.request()?;
        Ok(r)
    }

    /// The descriptor's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes handed to the consumer so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// How many times the connection was re-established.
    pub fn resumes(&self) -> u32 {
        self.interruptions
    }

    fn error(&self, kind: ErrorKind) -> RegistryError {
        self.target.error(kind)
    }

    /// (Re)issue the GET for the bytes from `pos` on.
    fn request(&mut self) -> Result<(), RegistryError> {
        let range = format!("bytes={}-", self.pos);
        let mut headers: Vec<(&str, &str)> = vec![("Accept-Encoding", "identity")];
        if self.pos > 0 {
            headers.push(("Range", &range));
        }
        let resp = match self
            .client
            .execute(&self.target, "GET", &self.path, &headers, Body::Empty)
        {
            Ok(r) => r,
            Err(e) if e.status() == Some(416) => {
                return Err(self.error(ErrorKind::Size {
                    expected: self.size,
                    actual: self.pos,
                }))
            }
            Err(e) => return Err(e),
        };
        let length = resp
            .header("content-length")
            .and_then(|l| l.trim().parse::<u64>().ok());
        match resp.status() {
            206 if self.pos > 0 => {
                let start = content_range_start(resp.header("content-range"));
                if start != Some(self.pos) {
                    return Err(self.error(ErrorKind::Protocol(format!(
                        "asked to resume at byte {}, the registry answered with range {:?}",
                        self.pos,
                        resp.header("content-range").unwrap_or("(none)")
                    ))));
                }
                self.check_length(length.map(|l| l + self.pos))?;
                self.body = Some(resp.into_reader());
            }
            200 => {
                self.check_length(length)?;
                let mut body = resp.into_reader();
                if self.pos > 0 {
                    // The server ignored the range: skip what was consumed.
                    let skipped = io::copy(&mut (&mut body).take(self.pos), &mut io::sink())
                        .map_err(|e| self.error(ErrorKind::Io(e)))?;
                    if skipped != self.pos {
                        return Err(self.error(ErrorKind::Size {
                            expected: self.size,
                            actual: skipped,
                        }));
                    }
                }
                self.body = Some(body);
            }
            s => {
                return Err(self.error(ErrorKind::Protocol(format!(
                    "unexpected HTTP {s} to a blob request"
                ))))
            }
        }
        Ok(())
    }

    fn check_length(&self, total: Option<u64>) -> Result<(), RegistryError> {
        match total {
            Some(t) if t != self.size => Err(self.error(ErrorKind::Size {
                expected: self.size,
                actual: t,
            })),
            _ => Ok(()),
        }
    }

    /// The connection broke after `pos` bytes: wait, then resume, unless
    /// we are out of tries.
    fn resume(&mut self, cause: &dyn std::fmt::Display) -> Result<(), RegistryError> {
        self.body = None;
        self.interruptions += 1;
        let max = self.client.options().max_attempts;
        if self.interruptions >= max {
            return Err(self.error(ErrorKind::Transport(format!(
                "connection lost after {} of {} bytes, {} times; last: {cause}",
                self.pos, self.size, self.interruptions
            ))));
        }
        std::thread::sleep(self.client.backoff(self.interruptions, None));
        self.request()
    }
}

fn content_range_start(header: Option<&str>) -> Option<u64> {
    let rest = header?.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

fn to_io(e: RegistryError) -> io::Error {
    io::Error::other(e)
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(body) = self.body.as_mut() else {
                self.request().map_err(to_io)?;
                continue;
            };
            match body.read(buf) {
                Ok(0) if self.pos == self.size => return Ok(0),
                Ok(0) => {
                    let why = format!(
                        "connection closed after {} of {} bytes",
                        self.pos, self.size
                    );
                    self.resume(&why).map_err(to_io)?;
                }
                Ok(n) => {
                    if self.pos + n as u64 > self.size {
                        let actual = self.pos + n as u64;
                        return Err(to_io(self.error(ErrorKind::Size {
                            expected: self.size,
                            actual,
                        })));
                    }
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => self.resume(&e).map_err(to_io)?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::content_range_start;

    #[test]
    fn content_range() {
        assert_eq!(content_range_start(Some("bytes 100-199/200")), Some(100));
        assert_eq!(content_range_start(Some("bytes 0-0/*")), Some(0));
        assert_eq!(content_range_start(Some("items 1-2")), None);
        assert_eq!(content_range_start(None), None);
    }
}
