//! `run --annotate`: the sampled frames, whole and as shown, with their records drawn on,
//! encoded as video.

use std::path::PathBuf;

use anyhow::Result;
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

use crate::analysis::{HeadRecord, Record};
use crate::plot;
use media::VideoWriter;
use media::{DecodeOptions, Every};

/// Text scale for a frame whose longer side is `longest`: 1 up to 1279 pixels, 2 from 1280,
/// and so on (the font is 13 pixels high at scale 1).
fn text_scale(longest: u32) -> u32 {
    (longest / 640).max(1)
}

/// Draws the record's labels on its frame, over a darkened band across the top.
fn annotate(mut img: RgbImage, record: &Record) -> RgbImage {
    let (w, h) = img.dimensions();
    let scale = text_scale(w.max(h));
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
    let (margin, line_h) = (3 * scale, plot::text_height(scale) + 3 * scale);
    let band = (lines.len() as u32 * line_h + 4 * scale).min(h);
    for v in img.iter_mut().take((band * w * 3) as usize) {
        *v /= 3;
    }
    for (i, line) in lines.iter().enumerate() {
        let color = if line.starts_with('!') {
            Rgb([255, 200, 60])
        } else {
            Rgb([255, 255, 255])
        };
        let y = margin + i as u32 * line_h;
        plot::draw_text(&mut img, margin as i32, y as i32, line, color, scale);
    }
    img
}

/// The annotated video: sampled frames with their records drawn on, at the sampling rate
/// (for `--fps`, that rate; otherwise measured from the first two frames), at the first
/// frame's size.
pub struct Annotated {
    path: PathBuf,
    /// The first frame's width and height: the video's. A later frame of another size (the
    /// stream changed resolution) is resized to it.
    size: Option<(u32, u32)>,
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
    /// Frames sampled with `options`, to be encoded at `path`.
    pub fn new(path: PathBuf, options: DecodeOptions) -> Self {
        Self {
            path,
            size: None,
            options,
            first: None,
            video: None,
        }
    }

    pub fn push(&mut self, record: &Record, frame: RgbImage) -> Result<()> {
        let (w, h) = *self.size.get_or_insert(frame.dimensions());
        let frame = if frame.dimensions() == (w, h) {
            frame
        } else {
            imageops::resize(&frame, w, h, FilterType::Triangle)
        };
        let img = annotate(frame, record);
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
        let (w, h) = self.size.unwrap_or((2, 2));
        Ok(VideoWriter::create(&self.path, w, h, fps)?)
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
