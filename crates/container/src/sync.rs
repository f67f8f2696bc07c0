//! The conversation between the runtime and the container's init over a
//! `SOCK_SEQPACKET` socketpair: one datagram per message, so no framing.
//!
//! runtime -> init: `Go` (id maps written, cgroup joined), `HooksDone`.
//! init -> runtime: `RunHooks` (namespaces are up: run prestart and
//! createRuntime), `Ready` (waiting for `start`), `Error(text)`.
//! A pty master travels separately, as SCM_RIGHTS (see `console`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Carries the `creating` state JSON for in-container hooks.
    Go(String),
    RunHooks,
    HooksDone,
    Ready,
    PtyMaster,
    /// Two-stage spawn: the intermediate asks for its id maps to be written.
    MapRequest,
    MapDone,
    /// Two-stage spawn: the host pid of the init the intermediate forked.
    Pid(i32),
    Error(String),
}

const MAX: usize = 65536;

fn tagged(tag: u8, text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 1);
    v.push(tag);
    v.extend_from_slice(&text.as_bytes()[..text.len().min(MAX - 1)]);
    v
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::Go(text) => tagged(b'G', text),
            Message::RunHooks => vec![b'H'],
            Message::HooksDone => vec![b'D'],
            Message::Ready => vec![b'R'],
            Message::PtyMaster => vec![b'P'],
            Message::MapRequest => vec![b'M'],
            Message::MapDone => vec![b'm'],
            Message::Pid(pid) => tagged(b'I', &pid.to_string()),
            Message::Error(text) => tagged(b'E', text),
        }
    }

    fn decode(data: &[u8]) -> io::Result<Message> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad sync message");
        let (&tag, rest) = data.split_first().ok_or_else(bad)?;
        Ok(match tag {
            b'G' => Message::Go(String::from_utf8_lossy(rest).into_owned()),
            b'H' => Message::RunHooks,
            b'D' => Message::HooksDone,
            b'R' => Message::Ready,
            b'P' => Message::PtyMaster,
            b'M' => Message::MapRequest,
            b'm' => Message::MapDone,
            b'I' => Message::Pid(
                std::str::from_utf8(rest)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(bad)?,
            ),
            b'E' => Message::Error(String::from_utf8_lossy(rest).into_owned()),
            _ => return Err(bad()),
        })
    }
}

/// (runtime end, init end), both close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
}

pub fn send(sock: BorrowedFd<'_>, msg: &Message) -> io::Result<()> {
    let data = msg.encode();
    loop {
        // SAFETY: `data` is a live buffer of the given length; the fd is borrowed.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives one message; `Ok(None)` when the other end closed.
///
/// Peeks at the datagram's size first, so the common one-byte messages
/// cost no large buffer (the runtime's peak RSS is measured against crun).
pub fn recv(sock: BorrowedFd<'_>) -> io::Result<Option<Message>> {
    loop {
        let mut probe = [0u8; 1];
        // SAFETY: `probe` is writable for its length; MSG_TRUNC makes the
        // kernel return the datagram's full size without consuming it.
        let size = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                probe.as_mut_ptr().cast(),
                probe.len(),
                libc::MSG_PEEK | libc::MSG_TRUNC,
            )
        };
        if size < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if size == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; (size as usize).min(MAX)];
        // SAFETY: `buf` is writable for its full length; the fd is borrowed.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 {
            return Message::decode(&buf[..n as usize]).map(Some);
        }
        if n == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().expect("socketpair");
        for msg in [
            Message::Go(r#"{"id":"x"}"#.into()),
            Message::RunHooks,
            Message::HooksDone,
            Message::Ready,
            Message::PtyMaster,
            Message::MapRequest,
            Message::MapDone,
            Message::Pid(4242),
            Message::Error("mount proc on /proc: EPERM".into()),
        ] {
            send(a.as_fd(), &msg).expect("send");
            assert_eq!(recv(b.as_fd()).expect("recv"), Some(msg));
        }
        drop(a);
        assert_eq!(recv(b.as_fd()).expect("recv after close"), None);
    }
}
