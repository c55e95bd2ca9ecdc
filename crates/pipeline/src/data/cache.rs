//! The feature cache: each clip's features are extracted once per input content, backbone and
//! sampling, and read back by every later run.
//!
//! An entry is a features file (the same format `pipeline extract` writes) named by two hashes:
//! the clip file's bytes, and the settings that shape its features (backbone weights, sampling,
//! input size, segment). Entries are written under a temporary name and renamed when complete,
//! so an interrupted run leaves only whole entries behind; a damaged entry is extracted again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::backbone::Backbone;
use crate::features::video_features;
use crate::hash::{file_hash, hash_bytes};
use crate::output::{FeatureWriter, Features, read_features};
use media::DecodeOptions;

/// The default cache folder: `$XDG_CACHE_HOME/video-pipeline/features`, else
/// `~/.cache/video-pipeline/features`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("video-pipeline")
        .join("features")
}

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cached,
    Extracted,
}

/// A clip's features and where they are kept.
#[derive(Debug)]
pub struct Entry {
    pub features: Features,
    pub source: Source,
    pub path: PathBuf,
}

#[derive(Debug)]
pub struct FeatureCache {
    dir: PathBuf,
}

impl FeatureCache {
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating cache folder {}", dir.display()))?;
        crate::output::remove_stale_temp_files(dir);
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The features of `path` (or its `segment`) under `options`, from the cache or extracted
    /// now and stored.
    pub fn features(
        &self,
        path: &Path,
        segment: Option<(f64, f64)>,
        options: &DecodeOptions,
        backbone: &Backbone,
        batch: usize,
    ) -> Result<Entry> {
        let mut options = options.clone();
        if let Some((start, end)) = segment {
            options.sampling.start = Some(start);
            options.sampling.end = end.is_finite().then_some(end);
        }
        let motion = options.motion != media::MotionSource::Off && !options.sampling.keyframes;
        let mut settings = format!(
            "{} | {} | size={}",
            backbone.fingerprint,
            options.sampling.describe(),
            options.size
        );
        if motion {
            // Entries without motion keep their old names (and stay valid).
            settings.push_str(&format!(
                " | motion={} v{} m{}",
                crate::features::describe_motion(&options),
                media::motion::LAYOUT_VERSION,
                media::motion::MEASURE_VERSION
            ));
        }
        let entry = self.dir.join(format!(
            "{:016x}-{:016x}.safetensors",
            file_hash(path)?,
            hash_bytes(settings.as_bytes())
        ));
        if entry.exists() {
            match read_features(&entry) {
                Ok(features) if features.motion.is_some() || !motion => {
                    return Ok(Entry {
                        features,
                        source: Source::Cached,
                        path: entry,
                    });
                }
                Ok(_) => tracing::warn!("{}: no motion; extracting again", entry.display()),
                Err(e) => tracing::warn!("{e:#}; extracting again"),
            }
        }
        let mut writer = FeatureWriter::create(&entry, vision::FEATURE_DIM, motion)?;
        video_features(path, &options, backbone, batch, |b| {
            writer.push(&b.host_features()?, &b.timestamps, b.motion.as_deref())
        })?;
        let metadata = BTreeMap::from([
            ("source".to_string(), path.display().to_string()),
            ("settings".to_string(), settings),
        ]);
        writer.finish(&metadata)?;
        Ok(Entry {
            features: read_features(&entry)?,
            source: Source::Extracted,
            path: entry,
        })
    }
}
