//! Terminals for containers, following runc's `docs/terminals.md`.
//!
//! With `process.terminal: true` the container's stdio is a pseudo-terminal
//! whose slave lives *inside* the container: the init allocates it from the
//! container's own devpts after `pivot_root` ([`new_pty`]), makes it its
//! controlling terminal and stdio and bind-mounts it over `/dev/console`
//! ([`attach_slave`]). The master goes to whoever handles the I/O:
//!
//! * detached (`--console-socket`): sent over a unix socket with SCM_RIGHTS
//!   ([`send_to_console_socket`], or [`connect_console_socket`] before
//!   `pivot_root` + [`send_fd`] after it). The payload is the terminal's
//!   name, `/dev/ptmx`, exactly as runc sends it; containerd's shim and
//!   conmon only look at the fd.
//! * foreground (`run`/`exec` with a terminal and no socket): the runtime
//!   itself relays between its stdio and the master ([`relay`]), with its own
//!   terminal in raw mode ([`RawModeGuard`]) and window size changes
//!   forwarded on SIGWINCH.
//!
//! The relay is a single-threaded `poll(2)` loop (the runtime forks, so it
//! must not grow threads). The master is non-blocking and stdin is only read
//! once the previous chunk reached the master, so a container that does not
//! read its input can never stall its output.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, openat, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::unistd::{dup2, isatty, unlinkat, UnlinkatFlags};

use crate::spec::ConsoleSize;

/// What runc puts in the SCM_RIGHTS message next to the master.
pub const CONSOLE_SOCKET_NAME: &str = "/dev/ptmx";
/// runc's `MaxNameLen`: receivers size their buffer for this.
const MAX_NAME_LEN: usize = 4096;
/// How often the relay re-checks `child_exited` once the master is closed.
const EXIT_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("open {}: {source}", .path.display())]
    Open { path: PathBuf, source: Errno },
    #[error("{op} on {what}: {source}")]
    Ioctl {
        op: &'static str,
        what: String,
        source: Errno,
    },
    #[error("dup2 {} onto fd {fd}: {source}", .path.display())]
    Dup {
        path: PathBuf,
        fd: RawFd,
        source: Errno,
    },
    #[error("prepare {} as console mount target: {op}: {source}", .path.display())]
    ConsoleTarget {
        path: PathBuf,
        op: &'static str,
        source: Errno,
    },
    #[error("bind-mount {} over {}: {source}", .slave.display(), .target.display())]
    Mount {
        slave: PathBuf,
        target: PathBuf,
        source: Errno,
    },
    #[error("connect console socket {}: {source}", .path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("terminal name {0:?} must be 1 to 4095 bytes")]
    BadName(String),
    #[error("send fd over unix socket: {0}")]
    Send(Errno),
    #[error("receive fd over unix socket: {0}")]
    Recv(Errno),
    #[error("receive fd over unix socket: peer sent no SCM_RIGHTS fd")]
    NoFd,
    #[error("terminal attributes of fd {fd}: {op}: {source}")]
    Termios {
        fd: RawFd,
        op: &'static str,
        source: Errno,
    },
    #[error("terminal relay: {op}: {source}")]
    Relay { op: &'static str, source: Errno },
}

/// A freshly allocated, unlocked pseudo-terminal.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave_path: PathBuf,
}

/// Opens `/dev/ptmx` (called in the init after `pivot_root`, so it is the
/// container's devpts), unlocks the slave and sets the window size if given.
pub fn new_pty(size: Option<ConsoleSize>) -> Result<Pty, ConsoleError> {
    new_pty_at(Path::new("/dev/ptmx"), size)
}

fn new_pty_at(ptmx: &Path, size: Option<ConsoleSize>) -> Result<Pty, ConsoleError> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let fd = open(ptmx, flags, Mode::empty()).map_err(|source| ConsoleError::Open {
        path: ptmx.to_owned(),
        source,
    })?;
    // SAFETY: `open` just returned this fd and nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let what = || ptmx.display().to_string();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one c_int through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(rc).map_err(|source| ConsoleError::Ioctl {
        op: "TIOCSPTLCK (unlockpt)",
        what: what(),
        source,
    })?;
    let mut index: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one c_uint through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut index) };
    Errno::result(rc).map_err(|source| ConsoleError::Ioctl {
        op: "TIOCGPTN",
        what: what(),
        source,
    })?;
    if let Some(size) = size {
        let ws = libc::winsize {
            ws_row: size.height,
            ws_col: size.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        set_winsize(master.as_fd(), &ws, &what())?;
    }
    Ok(Pty {
        master,
        slave_path: PathBuf::from(format!("/dev/pts/{index}")),
    })
}

fn get_winsize(fd: BorrowedFd<'_>, what: &str) -> Result<libc::winsize, ConsoleError> {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(rc).map_err(|source| ConsoleError::Ioctl {
        op: "TIOCGWINSZ",
        what: what.to_owned(),
        source,
    })?;
    Ok(ws)
}

fn set_winsize(fd: BorrowedFd<'_>, ws: &libc::winsize, what: &str) -> Result<(), ConsoleError> {
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
    Errno::result(rc).map_err(|source| ConsoleError::Ioctl {
        op: "TIOCSWINSZ",
        what: what.to_owned(),
        source,
    })?;
    Ok(())
}

/// Makes the slave this process's controlling terminal and its stdio
/// (the caller has already called `setsid`), after bind-mounting it over
/// `/dev/console` if asked to (the init, not `exec`, does that).
pub fn attach_slave(slave_path: &Path, mount_dev_console: bool) -> Result<(), ConsoleError> {
    if mount_dev_console {
        mount_console_in(Path::new("/dev"), slave_path)?;
    }
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let fd = open(slave_path, flags, Mode::empty()).map_err(|source| ConsoleError::Open {
        path: slave_path.to_owned(),
        source,
    })?;
    // SAFETY: `open` just returned this fd and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(rc).map_err(|source| ConsoleError::Ioctl {
        op: "TIOCSCTTY",
        what: slave_path.display().to_string(),
        source,
    })?;
    let raw = slave.into_raw_fd();
    let result = (0..=2).try_for_each(|target| dup_onto(raw, target, slave_path));
    if raw > 2 {
        // Best effort: the three copies are what matters.
        let _ = nix::unistd::close(raw);
    }
    result
}

/// `dup2(fd, target)`, leaving `target` without O_CLOEXEC even when the
/// slave itself landed on `target` (dup2 onto itself changes nothing).
fn dup_onto(fd: RawFd, target: RawFd, path: &Path) -> Result<(), ConsoleError> {
    let result = if fd == target {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map(drop)
    } else {
        dup2(fd, target).map(drop)
    };
    result.map_err(|source| ConsoleError::Dup {
        path: path.to_owned(),
        fd: target,
        source,
    })
}

/// Bind-mounts `slave` over `<dev>/console`, creating it as an empty file if
/// it is missing and replacing it if it is a symlink; nothing under `dev` is
/// resolved through a symlink.
fn mount_console_in(dev: &Path, slave: &Path) -> Result<(), ConsoleError> {
    let target_path = dev.join("console");
    let target_err = |op| {
        let path = target_path.clone();
        move |source| ConsoleError::ConsoleTarget { path, op, source }
    };
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = open(dev, dir_flags, Mode::empty()).map_err(target_err("open parent"))?;
    // SAFETY: `open` just returned this fd and nothing else owns it.
    let dev_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let target = console_target(dev_fd.as_fd()).map_err(target_err("open"))?;
    bind_onto(slave, target.as_fd()).map_err(|source| ConsoleError::Mount {
        slave: slave.to_owned(),
        target: target_path.clone(),
        source,
    })
}

/// An O_PATH fd of `console` in `dev`, never a symlink.
fn console_target(dev: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let dev_raw = Some(dev.as_raw_fd());
    let path_flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(dev_raw, "console", path_flags, Mode::empty()) {
        Ok(fd) => {
            // SAFETY: `openat` just returned this fd and nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let st = fstat(fd.as_raw_fd())?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
                return Ok(fd);
            }
            unlinkat(dev_raw, "console", UnlinkatFlags::NoRemoveDir)?;
        }
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let create = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW;
    let fd = openat(
        dev_raw,
        "console",
        create | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )?;
    // SAFETY: `openat` just returned this fd; this File owns and closes it.
    drop(unsafe { File::from_raw_fd(fd) });
    let fd = openat(dev_raw, "console", path_flags, Mode::empty())?;
    // SAFETY: `openat` just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// From <linux/mount.h>; the libc crate does not export them.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Bind-mounts `source` onto the file behind `target` (an O_PATH fd), with
/// the fd-based mount API; falls back to `/proc/self/fd/N` before 5.2.
fn bind_onto(source: &Path, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let c_source =
        std::ffi::CString::new(source.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: c_source is a valid NUL-terminated string for the call.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c_source.as_ptr(),
            flags,
        )
    };
    if tree < 0 && Errno::last() == Errno::ENOSYS {
        let proc_path = format!("/proc/self/fd/{}", target.as_raw_fd());
        let bind = nix::mount::MsFlags::MS_BIND;
        return nix::mount::mount(
            Some(source),
            proc_path.as_str(),
            None::<&str>,
            bind,
            None::<&str>,
        );
    }
    let tree = Errno::result(tree)? as RawFd;
    // SAFETY: open_tree just returned this fd and nothing else owns it.
    let tree = unsafe { OwnedFd::from_raw_fd(tree) };
    let empty = c"";
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: both fds are open and `empty` is a valid C string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            flags,
        )
    };
    Errno::result(rc).map(drop)
}

/// Connects to the `--console-socket` (a host path, so call this before
/// `pivot_root`). The socket is close-on-exec.
pub fn connect_console_socket(socket_path: &Path) -> Result<OwnedFd, ConsoleError> {
    UnixStream::connect(socket_path)
        .map(OwnedFd::from)
        .map_err(|source| ConsoleError::Connect {
            path: socket_path.to_owned(),
            source,
        })
}

/// Connects to `socket_path` and sends the master as runc does.
pub fn send_to_console_socket(
    socket_path: &Path,
    master: BorrowedFd<'_>,
) -> Result<(), ConsoleError> {
    let sock = connect_console_socket(socket_path)?;
    send_fd(sock.as_fd(), master, CONSOLE_SOCKET_NAME)
}

/// Sends `fd` with SCM_RIGHTS; `name` is the message payload.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, name: &str) -> Result<(), ConsoleError> {
    if name.is_empty() || name.len() >= MAX_NAME_LEN {
        return Err(ConsoleError::BadName(name.to_owned()));
    }
    let iov = [IoSlice::new(name.as_bytes())];
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) if n == name.len() => return Ok(()),
            // A stream socket may take part of the payload; the fd went with
            // the first byte, and receivers read the name with one recvmsg.
            Ok(_) => return Err(ConsoleError::Send(Errno::EMSGSIZE)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(ConsoleError::Send(e)),
        }
    }
}

/// Receives one fd sent with [`send_fd`] (close-on-exec).
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, ConsoleError> {
    recv_fd_with_name(sock).map(|(fd, _)| fd)
}

/// Receives one fd and the name sent with it. Extra fds are closed.
pub fn recv_fd_with_name(sock: BorrowedFd<'_>) -> Result<(OwnedFd, String), ConsoleError> {
    let mut buf = vec![0u8; MAX_NAME_LEN];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 8]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags = MsgFlags::MSG_CMSG_CLOEXEC;
        match recvmsg::<UnixAddr>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg_buf), flags) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs().map_err(ConsoleError::Recv)? {
                    if let ControlMessageOwned::ScmRights(received) = cmsg {
                        // SAFETY: the kernel installed these fds for us just
                        // now; each is owned exactly once here.
                        fds.extend(
                            received
                                .into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (msg.bytes, fds);
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(ConsoleError::Recv(e)),
        }
    };
    let fd = fds.into_iter().next().ok_or(ConsoleError::NoFd)?;
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    Ok((fd, name))
}

/// Puts a terminal in raw mode and restores its attributes on drop.
pub struct RawModeGuard {
    fd: OwnedFd,
    original: Termios,
}

impl RawModeGuard {
    /// `Ok(None)` if `fd` is not a terminal.
    pub fn new(fd: BorrowedFd<'_>) -> Result<Option<Self>, ConsoleError> {
        if !isatty(fd.as_raw_fd()).unwrap_or(false) {
            return Ok(None);
        }
        let raw_fd = fd.as_raw_fd();
        let err = |op| {
            move |source| ConsoleError::Termios {
                fd: raw_fd,
                op,
                source,
            }
        };
        let original = tcgetattr(fd).map_err(err("tcgetattr"))?;
        let fd = fd
            .try_clone_to_owned()
            .map_err(|e| err("dup")(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        let mut raw = original.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&fd, SetArg::TCSANOW, &raw).map_err(err("tcsetattr"))?;
        Ok(Some(RawModeGuard { fd, original }))
    }
}

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        // Nothing sensible to do if the terminal went away meanwhile.
        let _ = tcsetattr(&self.fd, SetArg::TCSANOW, &self.original);
    }
}

/// Foreground terminal mode on the runtime's own stdin/stdout: raw mode if
/// stdin is a terminal, then [`relay_fds`].
pub fn relay(master: OwnedFd, child_exited: &dyn Fn() -> bool) -> Result<(), ConsoleError> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let _raw = RawModeGuard::new(stdin.as_fd())?;
    relay_fds(master, stdin.as_fd(), stdout.as_fd(), child_exited)
}

/// Copies `input` to `master` and `master` to `output` until the master
/// reports EOF/EIO (every slave fd is closed) and `child_exited()` is true.
/// Input EOF only stops reading input. If `input` is a terminal its window
/// size is copied to the master now and on every SIGWINCH. If `output`
/// fails (e.g. EPIPE), container output is discarded rather than letting
/// the container block on a full terminal buffer.
pub fn relay_fds(
    master: OwnedFd,
    input: BorrowedFd<'_>,
    output: BorrowedFd<'_>,
    child_exited: &dyn Fn() -> bool,
) -> Result<(), ConsoleError> {
    set_nonblocking(master.as_fd()).map_err(relay_err("set master non-blocking"))?;
    let winch = if isatty(input.as_raw_fd()).unwrap_or(false) {
        copy_winsize(input, master.as_fd())?;
        Some(WinchSignal::new()?)
    } else {
        None
    };
    let mut relay = Relay {
        master,
        input,
        output,
        input_open: true,
        output_ok: true,
        pending: Vec::new(),
    };
    while relay.step(winch.as_ref())? {}
    drop(relay);
    while !child_exited() {
        std::thread::sleep(EXIT_POLL);
    }
    Ok(())
}

fn relay_err(op: &'static str) -> impl Fn(Errno) -> ConsoleError {
    move |source| ConsoleError::Relay { op, source }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = OFlag::from_bits_retain(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    let ws = get_winsize(from, "relay input")?;
    set_winsize(to, &ws, "pty master")
}

/// SIGWINCH as a readable fd: blocked in this thread (its default action is
/// to be ignored anyway) and delivered through a signalfd; the previous mask
/// is restored on drop.
struct WinchSignal {
    fd: SignalFd,
    previous: SigSet,
}

impl WinchSignal {
    fn new() -> Result<Self, ConsoleError> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGWINCH);
        let mut previous = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut previous))
            .map_err(relay_err("block SIGWINCH"))?;
        let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
        match SignalFd::with_flags(&mask, flags) {
            Ok(fd) => Ok(WinchSignal { fd, previous }),
            Err(e) => {
                let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
                Err(ConsoleError::Relay {
                    op: "signalfd",
                    source: e,
                })
            }
        }
    }

    /// Consumes pending SIGWINCHs; true if there was at least one.
    fn take(&self) -> bool {
        let mut any = false;
        while let Ok(Some(_)) = self.fd.read_signal() {
            any = true;
        }
        any
    }
}

impl Drop for WinchSignal {
    fn drop(&mut self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Source {
    Input,
    Master,
    Winch,
}

struct Relay<'a> {
    master: OwnedFd,
    input: BorrowedFd<'a>,
    output: BorrowedFd<'a>,
    input_open: bool,
    output_ok: bool,
    /// Input read but not yet accepted by the master.
    pending: Vec<u8>,
}

impl Relay<'_> {
    /// One poll round; false once the master is closed.
    fn step(&mut self, winch: Option<&WinchSignal>) -> Result<bool, ConsoleError> {
        let ready = self.wait(winch)?;
        for (source, revents) in ready {
            match source {
                Source::Winch => {
                    if winch.is_some_and(WinchSignal::take) {
                        copy_winsize(self.input, self.master.as_fd())?;
                    }
                }
                Source::Input => self.read_input(revents)?,
                Source::Master => {
                    if revents.contains(PollFlags::POLLNVAL) {
                        return Err(ConsoleError::Relay {
                            op: "poll master",
                            source: Errno::EBADF,
                        });
                    }
                    if revents.contains(PollFlags::POLLOUT) {
                        self.flush_pending()?;
                    }
                    if revents
                        .intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                        && !self.copy_output()?
                    {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    fn wait(&self, winch: Option<&WinchSignal>) -> Result<Vec<(Source, PollFlags)>, ConsoleError> {
        let mut wanted = Vec::with_capacity(3);
        let mut master_events = PollFlags::POLLIN;
        if !self.pending.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        wanted.push((self.master.as_fd(), master_events, Source::Master));
        if self.input_open && self.pending.is_empty() {
            wanted.push((self.input, PollFlags::POLLIN, Source::Input));
        }
        if let Some(w) = winch {
            wanted.push((w.fd.as_fd(), PollFlags::POLLIN, Source::Winch));
        }
        let mut fds: Vec<PollFd<'_>> = wanted
            .iter()
            .map(|(fd, ev, _)| PollFd::new(*fd, *ev))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(Vec::new()),
            Err(e) => {
                return Err(ConsoleError::Relay {
                    op: "poll",
                    source: e,
                })
            }
        }
        let revents = fds
            .iter()
            .map(|fd| fd.revents().unwrap_or(PollFlags::empty()));
        Ok(wanted
            .iter()
            .map(|(_, _, source)| *source)
            .zip(revents)
            .filter(|(_, r)| !r.is_empty())
            .collect())
    }

    fn read_input(&mut self, revents: PollFlags) -> Result<(), ConsoleError> {
        if revents.contains(PollFlags::POLLNVAL) {
            self.input_open = false;
            return Ok(());
        }
        let mut buf = [0u8; 8192];
        match nix::unistd::read(self.input.as_raw_fd(), &mut buf) {
            // EOF, or a hung-up terminal: stop reading, keep the master open.
            Ok(0) | Err(Errno::EIO) => self.input_open = false,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.flush_pending()?;
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => {
                return Err(ConsoleError::Relay {
                    op: "read input",
                    source: e,
                })
            }
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<(), ConsoleError> {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                // The container side is gone; reading the master ends the relay.
                Err(Errno::EIO) => self.pending.clear(),
                Err(e) => {
                    return Err(ConsoleError::Relay {
                        op: "write to master",
                        source: e,
                    })
                }
            }
        }
        Ok(())
    }

    /// One read from the master to the output; false at EOF/EIO.
    fn copy_output(&mut self) -> Result<bool, ConsoleError> {
        let mut buf = [0u8; 16384];
        match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(Errno::EIO) => Ok(false),
            Ok(n) => {
                self.write_output(&buf[..n]);
                Ok(true)
            }
            Err(Errno::EINTR | Errno::EAGAIN) => Ok(true),
            Err(e) => Err(ConsoleError::Relay {
                op: "read master",
                source: e,
            }),
        }
    }

    fn write_output(&mut self, mut data: &[u8]) {
        while self.output_ok && !data.is_empty() {
            match nix::unistd::write(self.output, data) {
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    // Someone made our output non-blocking: wait until writable.
                    let mut fds = [PollFd::new(self.output, PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::NONE);
                }
                Err(_) => self.output_ok = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    use std::process::Command;

    fn open_slave(path: &Path) -> OwnedFd {
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let fd = open(path, flags, Mode::empty()).unwrap();
        // SAFETY: fresh fd from open, owned once.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    fn dev_ino(fd: BorrowedFd<'_>) -> (u64, u64, u64) {
        let st = fstat(fd.as_raw_fd()).unwrap();
        (st.st_dev, st.st_ino, st.st_rdev)
    }

    #[test]
    fn new_pty_is_unlocked_and_sized() {
        let pty = new_pty(Some(ConsoleSize {
            height: 33,
            width: 101,
        }))
        .unwrap();
        assert!(
            pty.slave_path.starts_with("/dev/pts/"),
            "{:?}",
            pty.slave_path
        );
        let slave = open_slave(&pty.slave_path);
        let ws = get_winsize(slave.as_fd(), "slave").unwrap();
        assert_eq!((ws.ws_row, ws.ws_col), (33, 101));
        nix::unistd::write(&slave, b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(pty.master.as_raw_fd(), &mut buf), Ok(1));
        assert_eq!(&buf, b"x");
        let flags = fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
        assert!(
            flags & libc::FD_CLOEXEC != 0,
            "master must be close-on-exec"
        );
    }

    #[test]
    fn fd_survives_a_socketpair_round_trip() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let pty = new_pty(None).unwrap();
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        send_fd(a.as_fd(), pty.master.as_fd(), "/dev/ptmx").unwrap();
        let (got, name) = recv_fd_with_name(b.as_fd()).unwrap();
        assert_eq!(name, "/dev/ptmx");
        assert_eq!(
            dev_ino(got.as_fd()),
            dev_ino(pty.master.as_fd()),
            "same pty master"
        );
        assert_ne!(got.as_raw_fd(), pty.master.as_raw_fd());
        let flags = fcntl(got.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
        assert!(
            flags & libc::FD_CLOEXEC != 0,
            "received fd must be close-on-exec"
        );
    }

    #[test]
    fn recv_without_fd_is_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(matches!(recv_fd(b.as_fd()), Err(ConsoleError::NoFd)));
    }

    #[test]
    fn console_socket_gets_master_like_runc_sends_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let pty = new_pty(None).unwrap();
        // connect() completes against the backlog; accept afterwards.
        send_to_console_socket(&path, pty.master.as_fd()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let (got, name) = recv_fd_with_name(conn.as_fd()).unwrap();
        assert_eq!(name, CONSOLE_SOCKET_NAME);
        assert_eq!(dev_ino(got.as_fd()), dev_ino(pty.master.as_fd()));
    }

    #[test]
    fn connect_to_missing_socket_names_the_path() {
        let err = connect_console_socket(Path::new("/nonexistent/berth.sock")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("connect console socket /nonexistent/berth.sock: "),
            "{err}"
        );
    }

    /// Runs `script` with `{}` replaced by the slave path; relays with
    /// `input` and returns everything written to the output.
    fn relay_with(script: &str, input: &[u8]) -> String {
        let pty = new_pty(None).unwrap();
        let script = script.replace("{}", &pty.slave_path.display().to_string());
        let child = RefCell::new(
            Command::new("/bin/sh")
                .args(["-c", &script])
                .spawn()
                .unwrap(),
        );
        let (in_r, in_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        nix::unistd::write(&in_w, input).unwrap();
        drop(in_w);
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let exited = || matches!(child.borrow_mut().try_wait(), Ok(Some(_)));
        let result = relay_fds(pty.master, in_r.as_fd(), out_w.as_fd(), &exited);
        let _ = child.borrow_mut().kill();
        let _ = child.borrow_mut().wait();
        result.unwrap();
        drop(out_w);
        let mut out = String::new();
        File::from(out_r).read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn relay_copies_container_output_until_the_slave_closes() {
        let out = relay_with("printf hello > {}", b"");
        assert_eq!(out, "hello");
    }

    #[test]
    fn relay_forwards_input_and_survives_input_eof() {
        let script = "exec 3<>{}; read line <&3; sleep 0.2; echo \"got $line\" >&3";
        let out = relay_with(script, b"ping\n");
        assert!(out.contains("got ping"), "output was {out:?}");
    }

    #[test]
    fn relay_waits_for_the_child_after_master_eof() {
        let start = std::time::Instant::now();
        let out = relay_with("printf bye > {}; sleep 0.3", b"");
        assert_eq!(out, "bye");
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "returned before the child exited"
        );
    }

    #[test]
    fn raw_mode_guard_restores_terminal() {
        use nix::sys::termios::LocalFlags;
        let pty = new_pty(None).unwrap();
        let slave = open_slave(&pty.slave_path);
        let before = tcgetattr(&slave).unwrap();
        assert!(before.local_flags.contains(LocalFlags::ICANON));
        {
            let _guard = RawModeGuard::new(slave.as_fd())
                .unwrap()
                .expect("a pty is a tty");
            let raw = tcgetattr(&slave).unwrap();
            assert!(!raw
                .local_flags
                .intersects(LocalFlags::ICANON | LocalFlags::ECHO));
        }
        let after = tcgetattr(&slave).unwrap();
        assert_eq!(
            after.local_flags, before.local_flags,
            "termios restored on drop"
        );
    }

    #[test]
    fn raw_mode_guard_ignores_non_terminals() {
        let (r, _w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        assert!(RawModeGuard::new(r.as_fd()).unwrap().is_none());
    }

    /// Unmounts (lazily) on drop so a failing test leaves no mount behind.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn console_mount_creates_missing_target() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pty = new_pty(None).unwrap();
        mount_console_in(dir.path(), &pty.slave_path).unwrap();
        let _umount = Unmount(dir.path().join("console"));
        let console = open_slave(&dir.path().join("console"));
        let slave = open_slave(&pty.slave_path);
        assert_eq!(
            dev_ino(console.as_fd()).2,
            dev_ino(slave.as_fd()).2,
            "console is the pty"
        );
    }

    #[test]
    fn console_mount_does_not_follow_a_symlink() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("console")).unwrap();
        let pty = new_pty(None).unwrap();
        mount_console_in(dir.path(), &pty.slave_path).unwrap();
        let _umount = Unmount(dir.path().join("console"));
        let _victim_guard = Unmount(victim.clone());
        let meta = std::fs::symlink_metadata(dir.path().join("console")).unwrap();
        assert!(!meta.file_type().is_symlink(), "symlink must be replaced");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let victim_dev = std::fs::metadata(&victim).unwrap();
        assert_eq!(
            victim_dev.len(),
            4,
            "the symlink's target must not be mounted over"
        );
    }

    #[test]
    fn attach_slave_makes_pty_the_controlling_terminal_and_stdio() {
        let pty = new_pty(None).unwrap();
        let slave_rdev = dev_ino(open_slave(&pty.slave_path).as_fd()).2;
        let dev_tty = std::ffi::CString::new("/dev/tty").unwrap();
        // SAFETY: the child only calls setsid/open/ioctl/fstat/_exit on data
        // prepared before fork; it never returns into the test harness.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    nix::unistd::setsid().map_err(|_| 10)?;
                    attach_slave(&pty.slave_path, false).map_err(|_| 11)?;
                    for fd in 0..=2 {
                        let st = fstat(fd).map_err(|_| 12)?;
                        if st.st_rdev != slave_rdev {
                            return Err(13);
                        }
                        // SAFETY: fcntl on an fd number, no memory involved.
                        if unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC != 0 {
                            return Err(14);
                        }
                    }
                    // SAFETY: valid C string; /dev/tty opens only with a ctty.
                    if unsafe { libc::open(dev_tty.as_ptr(), libc::O_RDWR) } < 0 {
                        return Err(15);
                    }
                    Ok(())
                })()
                .err()
                .unwrap_or(0);
                // SAFETY: terminate the forked child without running atexit.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(child, 0),
                    "child check failed (10 setsid, 11 attach, 13 stdio not the pty, \
                     14 stdio cloexec, 15 no controlling tty)"
                );
            }
        }
    }

    #[test]
    fn relay_forwards_window_size_changes_on_sigwinch() {
        // Our "terminal" is the slave of an outer pty.
        let outer = new_pty(Some(ConsoleSize {
            height: 40,
            width: 120,
        }))
        .unwrap();
        let input = open_slave(&outer.slave_path);
        let pty = new_pty(None).unwrap();
        let slave = pty.slave_path.display().to_string();
        let script = format!("sleep 0.4; stty size < {slave} > {slave}");
        let child = RefCell::new(
            Command::new("/bin/sh")
                .args(["-c", &script])
                .spawn()
                .unwrap(),
        );
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let outer_master = outer.master;
        let resizer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let ws = libc::winsize {
                ws_row: 50,
                ws_col: 132,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            set_winsize(outer_master.as_fd(), &ws, "outer").unwrap();
            // SAFETY: signals the test thread, which blocks SIGWINCH in relay.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGWINCH) };
            outer_master
        });
        let exited = || matches!(child.borrow_mut().try_wait(), Ok(Some(_)));
        let result = relay_fds(pty.master, input.as_fd(), out_w.as_fd(), &exited);
        let _ = child.borrow_mut().kill();
        let _ = child.borrow_mut().wait();
        let _outer_master = resizer.join().unwrap();
        result.unwrap();
        drop(out_w);
        let mut out = String::new();
        File::from(out_r).read_to_string(&mut out).unwrap();
        assert_eq!(
            out.trim(),
            "50 132",
            "inner pty should have the resized outer size"
        );
    }
}
