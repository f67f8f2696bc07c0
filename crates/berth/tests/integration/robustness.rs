//! Concurrency and crashes: two pulls at once, and pulls killed with
//! SIGKILL at several moments, followed by a pull that must complete.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A kill-worthy image: three layers of incompressible data (~4 MB each).
fn big_image() -> BuiltImage {
    let layers = (0..3)
        .map(|i| {
            (
                LayerTar::new()
                    .dir("d", 0o755)
                    .file(&format!("d/blob{i}"), &noise(4 << 20, 11 + i))
                    .finish(),
                Codec::Gzip,
            )
        })
        .collect::<Vec<_>>();
    build_image(&layers, false, "amd64")
}

/// The store holds exactly the image, complete, and no temp leftovers.
fn assert_consistent(root: &Root, img: &BuiltImage, name: &str) {
    let images = root.images();
    assert_eq!(images.len(), 1, "exactly one image: {images:?}");
    assert_eq!(
        images[0]["ID"],
        serde_json::json!(&img.config_digest.hex()[..12])
    );
    let chains = image::manifest::chain_ids(&img.diff_ids);
    for chain in &chains {
        let blob = root.path().join("snapshots").join(chain.hex()).join("fs/d");
        assert!(blob.is_dir(), "snapshot {chain} complete");
    }
    assert_eq!(
        root.entries("snapshots").len(),
        chains.len(),
        "no stray snapshots: {:?}",
        root.entries("snapshots")
    );
    for (desc, blob) in &img.layers {
        let stored = std::fs::read(root.path().join("blobs/sha256").join(desc.digest.hex()))
            .expect("layer blob stored");
        assert!(stored == *blob, "blob {} intact", desc.digest);
    }
    assert!(
        root.entries("tmp").is_empty(),
        "temp area cleaned: {:?}",
        root.entries("tmp")
    );
    root.ok(&["inspect", name]);
}

#[test]
fn two_concurrent_pulls_of_one_image_both_succeed() {
    let Some(reg) = registry() else { return };
    let img = big_image();
    let name = format!("{}/test/concurrent:1", reg.addr);
    push_image(&name, &img);
    let root = Root::new();
    let spawn = || {
        root.command(&["pull", &name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let mut unpacked = 0;
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "concurrent pull failed: {stderr}");
        unpacked += stderr.matches("Pull complete").count();
    }
    assert_eq!(
        unpacked,
        img.layers.len(),
        "each layer unpacked by exactly one of the two pulls"
    );
    assert_consistent(&root, &img, &name);
}

#[test]
fn a_pull_killed_at_any_moment_is_completed_by_the_next_pull() {
    let Some(reg) = registry() else { return };
    let img = big_image();
    let name = format!("{}/test/killed:1", reg.addr);
    push_image(&name, &img);
    // Measure a whole pull to spread the kill points over it.
    let probe = Root::new();
    let start = Instant::now();
    probe.ok(&["pull", "-q", &name]);
    let full = start.elapsed().as_millis() as u64;
    for percent in [1u64, 10, 30, 50, 70, 90] {
        let root = Root::new();
        let mut child = root
            .command(&["pull", "-q", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(full * percent / 100));
        // SIGKILL by our own child's pid.
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the kill left, listing works and shows no half image.
        let images = root.images();
        assert!(images.len() <= 1, "at {percent}%: {images:?}");
        root.ok(&["pull", "-q", &name]);
        assert_consistent(&root, &img, &name);
    }
}

/// Unmounts the tmpfs a test mounted over its store, also when it fails.
struct TmpfsMount(std::path::PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_fails_the_pull_with_one_line_and_the_next_pull_completes() {
    let Some(reg) = registry() else { return };
    let img = big_image();
    let name = format!("{}/test/fulldisk:1", reg.addr);
    push_image(&name, &img);
    let root = Root::new();
    // A 6 MiB store for an image of ~24 MiB (blobs + snapshots).
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "berth-test-full"])
        .arg(root.path())
        .status()
        .expect("run mount (the test needs root)");
    assert!(status.success(), "mount a small tmpfs over the store");
    let _mounted = TmpfsMount(root.path().to_path_buf());

    let err = root.fails(&["pull", "-q", &name]);
    assert!(
        err.contains("No space left on device"),
        "the error says the disk is full: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(root.images().is_empty(), "no image recorded");
    assert!(
        root.entries("snapshots").is_empty() && root.entries("tmp").is_empty(),
        "nothing half-done stays: snapshots {:?}, tmp {:?}",
        root.entries("snapshots"),
        root.entries("tmp")
    );

    let status = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(root.path())
        .status()
        .expect("remount the tmpfs larger");
    assert!(status.success(), "grow the tmpfs");
    root.ok(&["pull", "-q", &name]);
    assert_consistent(&root, &img, &name);
}
