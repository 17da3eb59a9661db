//! The real disk: a file, through redb's own `FileBackend` (positioned I/O, `fdatasync`, locks).

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use redb::StorageBackend;
use redb::backends::FileBackend;

use super::{Disk, DiskUsage};

/// A file on the real file system; created empty if it does not exist.
#[derive(Debug, Clone)]
pub struct FileDisk {
    path: PathBuf,
}

impl FileDisk {
    /// A disk backed by the file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self { path: path.as_ref().to_path_buf() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Disk for FileDisk {
    fn open_backend(&self) -> io::Result<Box<dyn StorageBackend>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        let backend = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(Box::new(backend))
    }

    fn usage(&self) -> io::Result<DiskUsage> {
        let used_bytes = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(DiskUsage { used_bytes, capacity_bytes: None })
    }
}
