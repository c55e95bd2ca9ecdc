//! The feature cache: each clip's features are extracted once per input content, backbone and
//! sampling, and read back by every later run.
//!
//! An entry is a features file (the same format `pipeline extract` writes) named by two hashes:
//! the clip file's bytes, and the settings that shape its features (backbone weights, sampling,
//! input size, segment). Entries are written under a temporary name and renamed when complete,
//! so an interrupted run leaves only whole entries behind; a damaged entry is extracted again.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::backbone::Backbone;
use crate::commands::video_features;
use crate::decode::DecodeOptions;
use crate::output::{FeatureWriter, Features, read_features};

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
        let settings = format!(
            "{} | {} | size={}",
            backbone.fingerprint,
            options.sampling.describe(),
            options.size
        );
        let entry = self.dir.join(format!(
            "{:016x}-{:016x}.safetensors",
            file_hash(path)?,
            hash_bytes(settings.as_bytes())
        ));
        if entry.exists() {
            match read_features(&entry) {
                Ok(features) => {
                    return Ok(Entry {
                        features,
                        source: Source::Cached,
                        path: entry,
                    });
                }
                Err(e) => tracing::warn!("{e:#}; extracting again"),
            }
        }
        let mut writer = FeatureWriter::create(&entry, vision::FEATURE_DIM)?;
        video_features(path, &options, backbone, batch, |b| {
            writer.push(&b.host_features()?, &b.timestamps)
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

/// A 64-bit hash of a file's length and bytes.
pub fn file_hash(path: &Path) -> Result<u64> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.write(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// A 64-bit hash of `bytes`.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = Hasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// FNV-1a over 8-byte words, then a final avalanche: stable across runs, machines and Rust
/// versions (unlike `DefaultHasher`), fast enough to hash video files. Not cryptographic: a
/// cache key, not a signature.
struct Hasher {
    state: u64,
    tail: Vec<u8>,
    len: u64,
}

impl Hasher {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Self {
            state: 0xcbf2_9ce4_8422_2325,
            tail: Vec::with_capacity(8),
            len: 0,
        }
    }

    fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (8 - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() == 8 {
                let word = std::mem::take(&mut self.tail);
                self.word(&word);
            }
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.word(w);
        }
        self.tail.extend_from_slice(words.remainder());
    }

    fn word(&mut self, w: &[u8]) {
        let mut v = [0u8; 8];
        v[..w.len()].copy_from_slice(w);
        self.state = (self.state ^ u64::from_le_bytes(v)).wrapping_mul(Self::PRIME);
    }

    fn finish(mut self) -> u64 {
        let tail = std::mem::take(&mut self.tail);
        self.word(&tail);
        let mut z = self.state ^ self.len;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_the_same_however_the_bytes_arrive() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = hash_bytes(&data);
        for split in [1, 7, 8, 9, 500, 999] {
            let mut h = Hasher::new();
            h.write(&data[..split]);
            h.write(&data[split..]);
            assert_eq!(h.finish(), whole, "split at {split}");
        }
        let mut changed = data.clone();
        changed[500] ^= 1;
        assert_ne!(hash_bytes(&changed), whole);
        // Trailing zeros change the length, so the hash.
        assert_ne!(hash_bytes(&[1, 0]), hash_bytes(&[1]));
    }
}
