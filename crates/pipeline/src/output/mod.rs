//! Files the commands write. Everything is written under a temporary name and renamed into
//! place when complete: a killed run never leaves a file that looks finished.

mod features;

pub use features::{FeatureWriter, Features, read_features};

use std::path::{Path, PathBuf};

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
