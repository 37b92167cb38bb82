//! Small state files (sink positions) replaced atomically: write tmp, fsync, rename, fsync dir.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::recovery::sync_dir;
use super::{lock, WalError};

const SUFFIX: &str = ".json";
const TMP_SUFFIX: &str = ".json.tmp";

/// A directory of named JSON checkpoints. After a crash a checkpoint holds either
/// its old or its new value, never a mix: the new value is written to a temporary
/// file, fsynced, renamed over the old one, and the directory fsynced.
///
/// One process owns a checkpoint directory (the same one that owns the WAL).
#[derive(Debug)]
pub struct Checkpoints {
    dir: PathBuf,
    /// Serialises saves so two saves of one name never share the tmp file.
    write: Mutex<()>,
}

/// Any single path component: the suffix keeps `.`/`..` from being special.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && !name.contains(['/', '\0'])
}

impl Checkpoints {
    /// Opens (creating) `dir` and removes temporary files a crash left behind.
    pub fn open(dir: PathBuf) -> Result<Self, WalError> {
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(TMP_SUFFIX)) {
                tracing::debug!(file = ?name, "removing leftover checkpoint tmp file");
                match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(Checkpoints { dir, write: Mutex::new(()) })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str, suffix: &str) -> Result<PathBuf, WalError> {
        if !valid_name(name) {
            return Err(WalError::InvalidName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}{suffix}")))
    }

    /// Durably replaces checkpoint `name` with `value`.
    pub fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<(), WalError> {
        let path = self.path(name, SUFFIX)?;
        let tmp = self.path(name, TMP_SUFFIX)?;
        let bytes = serde_json::to_vec(value).map_err(|source| WalError::Checkpoint { name: name.to_string(), source })?;
        let _guard = lock(&self.write);
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// The last saved value of `name`, or `None` if it was never saved.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, WalError> {
        let path = self.path(name, SUFFIX)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|source| WalError::Checkpoint { name: name.to_string(), source })
    }
}
