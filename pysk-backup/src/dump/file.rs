//! A dump's file as it is written: 0600, new, hashed and counted.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use pysk_common::error::write_err;

use crate::error::BackupError;

/// A dump's file as it is written: 0600, new, hashed and counted.
#[derive(Debug)]
pub struct DumpFile {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    bytes: u64,
}

impl DumpFile {
    /// Creates `path` (it must not exist), mode 0600.
    pub fn create(path: &Path) -> Result<DumpFile, BackupError> {
        Ok(DumpFile {
            file: super::set::create_file(path)?,
            path: path.to_owned(),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Syncs the file: its size and SHA-256 (hex).
    pub fn finish(self) -> Result<(u64, String), BackupError> {
        self.file.sync_all().map_err(write_err(&self.path))?;
        let sha: String = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((self.bytes, sha))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for DumpFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
