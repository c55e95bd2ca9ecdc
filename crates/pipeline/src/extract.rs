//! One video's per-frame features to a safetensors file, with what made them in its metadata:
//! what `pipeline extract` does for each input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

use crate::backbone::Backbone;
use crate::features::{VideoRun, describe_decode, describe_motion, video_batches};
use crate::output::FeatureWriter;
use media::{DecodeOptions, DecodeReport, Liveness, MotionSource, Source};

/// What one extraction did.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub frames: usize,
    pub seconds: f64,
}

/// Features of `input`'s sampled frames to `out` (which appears only when complete).
pub fn extract_video(
    input: &Path,
    out: &Path,
    options: &DecodeOptions,
    backbone: &Backbone,
) -> Result<Extracted> {
    extract_source(&Source::file(input), out, options, backbone)
}

/// [`extract_video`] for any source that ends (a file, standard input). A file whose reading
/// is stopped before its end gives nothing; standard input's stop is its end.
pub fn extract_source(
    input: &Source,
    out: &Path,
    options: &DecodeOptions,
    backbone: &Backbone,
) -> Result<Extracted> {
    let motion = options.motion != MotionSource::Off && !options.sampling.keyframes;
    let mut writer = FeatureWriter::create(out, vision::FEATURE_DIM, motion)?;
    let run = video_batches(
        input,
        options,
        backbone,
        backbone.batch(),
        None,
        false,
        |b| writer.push(&b.host_features()?, &b.timestamps, b.motion.as_deref()),
    )?;
    if run.decode.interrupted && run.info.liveness == Liveness::File {
        bail!("{}: interrupted before its end", input.name());
    }
    let frames = writer.len();
    let metadata = metadata(&input.name(), options, backbone, &run, frames);
    writer.finish(&metadata)?;
    Ok(Extracted {
        frames,
        seconds: run.seconds,
    })
}

/// Features of any source to `dir`. A live one gives a safetensors file per `segment` seconds
/// of stream, `<stem>-<UTC time of its first frame>.safetensors`, each put in place when its
/// segment is complete, so memory stays flat and a killed run loses at most one segment; a
/// stop (Ctrl-C) ends it and the last segment is written as it is. Any other (standard input,
/// a URL to a finished file) gives one file, `<stem>.safetensors`, as [`extract_source`] does.
/// Returns the files written, in order, with their frames.
pub fn extract_stream(
    input: &Source,
    dir: &Path,
    segment: f64,
    options: &DecodeOptions,
    backbone: &Backbone,
) -> Result<Vec<(PathBuf, usize)>> {
    let motion = options.motion != MotionSource::Off && !options.sampling.keyframes;
    let stem = input.stem();
    // The open segment: its writer, its first timestamp, its path.
    let mut open: Option<(FeatureWriter, f64, PathBuf)> = None;
    let mut closed: Vec<(FeatureWriter, PathBuf)> = Vec::new();
    let mut written = Vec::new();
    let mut names = std::collections::HashSet::new();
    let dim = vision::FEATURE_DIM;
    let run = video_batches(
        input,
        options,
        backbone,
        backbone.batch(),
        None,
        false,
        |b| {
            let features = b.host_features()?;
            let live = b.liveness == Liveness::Live;
            for (i, &t) in b.timestamps.iter().enumerate() {
                if let Some((writer, start, path)) = open.take() {
                    if live && t - start >= segment {
                        closed.push((writer, path));
                    } else {
                        open = Some((writer, start, path));
                    }
                }
                let (writer, _, _) = match &mut open {
                    Some(segment) => segment,
                    None => {
                        // Two segments that start in the same second (a burst of buffered
                        // data) get a suffix.
                        let name = if live {
                            format!("{stem}-{}", utc(b.arrivals[i]))
                        } else {
                            stem.clone()
                        };
                        let mut path = dir.join(format!("{name}.safetensors"));
                        for k in 2.. {
                            if !names.contains(&path) {
                                break;
                            }
                            path = dir.join(format!("{name}-{k}.safetensors"));
                        }
                        names.insert(path.clone());
                        open.insert((FeatureWriter::create(&path, dim, motion)?, t, path))
                    }
                };
                let motion = b.motion.as_ref().map(|m| std::slice::from_ref(&m[i]));
                writer.push(&features[i * dim..(i + 1) * dim], &[t], motion)?;
            }
            for (writer, path) in closed.drain(..) {
                let frames = writer.len();
                let meta = segment_metadata(input, options, backbone, None, frames);
                writer.finish(&meta)?;
                tracing::info!("{}: {} ({frames} frames)", input.name(), path.display());
                written.push((path, frames));
            }
            Ok(())
        },
    )?;
    if run.decode.interrupted && run.info.liveness == Liveness::File {
        bail!("{}: interrupted before its end", input.name());
    }
    if let Some((writer, _, path)) = open {
        let frames = writer.len();
        let meta = segment_metadata(input, options, backbone, Some(&run.decode), frames);
        writer.finish(&meta)?;
        written.push((path, frames));
    }
    Ok(written)
}

fn segment_metadata(
    input: &Source,
    options: &DecodeOptions,
    backbone: &Backbone,
    decode: Option<&DecodeReport>,
    frames: usize,
) -> BTreeMap<String, String> {
    let mut meta = common_metadata(&input.name(), options, backbone, frames);
    // The decode's counters are known when it ends: in the last segment.
    if let Some(decode) = decode {
        meta.insert("decoder_warnings".into(), describe_decode(decode));
    }
    meta.insert(
        "timestamps".into(),
        "seconds of the live stream: 0 at its first packet, increasing across reconnects".into(),
    );
    meta
}

/// `when` as a compact UTC time for file names: `20261205T004512Z`.
fn utc(when: SystemTime) -> String {
    let secs = when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// What made a file of features: everything but the decode's own counters.
fn common_metadata(
    source: &str,
    options: &DecodeOptions,
    backbone: &Backbone,
    frames: usize,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("source".to_string(), source.to_string()),
        ("backbone".to_string(), backbone.variant_name().to_string()),
        ("weights".to_string(), backbone.weights.clone()),
        (
            "precision".to_string(),
            backbone.precision().name().to_string(),
        ),
        ("sampling".to_string(), options.sampling.describe()),
        ("input_size".to_string(), format!("{0}x{0}", options.size)),
        ("motion".to_string(), describe_motion(options)),
        ("frames".to_string(), frames.to_string()),
        (
            "producer".to_string(),
            format!("pipeline {}", env!("CARGO_PKG_VERSION")),
        ),
    ])
}

fn metadata(
    source: &str,
    options: &DecodeOptions,
    backbone: &Backbone,
    run: &VideoRun,
    frames: usize,
) -> BTreeMap<String, String> {
    let mut meta = common_metadata(source, options, backbone, frames);
    meta.extend([
        (
            "frame_size".to_string(),
            format!("{}x{}", run.info.width, run.info.height),
        ),
        ("rotation".to_string(), run.info.rotation.to_string()),
        ("codec".to_string(), run.info.codec.clone()),
        ("decoder_warnings".to_string(), describe_decode(&run.decode)),
    ]);
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_names_sort_by_time() {
        let at = |secs: u64| utc(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        // 2026-12-05 00:45:12 UTC.
        assert_eq!(at(1_796_431_512), "20261205T004512Z");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(at(1_709_251_199), "20240229T235959Z");
    }
}
