//! Which frames are read, as asked for (flags or a model card), and its validation into the
//! decoder's [`DecodeOptions`].

use anyhow::{Result, bail};

use media::{DecodeOptions, Every, MotionSource, Sampling};

/// The sampling a user asked for, not yet validated. Every command that reads video takes one.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingSettings {
    /// Frames per second of video time (first frame at or after each tick).
    pub fps: Option<f64>,
    /// Every K-th decoded frame; wins over `fps` when both are given.
    pub stride: Option<u64>,
    /// Only key frames.
    pub keyframes: bool,
    /// Seconds.
    pub start: Option<f64>,
    /// Seconds, exclusive.
    pub end: Option<f64>,
    /// Side of the square model input.
    pub size: u32,
    /// Where each sample's motion comes from, or off.
    pub motion: MotionSource,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        Self {
            fps: None,
            stride: None,
            keyframes: false,
            start: None,
            end: None,
            size: 224,
            motion: MotionSource::Off,
        }
    }
}

impl SamplingSettings {
    /// The decoder's options, or one line saying which setting is wrong.
    pub fn options(&self) -> Result<DecodeOptions> {
        // --stride first: `train` gives --fps a default, which an explicit --stride overrides.
        let every = match (self.stride, self.fps) {
            (Some(0), _) => bail!("--stride must be at least 1"),
            (Some(k), _) => Every::Stride(k),
            (None, Some(f)) if !(f.is_finite() && f > 0.0) => {
                bail!("--fps must be positive, got {f}")
            }
            (None, Some(f)) => Every::Fps(f),
            (None, None) => Every::Frame,
        };
        for (name, v) in [("--start", self.start), ("--end", self.end)] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                bail!("{name} must be a non-negative number of seconds, got {v}");
            }
        }
        if let (Some(s), Some(e)) = (self.start, self.end)
            && e <= s
        {
            bail!("--end ({e}) must be after --start ({s})");
        }
        if !(32..=1024).contains(&self.size) {
            bail!(
                "--size must be between 32 and 1024 pixels, got {}",
                self.size
            );
        }
        Ok(DecodeOptions {
            sampling: Sampling {
                every,
                keyframes: self.keyframes,
                start: self.start,
                end: self.end,
            },
            size: self.size,
            display: None,
            motion: self.motion,
            read: media::ReadOptions::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(f: impl FnOnce(&mut SamplingSettings)) -> Result<DecodeOptions> {
        let mut s = SamplingSettings::default();
        f(&mut s);
        s.options()
    }

    #[test]
    fn sampling_is_validated_before_work() {
        assert_eq!(
            options(|s| s.fps = Some(2.0)).expect("ok").sampling.every,
            Every::Fps(2.0)
        );
        assert_eq!(
            options(|s| s.stride = Some(3)).expect("ok").sampling.every,
            Every::Stride(3)
        );
        assert!(options(|s| s.fps = Some(0.0)).is_err());
        assert!(options(|s| s.stride = Some(0)).is_err());
        assert!(
            options(|s| {
                s.start = Some(5.0);
                s.end = Some(2.0);
            })
            .is_err()
        );
        assert!(options(|s| s.start = Some(-1.0)).is_err());
        assert!(options(|s| s.size = 8).is_err());
    }
}
