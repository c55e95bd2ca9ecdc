//! Streaming safetensors writer for `[T, D]` f32 features plus `[T]` f64 timestamps, and,
//! when the decode measured it, `[T, M]` f32 motion (layout in `media::motion`; its version and
//! field names go in the metadata as `motion_layout` and `motion_fields`).
//!
//! Rows go to scratch files as they arrive (memory stays flat however long the video); at the
//! end the header, which needs `T`, is written and the rows are copied behind it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::atomic::{AtomicFile, folder_of};

#[derive(Debug)]
pub struct FeatureWriter {
    path: PathBuf,
    /// An unnamed file beside `path`: the OS frees it however the process ends.
    rows: BufWriter<File>,
    dim: usize,
    /// Motion rows, likewise, when the file is to have them.
    motion: Option<BufWriter<File>>,
    timestamps: Vec<f64>,
}

impl FeatureWriter {
    /// Starts a file that will appear at `path` when [`finish`](Self::finish) succeeds, with
    /// a `motion` tensor when `motion`.
    pub fn create(path: &Path, dim: usize, motion: bool) -> Result<Self> {
        let dir = folder_of(path);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let scratch = || {
            tempfile::tempfile_in(dir)
                .map(BufWriter::new)
                .with_context(|| format!("creating a scratch file beside {}", path.display()))
        };
        Ok(Self {
            path: path.to_path_buf(),
            rows: scratch()?,
            dim,
            motion: if motion { Some(scratch()?) } else { None },
            timestamps: Vec::new(),
        })
    }

    /// Appends rows: `features` holds `timestamps.len()` rows of `dim` values, `motion` one
    /// motion per timestamp when the file has motion (and `None` when not).
    pub fn push(
        &mut self,
        features: &[f32],
        timestamps: &[f64],
        motion: Option<&[media::Motion]>,
    ) -> Result<()> {
        if features.len() != timestamps.len() * self.dim {
            bail!(
                "{} feature values for {} timestamps of width {}",
                features.len(),
                timestamps.len(),
                self.dim
            );
        }
        match (&mut self.motion, motion) {
            (Some(out), Some(motion)) if motion.len() == timestamps.len() => {
                for m in motion {
                    for v in m.to_vec() {
                        out.write_all(&v.to_le_bytes())?;
                    }
                }
            }
            (None, None) => {}
            (want, got) => bail!(
                "motion for {} of {} timestamps, where the file {} motion",
                got.map_or(0, <[_]>::len),
                timestamps.len(),
                if want.is_some() { "has" } else { "has no" }
            ),
        }
        for v in features {
            self.rows.write_all(&v.to_le_bytes())?;
        }
        self.timestamps.extend_from_slice(timestamps);
        Ok(())
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Writes header, features, timestamps and motion, then puts the file in place.
    pub fn finish(self, metadata: &BTreeMap<String, String>) -> Result<PathBuf> {
        let t = self.timestamps.len();
        let features_bytes = t * self.dim * 4;
        let mut metadata = metadata.clone();
        let mut header = serde_json::json!({
            "features": {"dtype": "F32", "shape": [t, self.dim], "data_offsets": [0, features_bytes]},
            "timestamps": {"dtype": "F64", "shape": [t], "data_offsets": [features_bytes, features_bytes + t * 8]},
        });
        if self.motion.is_some() {
            let at = features_bytes + t * 8;
            let m = media::motion::LEN;
            header["motion"] = serde_json::json!(
                {"dtype": "F32", "shape": [t, m], "data_offsets": [at, at + t * m * 4]}
            );
            metadata.insert(
                "motion_layout".into(),
                media::motion::LAYOUT_VERSION.to_string(),
            );
            metadata.insert("motion_fields".into(), media::motion::layout().join(","));
        }
        header["__metadata__"] = serde_json::json!(metadata);
        let mut header = serde_json::to_vec(&header)?;
        // The data must start 8-byte aligned; the format pads the header with spaces.
        header.resize(header.len().next_multiple_of(8), b' ');

        let mut out = AtomicFile::create(&self.path)?;
        let write = || -> std::io::Result<()> {
            let mut rows = self.rows.into_inner().map_err(|e| e.into_error())?;
            rows.seek(SeekFrom::Start(0))?;
            out.write_all(&(header.len() as u64).to_le_bytes())?;
            out.write_all(&header)?;
            std::io::copy(&mut rows, &mut out)?;
            for ts in &self.timestamps {
                out.write_all(&ts.to_le_bytes())?;
            }
            if let Some(motion) = self.motion {
                let mut motion = motion.into_inner().map_err(|e| e.into_error())?;
                motion.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut motion, &mut out)?;
            }
            Ok(())
        };
        write().with_context(|| format!("writing {}", self.path.display()))?;
        out.commit()?;
        Ok(self.path)
    }
}

/// Features and timestamps read back from a file [`FeatureWriter`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// `timestamps.len()` rows of `dim` values.
    pub values: Vec<f32>,
    pub timestamps: Vec<f64>,
    pub dim: usize,
    /// `timestamps.len()` rows of [`media::motion::LEN`] values, when the file has motion of
    /// this build's layout.
    pub motion: Option<Vec<f32>>,
}

impl Features {
    /// Rows so far.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// The `[T, M]` F32 motion of a features file, if it has motion of this build's layout: a file
/// of another layout version reads as having none (so the cache extracts it again).
fn read_motion(
    st: &safetensors::SafeTensors,
    metadata: Option<&std::collections::HashMap<String, String>>,
    t: usize,
) -> Option<Vec<f32>> {
    let version = metadata?.get("motion_layout")?;
    if version != &media::motion::LAYOUT_VERSION.to_string() {
        return None;
    }
    let motion = st.tensor("motion").ok()?;
    (motion.dtype() == safetensors::Dtype::F32 && motion.shape() == [t, media::motion::LEN])
        .then(|| f32s(motion.data()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Reads a features file; fails on anything but `features` F32 `[T, D]` and `timestamps` F64
/// `[T]`.
pub fn read_features(path: &Path) -> Result<Features> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let features = st
        .tensor("features")
        .with_context(|| format!("{}: no features tensor", path.display()))?;
    let timestamps = st
        .tensor("timestamps")
        .with_context(|| format!("{}: no timestamps tensor", path.display()))?;
    let (t, dim) = match (features.dtype(), features.shape(), timestamps.dtype()) {
        (safetensors::Dtype::F32, &[t, d], safetensors::Dtype::F64)
            if timestamps.shape() == [t] =>
        {
            (t, d)
        }
        _ => bail!(
            "{}: expected features F32 [T, D] and timestamps F64 [T]",
            path.display()
        ),
    };
    let values = f32s(features.data());
    let timestamps: Vec<f64> = timestamps
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    debug_assert_eq!(values.len(), t * dim);
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let motion = read_motion(&st, header.metadata().as_ref(), t);
    Ok(Features {
        values,
        timestamps,
        dim,
        motion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_reads_back_with_the_safetensors_crate() {
        let dir = std::env::temp_dir().join(format!("features-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("sub/clip.safetensors");
        let mut w = FeatureWriter::create(&path, 3, false).expect("create");
        w.push(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[0.0, 0.04], None)
            .expect("push");
        w.push(&[7.0, 8.0, 9.0], &[0.08], None).expect("push");
        assert!(w.push(&[1.0], &[0.1], None).is_err());
        let meta = BTreeMap::from([("source".to_string(), "clip.mp4".to_string())]);
        w.finish(&meta).expect("finish");

        let bytes = std::fs::read(&path).expect("read");
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
        assert_eq!(
            header
                .metadata()
                .as_ref()
                .and_then(|m| m.get("source"))
                .map(String::as_str),
            Some("clip.mp4")
        );
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
        let f = st.tensor("features").expect("features");
        assert_eq!(f.shape(), [3, 3]);
        assert_eq!(f.dtype(), safetensors::Dtype::F32);
        let t = st.tensor("timestamps").expect("timestamps");
        assert_eq!(t.dtype(), safetensors::Dtype::F64);
        let ts: Vec<f64> = t
            .data()
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        assert_eq!(ts, [0.0, 0.04, 0.08]);
        let back = read_features(&path).expect("read back");
        assert_eq!((back.len(), back.dim), (3, 3));
        assert_eq!(back.row(2), [7.0, 8.0, 9.0]);
        // Nothing but the finished file is left behind.
        let left: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("ls")
            .collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
