//! A backup file being written.
//!
//! Guarantees: the file appears under its final name only once it is complete and
//! fsynced; until then it is `<out>.partial` (0600, created exclusively), which is
//! removed on any failure, on a stop signal and when the writer is dropped
//! unfinished; an existing file is never overwritten.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{BackupError, Protect, archive, interrupt};
use crate::direct::DirectFile;

/// A new backup file: written as `<out>.partial` (0600, created exclusively, so two
/// exports to one name cannot mix their bytes), renamed into place by `finish` after
/// an fsync; removed if dropped unfinished or if finishing fails.
pub struct Output {
    partial: PathBuf,
    out: PathBuf,
    file: Option<DirectFile>,
    renamed: bool,
}

impl Output {
    pub fn create(out: &Path) -> Result<Self, BackupError> {
        // A dangling symbolic link counts too: the rename would replace it.
        if out.symlink_metadata().is_ok() {
            return Err(BackupError::Usage(format!(
                "{} already exists; choose another name",
                out.display()
            )));
        }
        let mut partial = out.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = DirectFile::create_new(&partial, 0o600).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => BackupError::Usage(format!(
                    "{} exists: another export to this name is running, or one was killed; remove it if none runs",
                    partial.display()
                )),
                _ => BackupError::Usage(format!("cannot write {}: {e}", partial.display())),
            })?;
        interrupt::leaving(&partial);
        Ok(Self {
            partial,
            out: out.to_path_buf(),
            // Straight to the disk while the export goes on: the final fsync is short.
            file: Some(file),
            renamed: false,
        })
    }

    /// Encrypts everything `source` yields into the file. Does not finish it.
    pub fn encrypt_from(
        &mut self,
        protect: &Protect,
        source: &mut dyn Read,
        progress: archive::Progress<'_>,
    ) -> Result<u64, BackupError> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| BackupError::Source("output already finished".into()))?;
        let mut writer = protect.encryptor()?.wrap_output(file)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            interrupt::check().map_err(|_| BackupError::Stopped)?;
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BackupError::Source(e.to_string())),
            };
            writer.write_all(&buf[..n])?;
            total += n as u64;
            progress(total);
        }
        writer.finish()?;
        Ok(total)
    }

    /// Makes the file durable and gives it its final name.
    pub fn finish(mut self) -> Result<PathBuf, BackupError> {
        interrupt::check().map_err(|_| BackupError::Stopped)?;
        if let Some(file) = self.file.take() {
            file.finish()?.sync_all()?;
        }
        if self.out.symlink_metadata().is_ok() {
            return Err(BackupError::Usage(format!(
                "{} appeared while the backup was written; choose another name",
                self.out.display()
            )));
        }
        fs::rename(&self.partial, &self.out)?;
        self.renamed = true;
        if let Some(dir) = self.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.out.clone())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.partial);
        }
    }
}
