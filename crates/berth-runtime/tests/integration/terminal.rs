//! The four stdio modes of runc's docs/terminals.md: foreground and
//! detached, each pass-through or with a terminal.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{assert_contains, run_captured, wait_timeout, Bundle, TIMEOUT};

#[test]
fn foreground_pass_through() {
    let mut b = Bundle::new();
    b.sh("echo hello-fg; echo to-stderr >&2; test -t 1 && echo tty || echo no-tty");
    let out = b.run().ok("run");
    assert_eq!(
        out.stdout, "hello-fg\nno-tty\n",
        "stdout of a pass-through run"
    );
    assert_eq!(
        out.stderr.trim_end(),
        "to-stderr",
        "stderr of a pass-through run"
    );
}

#[test]
fn detached_pass_through() {
    let mut b = Bundle::new();
    b.sh("echo hello-detached; echo err-detached >&2");
    b.write_config();
    let outf = b.dir().join("out.log");
    let errf = b.dir().join("err.log");
    let bundle = b.dir().to_str().unwrap().to_string();
    let mut c = b.command(&["run", "-d", "--bundle", &bundle, &b.id]);
    c.stdout(File::create(&outf).unwrap())
        .stderr(File::create(&errf).unwrap());
    let mut child = c.spawn().unwrap();
    let st = wait_timeout(&mut child, TIMEOUT, "run -d");
    let err = fs::read_to_string(&errf).unwrap_or_default();
    assert!(st.success(), "run -d failed: {st:?} {err}");
    b.wait_status("stopped");
    let out = fs::read_to_string(&outf).unwrap();
    assert_eq!(
        out, "hello-detached\n",
        "container stdout written to the runtime's stdout file"
    );
    assert_contains(
        &fs::read_to_string(&errf).unwrap(),
        "err-detached",
        "stderr file",
    );
}

/// Receive one fd sent with SCM_RIGHTS on `sock`.
pub(crate) fn recv_fd(sock: RawFd) -> OwnedFd {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; zeroed is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg points at buffers that live for the duration of the call.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(
        n >= 0,
        "recvmsg on console socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR checks bounds.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    assert!(!cmsg.is_null(), "console socket message carried no fd");
    // SAFETY: cmsg is non-null and within cbuf.
    let (level, ty) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    assert!(
        level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS,
        "not SCM_RIGHTS"
    );
    // SAFETY: an SCM_RIGHTS payload holds at least one int fd.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd) };
    // SAFETY: the kernel just installed fd in our table; we own it now.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Read a pty master in the background until EIO (all slaves closed).
pub(crate) fn drain(master: OwnedFd) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    thread::spawn(move || {
        let mut f = File::from(master);
        let mut chunk = [0u8; 1024];
        while let Ok(n) = f.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

pub(crate) fn wait_for_text(buf: &Arc<Mutex<Vec<u8>>>, needle: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        if text.contains(needle) {
            return text;
        }
        if Instant::now() > deadline {
            panic!("{what}: expected {needle:?} on the terminal, got {text:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn detached_terminal_with_console_socket() {
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.sh("echo hello; tty; test -c /dev/console && echo console-ok; echo END");
    b.write_config();
    let sock_path = b.dir().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let bundle = b.dir().to_str().unwrap().to_string();
    let sock = sock_path.to_str().unwrap().to_string();
    let mut c = b.command(&[
        "create",
        "--console-socket",
        &sock,
        "--bundle",
        &bundle,
        &b.id,
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child: Child = c.spawn().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let conn = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(st) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                    panic!(
                        "create exited ({st:?}) without connecting to the console socket: {err}"
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "create never connected to the console socket"
                );
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept on console socket: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let master = recv_fd(conn.as_raw_fd());
    let buf = drain(master);
    let st = wait_timeout(&mut child, TIMEOUT, "create --console-socket");
    assert!(st.success(), "create --console-socket: {st:?}");
    b.start().ok("start");
    let text = wait_for_text(&buf, "END", "console socket terminal");
    assert_contains(&text, "hello", "terminal output");
    assert_contains(&text, "/dev/pts/0", "tty inside the container");
    assert_contains(&text, "console-ok", "/dev/console is a char device");
}

fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s): (libc::c_int, libc::c_int) = (-1, -1);
    // SAFETY: openpty writes two fds into m and s; null name/termios/winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned to us by openpty.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

#[test]
fn foreground_terminal_relays_through_the_runtime() {
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.sh("echo hello-tty; tty; echo END");
    b.write_config();
    let (master, slave) = open_pty();
    let bundle = b.dir().to_str().unwrap().to_string();
    let mut c = b.command(&["run", "--bundle", &bundle, &b.id]);
    let s = File::from(slave);
    c.stdin(s.try_clone().unwrap())
        .stdout(s.try_clone().unwrap())
        .stderr(s);
    let mut child = c.spawn().unwrap();
    drop(c); // close our copies of the slave
    let buf = drain(master);
    let st = wait_timeout(&mut child, TIMEOUT, "run with terminal");
    let text = wait_for_text(&buf, "END", "foreground terminal");
    assert!(st.success(), "run with terminal: {st:?}, output {text:?}");
    assert_contains(&text, "hello-tty", "relayed terminal output");
    assert_contains(&text, "/dev/pts/", "tty inside the container");
}

#[test]
fn terminal_without_console_socket_for_create_fails() {
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.args(&["true"]);
    b.write_config();
    let bundle = b.dir().to_str().unwrap().to_string();
    let c = b.command(&["create", "--bundle", &bundle, &b.id]);
    let out = run_captured(c, "create terminal without console socket");
    assert!(
        !out.success(),
        "create with terminal:true and no --console-socket succeeded"
    );
    assert!(
        b.state_entries().is_empty(),
        "state left: {:?}",
        b.state_entries()
    );
}

#[test]
fn exec_with_tty_relays_through_the_runtime_and_returns_the_exit_code() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let (master, slave) = open_pty();
    let mut c = b.command(&[
        "exec",
        "-t",
        &b.id,
        "sh",
        "-c",
        "echo exec-tty; tty; echo END; exit 3",
    ]);
    let s = File::from(slave);
    c.stdin(s.try_clone().unwrap())
        .stdout(s.try_clone().unwrap())
        .stderr(s);
    let mut child = c.spawn().unwrap();
    drop(c); // close our copies of the slave
    let buf = drain(master);
    let st = wait_timeout(&mut child, TIMEOUT, "exec -t");
    let text = wait_for_text(&buf, "END", "exec -t");
    assert_eq!(st.code(), Some(3), "exec -t exit code, output {text:?}");
    assert_contains(&text, "exec-tty", "relayed terminal output");
    assert_contains(&text, "/dev/pts/", "the exec'd process has a tty");
}
