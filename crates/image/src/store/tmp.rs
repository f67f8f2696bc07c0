//! Work in progress: a private temporary area per process, and file locks.
//!
//! Everything the store writes is first written under `<root>/tmp/<pid>-<n>/`
//! and renamed into place once verified, so a crash at any moment leaves only
//! a directory under `tmp/`. Each process holds an exclusive `flock` on the
//! lock file of its area for as long as the `Store` lives; at open, any area
//! whose lock can be taken belongs to a dead process and is removed. (A lock
//! rather than a pid check: pids are reused, flocks die with their process.)

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

/// This process's temporary area under `<root>/tmp`.
#[derive(Debug)]
pub(crate) struct TempArea {
    dir: PathBuf,
    next: AtomicU64,
    _lock: FileLock,
}

impl TempArea {
    /// Removes the areas of dead processes, then creates and locks our own.
    pub(crate) fn create(tmp_root: &Path) -> Result<TempArea, StoreError> {
        clean_stale(tmp_root)?;
        let name = format!("{}-{}", std::process::id(), nonce());
        let lock_path = tmp_root.join(format!("{name}.lock"));
        let lock = FileLock::acquire(&lock_path, true)?
            .ok_or_else(|| StoreError::io("lock", &lock_path, io::ErrorKind::WouldBlock.into()))?;
        let dir = tmp_root.join(&name);
        fs::create_dir(&dir).map_err(|e| StoreError::io("create directory", &dir, e))?;
        Ok(TempArea {
            dir,
            next: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// A fresh, unused path inside the area (nothing is created).
    pub(crate) fn path(&self, what: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{what}-{n}"))
    }

    /// A new empty directory inside the area, removed on drop unless renamed away.
    pub(crate) fn dir(&self, what: &str) -> Result<TempDir, StoreError> {
        let path = self.path(what);
        fs::create_dir(&path).map_err(|e| StoreError::io("create directory", &path, e))?;
        Ok(TempDir { path })
    }

    /// A new file inside the area, removed on drop unless renamed away.
    pub(crate) fn file(&self, what: &str) -> Result<(TempPath, File), StoreError> {
        let path = self.path(what);
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io("create", &path, e))?;
        Ok((TempPath { path }, file))
    }
}

impl Drop for TempArea {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(self.dir.with_extension("lock"));
    }
}

/// A temporary directory, removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the directory to `dest`. `Ok(false)` when `dest` already
    /// exists (another process completed the same work first); the temporary
    /// copy is then removed.
    pub(crate) fn persist(self, dest: &Path) -> Result<bool, StoreError> {
        match fs::rename(&self.path, dest) {
            Ok(()) => {
                std::mem::forget(self);
                Ok(true)
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                Ok(false)
            }
            Err(e) => Err(StoreError::io("rename into place", dest, e)),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// A temporary file path, removed on drop unless persisted.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
}

impl TempPath {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `dest`, replacing any file there (same content by
    /// construction: destinations are content addressed).
    pub(crate) fn persist(self, dest: &Path) -> Result<(), StoreError> {
        fs::rename(&self.path, dest).map_err(|e| StoreError::io("rename into place", dest, e))?;
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// An exclusive `flock` held until drop.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock, waiting unless `nonblocking`; `Ok(None)` when a
    /// nonblocking attempt finds it held.
    pub(crate) fn acquire(path: &Path, nonblocking: bool) -> Result<Option<FileLock>, StoreError> {
        let op = if nonblocking {
            libc::LOCK_EX | libc::LOCK_NB
        } else {
            libc::LOCK_EX
        };
        Self::flock(path, op)
    }

    /// Waits for a shared or an exclusive lock.
    pub(crate) fn acquire_mode(path: &Path, shared: bool) -> Result<FileLock, StoreError> {
        let op = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
        Self::flock(path, op)?
            .ok_or_else(|| StoreError::io("flock", path, io::ErrorKind::WouldBlock.into()))
    }

    fn flock(path: &Path, op: libc::c_int) -> Result<Option<FileLock>, StoreError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io("open lock file", path, e))?;
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(Some(FileLock { _file: file }));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if op & libc::LOCK_NB != 0 => return Ok(None),
                _ => return Err(StoreError::io("flock", path, err)),
            }
        }
    }
}

/// Removes every area under `tmp_root` whose lock nobody holds, and every
/// lock file or entry left without its area.
fn clean_stale(tmp_root: &Path) -> Result<(), StoreError> {
    let entries =
        fs::read_dir(tmp_root).map_err(|e| StoreError::io("read directory", tmp_root, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "lock") {
            continue;
        }
        let lock_path = path.with_extension("lock");
        if let Some(_held) = FileLock::acquire(&lock_path, true)? {
            remove_tree(&path);
            let _ = fs::remove_file(&lock_path);
        }
    }
    // Lock files whose area is gone (the process died between the two steps).
    for entry in fs::read_dir(tmp_root).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "lock") && !path.with_extension("").exists() {
            if let Some(_held) = FileLock::acquire(&path, true)? {
                let _ = fs::remove_file(&path);
            }
        }
    }
    Ok(())
}

/// Removes a file or a directory tree; errors are ignored (what remains is
/// garbage under `tmp/` that the next open removes again).
pub(crate) fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_err() {
        let _ = fs::remove_file(path);
    }
}

fn nonce() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t % 1_000_000_007
}
