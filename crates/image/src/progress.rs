//! Pull progress: events from the pull, and two renderers of them.
//!
//! The pull reports per-layer events from its download threads, so a
//! [`Progress`] is `Sync` and renders under a lock. On a terminal the
//! renderer keeps one line per layer and rewrites it in place with ANSI
//! cursor moves, like `docker pull`; elsewhere (logs, CI) it prints one
//! plain line per state change and never a byte counter, so logs stay short.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::digest::Digest;

/// What happened to one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerEvent {
    /// Queued behind the concurrency limit.
    Waiting,
    /// The snapshot is already in the store.
    AlreadyExists,
    /// Bytes received so far, of the blob's size.
    Downloading { done: u64, total: u64 },
    /// Both digests matched and the snapshot is in place.
    PullComplete,
    /// The layer failed; the pull as a whole reports the error.
    Failed,
    /// Push: the registry has the blob already.
    LayerAlreadyExists,
    /// Push: the registry linked the blob from another repository.
    Mounted,
    /// Push: uploaded.
    Pushed,
}

impl fmt::Display for LayerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerEvent::Waiting => f.write_str("Waiting"),
            LayerEvent::AlreadyExists => f.write_str("Already exists"),
            LayerEvent::Downloading { done, total } => {
                write!(
                    f,
                    "Downloading  {}/{}",
                    human_size(*done),
                    human_size(*total)
                )
            }
            LayerEvent::PullComplete => f.write_str("Pull complete"),
            LayerEvent::Failed => f.write_str("Failed"),
            LayerEvent::LayerAlreadyExists => f.write_str("Layer already exists"),
            LayerEvent::Mounted => f.write_str("Mounted from another repository"),
            LayerEvent::Pushed => f.write_str("Pushed"),
        }
    }
}

/// Receives the events of a pull (or push) from any thread.
pub trait Progress: Sync {
    /// Before anything is fetched: `latest: Pulling from library/busybox`.
    fn start(&self, _line: &str) {}
    /// A layer changed state; `layer` is the blob digest.
    fn layer(&self, _layer: &Digest, _event: LayerEvent) {}
    /// After the image is recorded: `Digest: ...`, `Status: ...` lines.
    fn finish(&self, _lines: &[String]) {}
}

/// Reports nothing (`pull -q`, library callers).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The short id Docker shows for a layer: 12 hex digits.
fn short(layer: &Digest) -> &str {
    let hex = layer.hex();
    &hex[..hex.len().min(12)]
}

/// Renders progress to a terminal: one line per layer, updated in place.
pub struct TerminalProgress<W: Write + Send> {
    state: Mutex<TerminalState<W>>,
}

struct TerminalState<W> {
    out: W,
    /// Layers in the order they were first seen, with their last event.
    lines: Vec<(Digest, LayerEvent, Instant)>,
}

/// Byte counters of one layer are redrawn at most this often.
const REDRAW: Duration = Duration::from_millis(100);

impl<W: Write + Send> TerminalProgress<W> {
    pub fn new(out: W) -> Self {
        TerminalProgress {
            state: Mutex::new(TerminalState {
                out,
                lines: Vec::new(),
            }),
        }
    }
}

impl<W: Write + Send> Progress for TerminalProgress<W> {
    fn start(&self, line: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(st.out, "{line}");
    }

    fn layer(&self, layer: &Digest, event: LayerEvent) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let n = st.lines.len();
        match st.lines.iter().position(|(d, _, _)| d == layer) {
            None => {
                st.lines.push((layer.clone(), event, now));
                let _ = writeln!(st.out, "{}: {event}", short(layer));
            }
            Some(i) => {
                let (_, last, at) = st.lines[i];
                let counter = matches!(
                    (last, event),
                    (
                        LayerEvent::Downloading { .. },
                        LayerEvent::Downloading { .. }
                    )
                );
                if last == event || (counter && now.duration_since(at) < REDRAW) {
                    return;
                }
                st.lines[i] = (layer.clone(), event, now);
                let up = n - i;
                // Up to the layer's line, clear it, rewrite it, back down.
                let _ = write!(
                    st.out,
                    "\x1b[{up}A\r\x1b[2K{}: {event}\r\x1b[{up}B",
                    short(layer)
                );
            }
        }
        let _ = st.out.flush();
    }

    fn finish(&self, lines: &[String]) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for line in lines {
            let _ = writeln!(st.out, "{line}");
        }
        let _ = st.out.flush();
    }
}

/// Renders progress as plain lines, one per state change.
pub struct PlainProgress<W: Write + Send> {
    out: Mutex<(W, Vec<(Digest, LayerEvent)>)>,
}

impl<W: Write + Send> PlainProgress<W> {
    pub fn new(out: W) -> Self {
        PlainProgress {
            out: Mutex::new((out, Vec::new())),
        }
    }
}

impl<W: Write + Send> Progress for PlainProgress<W> {
    fn start(&self, line: &str) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(g.0, "{line}");
    }

    fn layer(&self, layer: &Digest, event: LayerEvent) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let (out, seen) = &mut *g;
        let shown = match event {
            // A counter would flood a log: say once that it started.
            LayerEvent::Downloading { total, .. } => format!("Downloading {}", human_size(total)),
            other => other.to_string(),
        };
        let changed = match seen.iter_mut().find(|(d, _)| d == layer) {
            Some((_, last)) => {
                let same = std::mem::discriminant(last) == std::mem::discriminant(&event);
                *last = event;
                !same
            }
            None => {
                seen.push((layer.clone(), event));
                true
            }
        };
        if changed {
            let _ = writeln!(out, "{}: {shown}", short(layer));
        }
    }

    fn finish(&self, lines: &[String]) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        for line in lines {
            let _ = writeln!(g.0, "{line}");
        }
    }
}

/// Docker's human sizes: decimal units, three significant digits
/// (`12.3MB`, `456kB`, `1.05GB`, `512B`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes}B");
    }
    let decimals = if value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    format!("{value:.decimals$}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8) -> Digest {
        Digest::of(&[n])
    }

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(45_600_000), "45.6MB");
        assert_eq!(human_size(1_050_000_000), "1.05GB");
        assert_eq!(human_size(456_000), "456kB");
    }

    #[test]
    fn plain_lines_show_each_state_once() {
        let p = PlainProgress::new(Vec::new());
        let l = layer(1);
        p.layer(
            &l,
            LayerEvent::Downloading {
                done: 1,
                total: 2_000_000,
            },
        );
        p.layer(
            &l,
            LayerEvent::Downloading {
                done: 2,
                total: 2_000_000,
            },
        );
        p.layer(&l, LayerEvent::PullComplete);
        p.layer(&layer(2), LayerEvent::AlreadyExists);
        let out = String::from_utf8(p.out.into_inner().expect("lock").0).expect("utf8");
        let id1 = &l.hex()[..12];
        let l2 = layer(2);
        assert_eq!(
            out,
            format!(
                "{id1}: Downloading 2.00MB\n{id1}: Pull complete\n{}: Already exists\n",
                &l2.hex()[..12]
            )
        );
    }

    #[test]
    fn terminal_rewrites_a_layer_line_in_place() {
        let p = TerminalProgress::new(Vec::new());
        p.layer(&layer(1), LayerEvent::Waiting);
        p.layer(&layer(2), LayerEvent::Waiting);
        p.layer(&layer(1), LayerEvent::PullComplete);
        let out = String::from_utf8(p.state.into_inner().expect("lock").out).expect("utf8");
        let l1 = layer(1);
        let id1 = &l1.hex()[..12];
        assert!(
            out.ends_with(&format!("\x1b[2A\r\x1b[2K{id1}: Pull complete\r\x1b[2B")),
            "{out:?}"
        );
    }
}
