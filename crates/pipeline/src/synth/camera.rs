//! Camera-motion clips cut from any video: a virtual camera (a window over the whole frame)
//! pans left or right, zooms in or out, or holds still, so users can train a camera-motion head
//! on their own footage (`pipeline make-clips --kind camera --from VIDEO...`).
//!
//! Each clip: [`SECONDS`] of the source from a seeded start, the window 60% of the frame's
//! width and height. Pans move it 24-40% of the frame's width over the clip (0.2-0.33 window
//! widths a second); zooms scale it 1x to 1.5x or back (ln 1.5 / 2 s, 0.2 a second); `static`
//! holds it at a seeded place. Every source frame in the window becomes a clip frame (the
//! source's own rate, so no frame is repeated), resampled bilinearly to [`WIDTH`] pixels wide
//! (the source's aspect kept) and encoded as H.264 where libx264 is built in.
//!
//! The class is the virtual camera's: the source's own camera motion adds to it, as it would
//! in footage a user labels.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use media::{DecodeOptions, Every, MotionSource, Sampling, VideoWriter};

use super::SplitMix64;

/// Class names, in label order.
pub const CLASSES: [&str; 5] = ["pan-left", "pan-right", "zoom-in", "zoom-out", "static"];
/// Seconds per clip.
pub const SECONDS: f64 = 2.0;
/// Clip width in pixels.
pub const WIDTH: u32 = 320;
/// Most frames a second a clip has.
const MAX_FPS: f64 = 60.0;
/// The window's share of the frame's width and height (at zoom 1).
const WINDOW: f64 = 0.6;

/// Where the window is at `u` (0 to 1 through the clip), as (left, top, width, height) in
/// shares of the frame.
fn window(class: usize, u: f64, place: (f64, f64), travel: f64) -> (f64, f64, f64, f64) {
    let (px, py) = place;
    match CLASSES[class] {
        "pan-left" => (px + travel * (1.0 - u), py, WINDOW, WINDOW),
        "pan-right" => (px + travel * u, py, WINDOW, WINDOW),
        zoom @ ("zoom-in" | "zoom-out") => {
            let z = if zoom == "zoom-in" {
                1.0 + 0.5 * u
            } else {
                1.5 - 0.5 * u
            };
            let side = WINDOW / z;
            (0.5 - side / 2.0, 0.5 - side / 2.0, side, side)
        }
        _ => (px, py, WINDOW, WINDOW),
    }
}

/// Writes `per_class` clips of every class from each of `sources` to `out/<class>/`, named
/// `<source stem>-NNN.mp4` (so `--group-by '^(.*)-[0-9]+\.mp4$'` groups them by source).
/// A source shorter than a clip is an error naming it.
pub fn write_camera_clips(
    out: &Path,
    sources: &[PathBuf],
    per_class: usize,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    let mut rng = SplitMix64::new(seed);
    let mut paths = Vec::new();
    for source in sources {
        let info = media::probe(source)?;
        let Some(duration) = info.duration else {
            bail!(
                "{}: the container gives no duration to pick clip starts from",
                source.display()
            );
        };
        if duration < SECONDS + 0.1 {
            bail!(
                "{}: {duration:.2} s long, shorter than a {SECONDS} s clip",
                source.display()
            );
        }
        let stem = source
            .file_stem()
            .map_or_else(|| "source".into(), |s| s.to_string_lossy().into_owned());
        for (class, name) in CLASSES.iter().enumerate() {
            let dir = out.join(name);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for index in 0..per_class {
                let start = rng.range(0.0, duration - SECONDS - 0.1);
                let travel = rng.range(0.24, 0.40);
                let place = (rng.range(0.0, 0.4 - travel), rng.range(0.0, 0.4));
                let place = if *name == "static" {
                    (rng.range(0.0, 0.4), place.1)
                } else {
                    place
                };
                let path = dir.join(format!("{stem}-{index:03}.mp4"));
                write_clip(source, &path, start, |u| window(class, u, place, travel))
                    .with_context(|| {
                        format!("{}: {name} clip at {start:.2} s", source.display())
                    })?;
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

/// One clip of `source` from `start`, the window at each moment from `at`.
fn write_clip(
    source: &Path,
    path: &Path,
    start: f64,
    at: impl Fn(f64) -> (f64, f64, f64, f64),
) -> Result<()> {
    // At most MAX_FPS frames a second: a faster source is thinned by timestamp, so the clip
    // lasts SECONDS and moves at the speeds its class says.
    let options = DecodeOptions {
        sampling: Sampling {
            every: Every::Fps(MAX_FPS),
            keyframes: false,
            start: Some(start),
            end: Some(start + SECONDS),
        },
        size: 32,
        display: Some(1280),
        motion: MotionSource::Off,
        read: media::ReadOptions::default(),
    };
    let mut video = media::Video::open(source, options)?;
    let mut frames = Vec::new();
    while let Some(frame) = video.next_frame()? {
        if let Some(shown) = frame.display {
            frames.push((frame.timestamp - start, shown));
        }
    }
    if frames.len() < 2 {
        bail!("fewer than 2 frames decoded");
    }
    let mut gaps: Vec<f64> = frames.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_by(f64::total_cmp);
    let fps = (1.0 / gaps[gaps.len() / 2].max(1e-3))
        .round()
        .clamp(1.0, MAX_FPS) as u32;
    let (sw, sh) = (frames[0].1.width, frames[0].1.height);
    let height =
        ((f64::from(WIDTH) * f64::from(sh) / f64::from(sw) / 2.0).round() as u32 * 2).max(2);
    let mut writer = VideoWriter::create(path, WIDTH, height, fps)?;
    for (t, shown) in &frames {
        let (left, top, w, h) = at((t / SECONDS).clamp(0.0, 1.0));
        let rect = (
            left * f64::from(sw),
            top * f64::from(sh),
            w * f64::from(sw),
            h * f64::from(sh),
        );
        writer.push(&resample(&shown.rgb, (sw, sh), rect, (WIDTH, height)))?;
    }
    writer.finish()?;
    Ok(())
}

/// The `rect` (left, top, width, height in pixels) of a `size` RGB image, bilinearly
/// resampled to `out` pixels.
fn resample(rgb: &[u8], size: (u32, u32), rect: (f64, f64, f64, f64), out: (u32, u32)) -> Vec<u8> {
    let (sw, sh) = (size.0 as usize, size.1 as usize);
    let (ow, oh) = out;
    let mut dst = Vec::with_capacity((ow * oh * 3) as usize);
    let px = |x: usize, y: usize, c: usize| f64::from(rgb[(y * sw + x) * 3 + c]);
    for j in 0..oh {
        let y = (rect.1 + (f64::from(j) + 0.5) * rect.3 / f64::from(oh) - 0.5)
            .clamp(0.0, (sh - 1) as f64);
        let (y0, fy) = (y.floor() as usize, y - y.floor());
        let y1 = (y0 + 1).min(sh - 1);
        for i in 0..ow {
            let x = (rect.0 + (f64::from(i) + 0.5) * rect.2 / f64::from(ow) - 0.5)
                .clamp(0.0, (sw - 1) as f64);
            let (x0, fx) = (x.floor() as usize, x - x.floor());
            let x1 = (x0 + 1).min(sw - 1);
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
                let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
                dst.push((top * (1.0 - fy) + bottom * fy).round() as u8);
            }
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_move_as_their_class_says() {
        let place = (0.1, 0.2);
        // Pans travel `travel` of the frame's width, left or right, at one height.
        assert_eq!(window(0, 0.0, place, 0.3), (0.4, 0.2, 0.6, 0.6));
        assert_eq!(window(0, 1.0, place, 0.3), (0.1, 0.2, 0.6, 0.6));
        assert_eq!(window(1, 1.0, place, 0.3), (0.4, 0.2, 0.6, 0.6));
        // Zooms stay centred, 1x to 1.5x.
        let (l, t, w, h) = window(2, 1.0, place, 0.3);
        assert!((w - 0.4).abs() < 1e-12 && (h - 0.4).abs() < 1e-12);
        assert!((l - 0.3).abs() < 1e-12 && (t - 0.3).abs() < 1e-12);
        assert_eq!(window(3, 1.0, place, 0.3), (0.2, 0.2, 0.6, 0.6));
        assert_eq!(window(4, 0.5, place, 0.3), (0.1, 0.2, 0.6, 0.6));
    }

    /// A still, textured 3 s source: every clip's measured motion is its virtual camera's,
    /// right in sign and within the range the classes are made with.
    #[test]
    fn clips_move_as_their_class_says_when_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("still.mp4");
        let (w, h) = (480usize, 272usize);
        let mut rng = SplitMix64::new(7);
        // Blocks of random grey, 8 pixels, blurred by a 3-tap box both ways: texture that
        // block matching and an encoder's motion search both lock onto.
        let cells: Vec<f64> = (0..(w / 8 + 1) * (h / 8 + 1))
            .map(|_| rng.range(20.0, 235.0))
            .collect();
        let at = |x: usize, y: usize| cells[(y / 8) * (w / 8 + 1) + x / 8];
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let v = (at(x.saturating_sub(2), y)
                    + at(x, y)
                    + at((x + 2).min(w - 1), y)
                    + at(x, y.saturating_sub(2))
                    + at(x, (y + 2).min(h - 1)))
                    / 5.0;
                rgb.extend([v as u8, (v * 0.8) as u8, (255.0 - v) as u8]);
            }
        }
        let mut writer = VideoWriter::create(&source, w as u32, h as u32, 25).expect("create");
        for _ in 0..75 {
            writer.push(&rgb).expect("push");
        }
        writer.finish().expect("finish");

        let out = dir.path().join("clips");
        let paths = write_camera_clips(&out, std::slice::from_ref(&source), 1, 3).expect("clips");
        assert_eq!(paths.len(), CLASSES.len());
        for path in &paths {
            let class = path
                .parent()
                .and_then(|p| p.file_name())
                .expect("class folder");
            let options = DecodeOptions {
                sampling: Sampling::default(),
                size: 32,
                display: None,
                motion: MotionSource::Auto,
                read: media::ReadOptions::default(),
            };
            let mut video = media::Video::open(path, options).expect("opens");
            let (mut pan, mut zoom, mut n) = (0.0, 0.0, 0.0);
            let mut frames = 0;
            while let Some(frame) = video.next_frame().expect("decodes") {
                frames += 1;
                let m = frame.motion.expect("motion");
                if frame.timestamp > 0.4 && m.source() != media::motion::Source::None {
                    pan += f64::from(m.pan[0]);
                    zoom += f64::from(m.zoom);
                    n += 1.0;
                }
            }
            assert_eq!(frames, 50, "{}", path.display());
            let (pan, zoom) = (pan / n, zoom / n);
            let what = format!("{}: pan {pan:.3}, zoom {zoom:.3}", path.display());
            // Window widths a second: pans 0.2 to 0.33, zooms about 0.2.
            match class.to_str().expect("utf-8") {
                "pan-left" => assert!((-0.45..-0.15).contains(&pan) && zoom.abs() < 0.1, "{what}"),
                "pan-right" => assert!((0.15..0.45).contains(&pan) && zoom.abs() < 0.1, "{what}"),
                "zoom-in" => assert!(zoom > 0.1 && pan.abs() < 0.05, "{what}"),
                "zoom-out" => assert!(zoom < -0.1 && pan.abs() < 0.05, "{what}"),
                _ => assert!(pan.abs() < 0.02 && zoom.abs() < 0.02, "{what}"),
            }
        }
    }

    #[test]
    fn resampling_a_whole_flat_image_keeps_it() {
        let rgb: Vec<u8> = [10u8, 20, 30].repeat(8 * 4);
        let out = resample(&rgb, (8, 4), (0.0, 0.0, 8.0, 4.0), (4, 2));
        assert_eq!(out, [10u8, 20, 30].repeat(8));
    }
}
