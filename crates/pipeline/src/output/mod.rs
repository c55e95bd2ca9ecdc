//! Files the commands write. Everything is written under a temporary name and renamed into
//! place when complete: a killed run never leaves a file that looks finished.

mod features;

pub use features::{FeatureWriter, Features, read_features};

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

/// `dir/relative` with its extension replaced by `extension`.
pub fn mirrored_path(dir: &Path, relative: &Path, extension: &str) -> PathBuf {
    dir.join(relative).with_extension(extension)
}

/// A sibling temporary name for `path`, unique to this process.
pub fn temp_path(path: &Path, tag: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{tag}-{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Pretty JSON written under a temporary name and renamed into place.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = temp_path(path, "json");
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}
