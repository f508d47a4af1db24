//! A small tmpfs mounted for one test (a file system that fills up, for
//! the "disk full" cases), unmounted when dropped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a path of the test's scratch directory.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=…`: `16m`, `160m`) at
    /// `path`, made first.
    pub fn mount(path: PathBuf, size: &str) -> Tmpfs {
        fs::create_dir_all(&path).expect("the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount a tmpfs: {out:?}");
        Tmpfs(path)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Fills the file system but for `free` bytes with a file, `filler`,
    /// whose path it returns.
    pub fn fill_but(&self, free: u64) -> PathBuf {
        let filler = self.0.join("filler");
        let mut file = fs::File::create(&filler).expect("the filler");
        let block = vec![0x5a_u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let len = file.metadata().expect("its size").len();
        file.set_len(len - free).expect("free some");
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
