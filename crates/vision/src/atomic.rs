//! Files that appear complete or not at all: written to a temporary file in the target's
//! directory (so the final rename never crosses file systems) and renamed on commit.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, VisionError};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file being written under a temporary name; dropped without [`AtomicFile::commit`],
/// the temporary file is removed and the target is left untouched.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `target` (its directory must exist).
    pub fn create(target: &Path) -> Result<Self> {
        let name = target.file_name().ok_or_else(|| {
            VisionError::Invalid(format!("{} is not a file path", target.display()))
        })?;
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let temp = dir.join(format!(
            ".{}.{}-{}.part",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&temp).map_err(|e| VisionError::io(&temp, e))?;
        Ok(Self {
            target: target.to_path_buf(),
            temp,
            writer: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The temporary path (for tests and error messages).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Appends bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let temp = &self.temp;
        match self.writer.as_mut() {
            Some(w) => w.write_all(bytes).map_err(|e| VisionError::io(temp, e)),
            None => Err(VisionError::Invalid("write after commit".into())),
        }
    }

    /// The underlying writer, for formatted output.
    pub fn writer(&mut self) -> Result<&mut BufWriter<File>> {
        self.writer
            .as_mut()
            .ok_or_else(|| VisionError::Invalid("write after commit".into()))
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<PathBuf> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| VisionError::Invalid("double commit".into()))?;
        let file = writer
            .into_inner()
            .map_err(|e| VisionError::io(&self.temp, e.into_error()))?;
        file.sync_all()
            .map_err(|e| VisionError::io(&self.temp, e))?;
        drop(file);
        std::fs::rename(&self.temp, &self.target).map_err(|e| VisionError::io(&self.target, e))?;
        Ok(self.target.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Best effort: the only goal is not to leave a half-written file behind.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.bin");
        let mut f = AtomicFile::create(&target).expect("create");
        f.write_all(b"hello").expect("write");
        assert!(!target.exists());
        f.commit().expect("commit");
        assert_eq!(std::fs::read(&target).expect("read"), b"hello");

        let other = dir.path().join("other.bin");
        let mut f = AtomicFile::create(&other).expect("create");
        f.write_all(b"partial").expect("write");
        let temp = f.temp_path().to_path_buf();
        assert!(temp.exists());
        drop(f);
        assert!(!temp.exists() && !other.exists());
    }
}
