//! `run --annotate`: the sampled frames with their records drawn on, encoded as video.

use std::path::PathBuf;

use anyhow::Result;
use image::{Rgb, RgbImage};

use crate::analysis::{HeadRecord, Record};
use crate::plot;
use media::VideoWriter;
use media::{DecodeOptions, Every};

/// Draws the record's labels on its frame.
fn annotate(frame: Vec<u8>, size: u32, record: &Record) -> RgbImage {
    let mut img =
        RgbImage::from_raw(size, size, frame).unwrap_or_else(|| RgbImage::new(size, size));
    let mut lines = vec![format!("{:.2} s", record.timestamp)];
    if let Some(s) = record.top.first() {
        lines.push(format!("{} {:.0}%", s.label, 100.0 * s.probability));
    }
    match &record.head {
        HeadRecord::Classify { top } => {
            if let Some(n) = top.first() {
                lines.push(format!("now: {} {:.0}%", n.label, 100.0 * n.probability));
            }
        }
        HeadRecord::Anticipate {
            top,
            horizon_seconds,
        } => {
            if let Some(n) = top.first() {
                lines.push(format!(
                    "in {horizon_seconds:.1}s: {} {:.0}%",
                    n.label,
                    100.0 * n.probability
                ));
            }
        }
        HeadRecord::Forecast {
            expected,
            horizon_seconds,
        } => {
            if let Some(s) = expected.first() {
                lines.push(format!("in {horizon_seconds:.1}s: {}", s.label));
            }
        }
    }
    if let Some(s) = record.surprise {
        lines.push(format!("surprise {s:.2}"));
    }
    for e in &record.events {
        lines.push(format!("! {e}"));
    }
    let line_h = plot::text_height(1) as i32 + 3;
    let height = (lines.len() as i32 * line_h + 4).min(size as i32);
    for y in 0..height.max(0) as u32 {
        for x in 0..size {
            let p = img.get_pixel_mut(x, y);
            *p = Rgb([p[0] / 3, p[1] / 3, p[2] / 3]);
        }
    }
    for (i, line) in lines.iter().enumerate() {
        let color = if line.starts_with('!') {
            Rgb([255, 200, 60])
        } else {
            Rgb([255, 255, 255])
        };
        plot::draw_text(&mut img, 3, 3 + i as i32 * line_h, line, color, 1);
    }
    img
}

/// The annotated video: sampled frames with their records drawn on, at the sampling rate
/// (for `--fps`, that rate; otherwise measured from the first two frames).
pub struct Annotated {
    path: PathBuf,
    size: u32,
    options: DecodeOptions,
    /// The first frame and its time, held until the second tells the rate.
    first: Option<(f64, RgbImage)>,
    video: Option<VideoWriter>,
}

impl std::fmt::Debug for Annotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Annotated")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Annotated {
    /// Frames of `size x size` sampled with `options`, to be encoded at `path`.
    pub fn new(path: PathBuf, size: u32, options: DecodeOptions) -> Self {
        Self {
            path,
            size,
            options,
            first: None,
            video: None,
        }
    }

    pub fn push(&mut self, record: &Record, frame: Vec<u8>) -> Result<()> {
        let img = annotate(frame, self.size, record);
        if let Some(video) = self.video.as_mut() {
            return Ok(video.push(img.as_raw())?);
        }
        match self.first.take() {
            None => self.first = Some((record.timestamp, img)),
            Some((t0, first)) => {
                let mut video = self.open(Some(record.timestamp - t0))?;
                video.push(first.as_raw())?;
                video.push(img.as_raw())?;
                self.video = Some(video);
            }
        }
        Ok(())
    }

    fn open(&self, gap: Option<f64>) -> Result<VideoWriter> {
        let fps = match (self.options.sampling.every, gap) {
            (Every::Fps(f), _) => f.round().max(1.0) as u32,
            (_, Some(g)) if g > 0.0 => (1.0 / g).round().clamp(1.0, 120.0) as u32,
            _ => 25,
        };
        Ok(VideoWriter::create(&self.path, self.size, self.size, fps)?)
    }

    pub fn finish(mut self) -> Result<()> {
        if let Some((_, first)) = self.first.take() {
            let mut video = self.open(None)?;
            video.push(first.as_raw())?;
            self.video = Some(video);
        }
        let Some(video) = self.video else {
            return Ok(());
        };
        let (codec, (w, h), frames) = (video.codec(), video.encoded_size(), video.frames());
        video.finish()?;
        tracing::info!(
            "{}: {frames} annotated frames, {w}x{h} {codec:?}",
            self.path.display()
        );
        Ok(())
    }
}
