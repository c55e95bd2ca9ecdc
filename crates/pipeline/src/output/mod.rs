//! Files the commands write. Everything is written under a temporary name, fsynced and renamed
//! into place when complete ([`AtomicFile`]): a killed run never leaves a file that looks
//! finished, and [`remove_stale_temp_files`] clears what it left.

mod atomic;
mod features;

pub use atomic::{AtomicFile, remove_stale_temp_files, write_file};
pub use features::{FeatureWriter, Features, read_features};

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

/// `dir/relative` with its extension replaced by `extension`.
pub fn mirrored_path(dir: &Path, relative: &Path, extension: &str) -> PathBuf {
    dir.join(relative).with_extension(extension)
}

/// Pretty JSON, written atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_file(path, &bytes)
}
