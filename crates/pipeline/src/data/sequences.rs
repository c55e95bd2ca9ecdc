//! From clips to the feature sequences the temporal crate trains on.
//!
//! - classify: one sequence per clip; clips up to `clip_len` steps are used whole, longer ones
//!   are sampled uniformly down to `clip_len` steps;
//! - anticipate: one timeline per video and split, each step labelled by the manifest segment
//!   it falls in (a clip without a segment labels its whole video), cut into overlapping
//!   windows of `clip_len` steps;
//! - forecast: every clip cut into the same windows, unlabelled.

use std::path::PathBuf;

use serde::Serialize;
use temporal::{Sequence, Target};

use super::cache::{FeatureCache, Source};
use super::{Dataset, Split};
use crate::backbone::Backbone;
use crate::output::Features;
use crate::progress::{self, BarSpec, Unit as BarUnit};
use crate::streams::Streams;
use crate::task::Task;
use media::DecodeOptions;

/// A piece of video whose features are extracted as one.
#[derive(Debug, Clone)]
pub struct Unit {
    pub path: PathBuf,
    /// The class name (classify) for listings.
    pub label: Option<String>,
    pub segment: Option<(f64, f64)>,
    pub split: Split,
    /// The footage it was cut from (see [`super::Clip::group`]).
    pub group: String,
    labels: Labels,
}

#[derive(Debug, Clone)]
enum Labels {
    Clip(usize),
    /// `(start, end, class)` spans; steps outside them are unlabelled.
    Spans(Vec<(f64, f64, usize)>),
    None,
}

/// What the task reads from each clip of `dataset`; `class_of` maps a label to its index in the
/// model's classes.
pub fn units(dataset: &Dataset, task: Task, class_of: impl Fn(&str) -> Option<usize>) -> Vec<Unit> {
    let label = |c: &super::Clip| c.label.as_deref().and_then(&class_of);
    match task {
        Task::Classify => dataset
            .clips
            .iter()
            .filter_map(|c| {
                Some(Unit {
                    path: c.path.clone(),
                    label: c.label.clone(),
                    segment: c.segment,
                    split: c.split,
                    group: c.group.clone(),
                    labels: Labels::Clip(label(c)?),
                })
            })
            .collect(),
        Task::Forecast => dataset
            .clips
            .iter()
            .map(|c| Unit {
                path: c.path.clone(),
                label: None,
                segment: c.segment,
                split: c.split,
                group: c.group.clone(),
                labels: Labels::None,
            })
            .collect(),
        Task::Anticipate => {
            // A video whose segments sit in different splits gives each split a timeline of
            // the whole video: the other splits' frames are unlabelled context there.
            let mut split_of: Vec<(&std::path::Path, Split)> = Vec::new();
            let mut warned = std::collections::BTreeSet::new();
            for c in dataset.clips.iter().filter(|c| c.label.is_some()) {
                match split_of.iter().find(|(p, _)| *p == c.path.as_path()) {
                    Some((_, s)) if *s != c.split && warned.insert(c.path.clone()) => {
                        tracing::warn!(
                            "{}: segments in more than one split; for anticipation each split sees the whole video (group its segments together: a manifest's group column)",
                            c.path.display()
                        );
                    }
                    Some(_) => {}
                    None => split_of.push((&c.path, c.split)),
                }
            }
            let mut timelines: Vec<Unit> = Vec::new();
            for c in &dataset.clips {
                let Some(class) = label(c) else { continue };
                let (start, end) = c.segment.unwrap_or((0.0, f64::INFINITY));
                match timelines
                    .iter_mut()
                    .find(|u| u.path == c.path && u.split == c.split)
                {
                    Some(Unit {
                        labels: Labels::Spans(spans),
                        ..
                    }) => spans.push((start, end, class)),
                    _ => timelines.push(Unit {
                        path: c.path.clone(),
                        label: None,
                        segment: None,
                        split: c.split,
                        group: c.group.clone(),
                        labels: Labels::Spans(vec![(start, end, class)]),
                    }),
                }
            }
            timelines
        }
    }
}

/// A unit and its features.
#[derive(Debug)]
pub struct Loaded {
    pub unit: Unit,
    pub features: Features,
    /// The cache entry the features were read from.
    pub entry: PathBuf,
}

/// A unit left out, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    #[serde(serialize_with = "crate::inputs::serialize_lossy")]
    pub path: PathBuf,
    pub reason: String,
}

/// Features of every unit, from the cache or extracted, with a progress bar over units. A unit
/// that fails to decode or yields no step is skipped with a warning, not fatal.
pub fn load(
    units: Vec<Unit>,
    cache: &FeatureCache,
    options: &DecodeOptions,
    streams: &Streams,
    backbone: &Backbone,
    batch: usize,
) -> (Vec<Loaded>, Vec<Skipped>) {
    let bar = progress::bar(BarSpec {
        prefix: "features".into(),
        total: Some(units.len() as u64),
        unit: BarUnit::Items,
    });
    let (mut loaded, mut skipped, mut cached) = (Vec::new(), Vec::new(), 0usize);
    for (done, unit) in (1u64..).zip(units) {
        let result = cache
            .features(&unit.path, unit.segment, options, backbone, batch)
            .and_then(|entry| {
                Ok(crate::data::cache::Entry {
                    features: streams.select(entry.features)?,
                    ..entry
                })
            });
        match result {
            Ok(entry) if !entry.features.is_empty() => {
                cached += usize::from(entry.source == Source::Cached);
                loaded.push(Loaded {
                    unit,
                    features: entry.features,
                    entry: entry.path,
                });
            }
            Ok(_) => {
                let reason = format!(
                    "no frame sampled ({}{}): the clip is shorter than one step",
                    options.sampling.describe(),
                    unit.segment
                        .map(|(s, e)| format!(", segment {s}-{e} s"))
                        .unwrap_or_default()
                );
                tracing::warn!("skipping {}: {reason}", unit.path.display());
                skipped.push(Skipped {
                    path: unit.path,
                    reason,
                });
            }
            Err(e) => {
                tracing::warn!("skipping {}: {e:#}", unit.path.display());
                skipped.push(Skipped {
                    path: unit.path,
                    reason: format!("{e:#}"),
                });
            }
        }
        bar.set_position(done);
        bar.set_message(format!(
            "clips ({cached} cached, {} skipped)",
            skipped.len()
        ));
    }
    drop(bar);
    tracing::info!(
        "features: {} clips ({cached} from the cache), {} skipped",
        loaded.len(),
        skipped.len()
    );
    (loaded, skipped)
}

/// Seconds between steps: the median gap between consecutive timestamps.
pub fn step_seconds(loaded: &[Loaded]) -> Option<f64> {
    let mut gaps: Vec<f64> = loaded
        .iter()
        .flat_map(|l| l.features.timestamps.windows(2).map(|w| w[1] - w[0]))
        .filter(|g| g.is_finite() && *g > 0.0)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    Some(gaps[gaps.len() / 2])
}

/// The sequences of `split` (all splits when `None`). `shift` is how far ahead the head looks,
/// in steps: windows overlap by it so every step is a target once.
pub fn sequences(
    loaded: &[Loaded],
    split: Option<Split>,
    clip_len: usize,
    shift: usize,
) -> Vec<Sequence> {
    sequences_of(
        loaded,
        |l| split.is_none_or(|s| l.unit.split == s),
        clip_len,
        shift,
    )
}

/// [`sequences`] of the units `keep` accepts.
pub fn sequences_of(
    loaded: &[Loaded],
    keep: impl Fn(&Loaded) -> bool,
    clip_len: usize,
    shift: usize,
) -> Vec<Sequence> {
    let mut out = Vec::new();
    for l in loaded.iter().filter(|l| keep(l)) {
        let f = &l.features;
        match &l.unit.labels {
            Labels::Clip(class) => {
                let rows = uniform(f.len(), clip_len);
                out.push(Sequence {
                    features: rows
                        .iter()
                        .flat_map(|&i| f.row(i).iter().copied())
                        .collect(),
                    steps: rows.len(),
                    target: Target::Clip(*class),
                });
            }
            labels => {
                let step_labels: Vec<Option<usize>> = f
                    .timestamps
                    .iter()
                    .map(|&t| match labels {
                        Labels::Spans(spans) => spans
                            .iter()
                            .find(|(s, e, _)| t >= *s && t < *e)
                            .map(|&(_, _, c)| c),
                        _ => None,
                    })
                    .collect();
                for range in windows(f.len(), clip_len, shift) {
                    let target = match labels {
                        Labels::Spans(_) => Target::Steps(step_labels[range.clone()].to_vec()),
                        _ => Target::Unlabelled,
                    };
                    out.push(Sequence {
                        features: f.values[range.start * f.dim..range.end * f.dim].to_vec(),
                        steps: range.len(),
                        target,
                    });
                }
            }
        }
    }
    out
}

/// What the order-blind baseline of `head` is trained and scored on: classify clips as they
/// are, anticipation windows as [`frame_targets`].
pub fn baseline_view<'a>(
    sequences: &'a [Sequence],
    head: &temporal::Head,
) -> std::borrow::Cow<'a, [Sequence]> {
    match *head {
        temporal::Head::Anticipate { horizon, .. } => {
            std::borrow::Cow::Owned(frame_targets(sequences, horizon))
        }
        _ => std::borrow::Cow::Borrowed(sequences),
    }
}

/// Anticipation targets as one-step clips: for every step `t` of `sequences` whose label
/// `horizon` steps later is known (counted as the loss counts them), the features of step `t`
/// alone, labelled with that later label. What an order-blind head sees: one frame, no
/// memory, no order.
pub fn frame_targets(sequences: &[Sequence], horizon: usize) -> Vec<Sequence> {
    let mut out = Vec::new();
    for s in sequences {
        let Target::Steps(labels) = &s.target else {
            continue;
        };
        let dim = s.features.len() / s.steps.max(1);
        for t in 0..s.steps.saturating_sub(horizon) {
            if let Some(ahead) = labels[t + horizon] {
                out.push(Sequence {
                    features: s.features[t * dim..(t + 1) * dim].to_vec(),
                    steps: 1,
                    target: Target::Clip(ahead),
                });
            }
        }
    }
    out
}

/// `len` indices spread evenly over `0..n` (the middle of each of `len` equal parts), or all
/// of them when `n <= len`.
fn uniform(n: usize, len: usize) -> Vec<usize> {
    if n <= len {
        return (0..n).collect();
    }
    (0..len).map(|k| (2 * k + 1) * n / (2 * len)).collect()
}

/// Windows of up to `len` steps over `0..n`, starting every `len - shift` steps: step `t` is a
/// target (its future `t + shift` inside the same window) in exactly one window, and every step
/// with a future is one. The last window may be shorter.
fn windows(n: usize, len: usize, shift: usize) -> Vec<std::ops::Range<usize>> {
    if n <= len {
        return std::iter::once(0..n).collect();
    }
    let stride = len.saturating_sub(shift).max(1);
    (0..)
        .map(|k| k * stride)
        .take_while(|&s| s + shift < n)
        .map(|s| s..(s + len).min(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_targets_pair_each_step_with_the_label_ahead() {
        let seq = Sequence {
            features: (0..5).flat_map(|t| [t as f32, 10.0 * t as f32]).collect(),
            steps: 5,
            target: Target::Steps(vec![Some(0), Some(0), None, Some(1), Some(1)]),
        };
        let frames = frame_targets(std::slice::from_ref(&seq), 2);
        // t = 0 -> label of step 2 (unknown: no target); t = 1 -> 1; t = 2 -> 1.
        let got: Vec<(Vec<f32>, Target)> =
            frames.into_iter().map(|s| (s.features, s.target)).collect();
        assert_eq!(
            got,
            [
                (vec![1.0, 10.0], Target::Clip(1)),
                (vec![2.0, 20.0], Target::Clip(1))
            ]
        );
    }

    #[test]
    fn long_clips_are_sampled_uniformly_and_short_ones_kept() {
        assert_eq!(uniform(5, 30), [0, 1, 2, 3, 4]);
        // 60 steps to 30: every other one, starting at 1.
        let u = uniform(60, 30);
        assert_eq!(u.len(), 30);
        assert_eq!(&u[..3], [1, 3, 5]);
        assert_eq!(u[29], 59);
        assert_eq!(uniform(100, 4), [12, 37, 62, 87]);
    }

    #[test]
    fn windows_overlap_by_the_shift_and_score_every_step_once() {
        assert_eq!(windows(5, 8, 2), std::iter::once(0..5).collect::<Vec<_>>());
        assert_eq!(windows(20, 8, 2), [0..8, 6..14, 12..20]);
        assert_eq!(windows(21, 8, 2), [0..8, 6..14, 12..20, 18..21]);
        for (n, len, shift) in [
            (50, 10, 3),
            (31, 30, 4),
            (100, 7, 6),
            (21, 8, 2),
            (64, 30, 4),
        ] {
            let w = windows(n, len, shift);
            assert_eq!(w.last().map(|r| r.end), Some(n));
            for t in 0..n - shift {
                let scored = w
                    .iter()
                    .filter(|r| r.contains(&t) && r.contains(&(t + shift)))
                    .count();
                // Counted as the loss counts it: t in the window with its future inside, and
                // not already a target of the window before (the overlap is the shift).
                let first = w
                    .iter()
                    .filter(|r| r.start <= t && t + shift < r.end)
                    .count();
                assert!(scored >= 1, "{n} {len} {shift}: step {t} never scored");
                assert_eq!(first, scored, "{n} {len} {shift}: step {t}");
                assert_eq!(
                    scored, 1,
                    "{n} {len} {shift}: step {t} scored {scored} times"
                );
            }
        }
    }
}
