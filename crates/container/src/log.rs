//! The runtime's log: runc's `--log FILE` and `--log-format text|json`.
//!
//! containerd's shim reads the last `error` entry of this file to explain
//! a failure, so errors go here as well as to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug)]
struct Sink {
    path: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sets where log lines go; later calls are ignored. A relative path is
/// taken from the current directory now (`create` later changes into the
/// bundle).
pub fn init(path: Option<PathBuf>, format: LogFormat, debug: bool) {
    let path = path.map(|p| match std::env::current_dir() {
        Ok(cwd) => cwd.join(p),
        Err(_) => p,
    });
    let _ = SINK.set(Sink {
        path,
        format,
        debug,
    });
}

fn write(level: &str, msg: &str) {
    let Some(sink) = SINK.get() else {
        if level != "debug" {
            eprintln!("berth-runtime: {level}: {msg}");
        }
        return;
    };
    if level == "debug" && !sink.debug {
        return;
    }
    let time = crate::state::now_rfc3339();
    let line = match sink.format {
        LogFormat::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}"),
    };
    match &sink.path {
        Some(path) => {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
        None => eprintln!("{line}"),
    }
}

pub fn error(msg: &str) {
    write("error", msg);
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn debug(msg: &str) {
    write("debug", msg);
}

/// True when a log file was given (errors then go to it too).
pub fn has_file() -> bool {
    SINK.get().is_some_and(|s| s.path.is_some())
}
