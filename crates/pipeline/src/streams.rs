//! Which per-frame streams a head reads: the CNN's features, the motion descriptor
//! (`media::motion`), or both side by side (features first). `train --inputs` chooses; the
//! model card records the choice and the motion layout's version, and every command that runs
//! the head feeds it the same.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::output::Features;
use media::MotionSource;

/// One stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Features,
    Motion,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Self::Features => "features",
            Self::Motion => "motion",
        }
    }

    /// Values per step.
    pub fn dim(self) -> usize {
        match self {
            Self::Features => vision::FEATURE_DIM,
            Self::Motion => media::motion::LEN,
        }
    }
}

/// The streams a head reads, in the order their values are laid side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Streams(Vec<Stream>);

impl Default for Streams {
    fn default() -> Self {
        Self(vec![Stream::Features])
    }
}

impl Streams {
    /// From a comma list (`features`, `motion`, `features,motion`); features always come first.
    pub fn parse(list: &str) -> Result<Self> {
        let mut features = false;
        let mut motion = false;
        for part in list.split(',').map(str::trim) {
            match part {
                "features" => features = true,
                "motion" => motion = true,
                other => bail!(
                    "--inputs: unknown stream {other:?} (choose from features, motion, as a comma list)"
                ),
            }
        }
        let streams: Vec<Stream> = [(features, Stream::Features), (motion, Stream::Motion)]
            .into_iter()
            .filter_map(|(on, s)| on.then_some(s))
            .collect();
        if streams.is_empty() {
            bail!("--inputs: name at least one stream");
        }
        Ok(Self(streams))
    }

    /// One stream alone.
    pub fn one(stream: Stream) -> Self {
        Self(vec![stream])
    }

    /// The streams, in the order their values are laid side by side.
    pub fn list(&self) -> &[Stream] {
        &self.0
    }

    /// Where each stream's values lie in a step, in order.
    pub fn columns(&self) -> Vec<(Stream, std::ops::Range<usize>)> {
        let mut at = 0;
        self.0
            .iter()
            .map(|&s| {
                let range = at..at + s.dim();
                at = range.end;
                (s, range)
            })
            .collect()
    }

    pub fn has(&self, stream: Stream) -> bool {
        self.0.contains(&stream)
    }

    pub fn needs_motion(&self) -> bool {
        self.has(Stream::Motion)
    }

    /// Where motion comes from for a head reading these streams, as `asked`: off unless it
    /// reads motion (so features-only heads share cache entries with older runs); an error
    /// when it reads motion and motion was turned off, or only key frames are decoded.
    pub fn motion(&self, asked: MotionSource, keyframes: bool) -> Result<MotionSource> {
        match (self.needs_motion(), asked) {
            (false, _) => Ok(MotionSource::Off),
            (true, MotionSource::Off) => bail!(
                "the head reads {}: drop --no-motion / --motion off",
                self.name()
            ),
            (true, _) if keyframes => bail!(
                "the head reads {}, and --keyframes decodes no motion: drop --keyframes",
                self.name()
            ),
            (true, source) => Ok(source),
        }
    }

    /// Values per step, the head's input width.
    pub fn dim(&self) -> usize {
        self.0.iter().map(|s| s.dim()).sum()
    }

    /// `features,motion`.
    pub fn name(&self) -> String {
        self.0
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One step's input: its feature row and motion row laid side by side as these streams
    /// say. Errors when motion is wanted and there is none.
    pub fn step(&self, features: &[f32], motion: Option<&[f32]>, out: &mut Vec<f32>) -> Result<()> {
        for stream in &self.0 {
            match stream {
                Stream::Features => out.extend_from_slice(features),
                Stream::Motion => match motion {
                    Some(m) => out.extend_from_slice(m),
                    None => bail!("the head reads motion, and these frames have none"),
                },
            }
        }
        Ok(())
    }

    /// `features` (read from a features file) as this head's inputs: rows of [`Self::dim`]
    /// values, motion dropped when not wanted and laid beside the features when wanted.
    pub fn select(&self, features: Features) -> Result<Features> {
        if self.0 == [Stream::Features] {
            return Ok(Features {
                motion: None,
                ..features
            });
        }
        let motion = match (&features.motion, self.needs_motion()) {
            (Some(m), _) => Some(m.as_slice()),
            (None, true) => bail!(
                "no motion (layout v{}) beside the features",
                media::motion::LAYOUT_VERSION
            ),
            (None, false) => None,
        };
        let m = media::motion::LEN;
        let mut values = Vec::with_capacity(features.len() * self.dim());
        for i in 0..features.len() {
            let row = motion.map(|all| &all[i * m..(i + 1) * m]);
            self.step(features.row(i), row, &mut values)?;
        }
        Ok(Features {
            values,
            dim: self.dim(),
            motion: None,
            timestamps: features.timestamps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_in_one_order_and_bad_names_are_refused() {
        let both = Streams::parse("motion, features").expect("parses");
        assert_eq!(both.name(), "features,motion");
        assert_eq!(both.dim(), vision::FEATURE_DIM + media::motion::LEN);
        assert_eq!(
            Streams::parse("motion").expect("parses").dim(),
            media::motion::LEN
        );
        assert_eq!(
            Streams::parse("features").expect("parses"),
            Streams::default()
        );
        let err = Streams::parse("features,flow").expect_err("unknown");
        assert!(err.to_string().contains("unknown stream \"flow\""), "{err}");
        assert!(Streams::parse("").is_err());
        assert_eq!(
            serde_json::to_string(&both).expect("json"),
            r#"["features","motion"]"#
        );
    }

    #[test]
    fn selection_lays_motion_beside_the_features() {
        let m = media::motion::LEN;
        let features = Features {
            values: vec![1.0; 2 * vision::FEATURE_DIM],
            timestamps: vec![0.0, 0.5],
            dim: vision::FEATURE_DIM,
            motion: Some((0..2 * m).map(|v| v as f32).collect()),
        };
        let both = Streams::parse("features,motion").expect("parses");
        let got = both.select(features.clone()).expect("selects");
        assert_eq!(got.dim, vision::FEATURE_DIM + m);
        assert_eq!(got.row(1)[vision::FEATURE_DIM], m as f32);
        assert_eq!(got.row(0)[0], 1.0);
        let motion = Streams::parse("motion").expect("parses");
        assert_eq!(
            motion.select(features.clone()).expect("selects").row(1)[0],
            m as f32
        );
        let none = Features {
            motion: None,
            ..features
        };
        let err = motion.select(none).expect_err("no motion");
        assert!(err.to_string().contains("no motion"), "{err}");
    }
}
