//! Motion measured on clips of known camera motion: a virtual camera panning and zooming over
//! a textured plane, encoded with a codec that exports vectors (H.264 where libx264 is built
//! in, MPEG-4 part 2 otherwise) and with one that exports none (FFV1, estimated).

#![cfg(test)]

use std::path::{Path, PathBuf};

use crate::decode::{DecodeOptions, Decoding, Every, Sampling, Video};
use crate::testing::{TestResult, temp_dir};
use crate::{Motion, MotionSource, VideoCodec, VideoWriter};

use super::Source;

const W: usize = 320;
const H: usize = 180;
const FPS: u32 = 25;

/// Smooth value noise: a lattice of hashed values every `cell` units, bilinearly interpolated.
fn noise(x: f64, y: f64, cell: f64, seed: u32) -> f64 {
    let (gx, gy) = ((x / cell).floor(), (y / cell).floor());
    let (fx, fy) = (x / cell - gx, y / cell - gy);
    let hash = |i: f64, j: f64| {
        let mut h = (i as i64 as u32).wrapping_mul(0x9e37_79b1)
            ^ (j as i64 as u32).wrapping_mul(0x85eb_ca77)
            ^ seed.wrapping_mul(0xc2b2_ae3d);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2c1b_3c6d);
        h ^= h >> 12;
        f64::from(h & 0xffff) / 65535.0
    };
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let top = hash(gx, gy) * (1.0 - sx) + hash(gx + 1.0, gy) * sx;
    let bottom = hash(gx, gy + 1.0) * (1.0 - sx) + hash(gx + 1.0, gy + 1.0) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// The plane's colour at `(x, y)` (plane units are pixels at zoom 1).
fn plane(x: f64, y: f64) -> [u8; 3] {
    let a = noise(x, y, 9.0, 1) * 0.6 + noise(x, y, 31.0, 2) * 0.4;
    let b = noise(x, y, 13.0, 3);
    let v = |t: f64| (t * 235.0 + 10.0).round().clamp(0.0, 255.0) as u8;
    [v(a), v(0.5 * a + 0.5 * b), v(b)]
}

/// A camera moving over the plane: at time `t` its centre and its zoom.
type Camera = fn(f64) -> ((f64, f64), f64);

/// Writes `seconds` of what `camera` sees, with `cut_at` (a frame index) switching to another
/// part of the plane.
fn write(
    dir: &Path,
    name: &str,
    codec: VideoCodec,
    camera: Camera,
    seconds: f64,
    cut_at: Option<usize>,
) -> crate::Result<PathBuf> {
    let path = dir.join(name);
    let mut writer = VideoWriter::create_with(&path, W as u32, H as u32, FPS, codec)?;
    let frames = (seconds * f64::from(FPS)) as usize;
    for i in 0..frames {
        let t = i as f64 / f64::from(FPS);
        let ((cx, cy), zoom) = camera(t);
        let far = if cut_at.is_some_and(|c| i >= c) {
            5000.0
        } else {
            0.0
        };
        let mut rgb = Vec::with_capacity(W * H * 3);
        for y in 0..H {
            for x in 0..W {
                let px = cx + far + (x as f64 + 0.5 - W as f64 / 2.0) / zoom;
                let py = cy + (y as f64 + 0.5 - H as f64 / 2.0) / zoom;
                rgb.extend(plane(px, py));
            }
        }
        writer.push(&rgb)?;
    }
    writer.finish()?;
    Ok(path)
}

/// Every `every` frame at size 32, with motion from `source`.
fn options(every: Every, source: MotionSource) -> DecodeOptions {
    DecodeOptions {
        sampling: Sampling {
            every,
            ..Sampling::default()
        },
        size: 32,
        display: None,
        motion: source,
        read: crate::ReadOptions::default(),
    }
}

fn decode(path: &Path, every: Every, source: MotionSource) -> TestResult<Vec<(f64, Motion)>> {
    let decoding = Decoding::start(path, options(every, source), 4)?;
    let got = decoding
        .frames
        .iter()
        .map(|f| Some((f.timestamp, f.motion?)))
        .collect::<Option<_>>()
        .ok_or("a frame without the motion asked for")?;
    decoding.finish()?;
    Ok(got)
}

/// Mean of `value` over the samples after the first second (the first has nothing to compare
/// with; the encoder settles).
fn mean(samples: &[(f64, Motion)], value: impl Fn(&Motion) -> f32) -> f64 {
    let kept: Vec<f64> = samples
        .iter()
        .filter(|(t, m)| *t >= 1.0 && m.source() != Source::None)
        .map(|(_, m)| f64::from(value(m)))
        .collect();
    assert!(kept.len() >= 2, "{} samples measured", kept.len());
    kept.iter().sum::<f64>() / kept.len() as f64
}

fn within(got: f64, want: f64, share: f64) -> bool {
    (got - want).abs() <= share * want.abs()
}

/// The codecs to try: one with vectors, one without, and what each is expected to report.
fn codecs() -> TestResult<[(VideoCodec, &'static str, Source); 2]> {
    let best = VideoCodec::best_available()?;
    Ok([
        (best, "mkv", Source::Codec),
        (VideoCodec::Ffv1, "mkv", Source::Estimated),
    ])
}

/// Pans right at 0.25 frame widths per second (80 pixels per second) and down at 0.1; zooms
/// in at 0.2 per second; stands still. The sign always right, the size within 25%, a still
/// camera near zero; with every frame and at 2 frames per second alike.
#[test]
fn camera_motion_is_measured_from_vectors_and_from_pixels() -> TestResult {
    let dir = temp_dir()?;
    let pan: Camera = |t| ((80.0 * t, 32.0 * t), 1.0);
    let zoom: Camera = |t| ((0.0, 0.0), (0.2 * t).exp());
    let still: Camera = |_| ((0.0, 0.0), 1.0);
    for (codec, ext, source) in codecs()? {
        let pan_clip = write(
            dir.path(),
            &format!("pan-{codec:?}.{ext}"),
            codec,
            pan,
            4.0,
            None,
        )?;
        let zoom_clip = write(
            dir.path(),
            &format!("zoom-{codec:?}.{ext}"),
            codec,
            zoom,
            4.0,
            None,
        )?;
        let still_clip = write(
            dir.path(),
            &format!("still-{codec:?}.{ext}"),
            codec,
            still,
            3.0,
            None,
        )?;
        for every in [Every::Frame, Every::Fps(2.0)] {
            let what = format!("{codec:?} {every:?}");
            let s = decode(&pan_clip, every, MotionSource::Auto)?;
            // Before the first P frame (x264 puts B frames first) nothing is measured.
            let late = s.iter().filter(|(t, _)| *t >= 0.5);
            assert!(
                late.clone().all(|(_, m)| m.source() == source),
                "{what}: {s:?}"
            );
            let (px, py) = (mean(&s, |m| m.pan[0]), mean(&s, |m| m.pan[1]));
            assert!(
                within(px, 0.25, 0.25) && within(py, 0.1, 0.25),
                "{what}: pan {px} {py}"
            );
            let z = mean(&s, |m| m.zoom);
            assert!(z.abs() < 0.05, "{what}: zoom {z} while panning");

            let s = decode(&zoom_clip, every, MotionSource::Auto)?;
            let z = mean(&s, |m| m.zoom);
            assert!(within(z, 0.2, 0.25), "{what}: zoom {z}");
            let (px, py) = (mean(&s, |m| m.pan[0]), mean(&s, |m| m.pan[1]));
            assert!(
                px.abs() < 0.03 && py.abs() < 0.03,
                "{what}: pan {px} {py} while zooming"
            );

            let s = decode(&still_clip, every, MotionSource::Auto)?;
            let (px, z) = (mean(&s, |m| m.pan[0]), mean(&s, |m| m.zoom));
            assert!(
                px.abs() < 0.01 && z.abs() < 0.01,
                "{what}: still camera {px} {z}"
            );
            let objects = mean(&s, |m| m.objects);
            assert!(objects < 0.02, "{what}: objects {objects} in a still scene");
        }
    }
    Ok(())
}

/// A hard cut (the camera still, the view another part of the plane from frame 40 on) shows
/// as a collapse of coverage at the cut, and nowhere else. From the codec, where the encoder
/// makes the cut a key frame, as a key frame instead.
#[test]
fn a_hard_cut_shows_in_coverage_or_as_a_key_frame() -> TestResult {
    let dir = temp_dir()?;
    let still: Camera = |_| ((0.0, 0.0), 1.0);
    for (codec, ext, _) in codecs()? {
        let clip = write(
            dir.path(),
            &format!("cut-{codec:?}.{ext}"),
            codec,
            still,
            3.0,
            Some(40),
        )?;
        for source in [MotionSource::Auto, MotionSource::Estimated] {
            let s = decode(&clip, Every::Frame, source)?;
            let what = format!("{codec:?} {source:?}");
            let cut = 40.0 / f64::from(FPS);
            let at_cut = s
                .iter()
                .find(|(t, _)| (t - cut).abs() < 0.01)
                .ok_or("the cut frame")?;
            let flagged = |m: &Motion| m.coverage < 0.5 || m.key;
            assert!(flagged(&at_cut.1), "{what}: {at_cut:?}");
            // Elsewhere: full coverage, and key frames only where the stream has them anyway
            // (the first frame; FFV1's every frame).
            for (t, m) in s
                .iter()
                .filter(|(t, _)| (*t - cut).abs() > 0.01 && *t > 0.3)
            {
                assert!(m.coverage > 0.8, "{what} at {t}: {m:?}");
            }
        }
    }
    Ok(())
}

/// Estimation can be asked for whatever the codec: the same answer as its vectors, within
/// the tolerance. With key frames only, nothing between them is decoded: no motion at all.
#[test]
fn estimation_agrees_with_the_codec_and_key_frames_carry_none() -> TestResult {
    let dir = temp_dir()?;
    let pan: Camera = |t| ((-48.0 * t, 0.0), 1.0);
    let codec = VideoCodec::best_available()?;
    let clip = write(dir.path(), "pan-left.mkv", codec, pan, 3.0, None)?;
    let vectors = decode(&clip, Every::Fps(2.0), MotionSource::Auto)?;
    let pixels = decode(&clip, Every::Fps(2.0), MotionSource::Estimated)?;
    assert!(
        pixels
            .iter()
            .skip(1)
            .all(|(_, m)| m.source() == Source::Estimated)
    );
    for s in [&vectors, &pixels] {
        let px = mean(s, |m| m.pan[0]);
        assert!(within(px, -0.15, 0.25), "pan {px}");
    }
    let options = DecodeOptions {
        sampling: Sampling {
            keyframes: true,
            ..Sampling::default()
        },
        size: 32,
        display: None,
        motion: MotionSource::Auto,
        read: crate::ReadOptions::default(),
    };
    let decoding = Decoding::start(&clip, options, 4)?;
    assert!(decoding.frames.iter().all(|f| f.motion.is_none()));
    decoding.finish()?;
    Ok(())
}

/// Measuring on a thread of its own (a decoding with converter threads) gives the motion
/// measured on the decoding thread, sample for sample, from vectors and from pixels, with
/// every frame and with a sparse sampling.
#[test]
fn motion_measured_apart_is_motion_measured_inline() -> TestResult {
    let dir = temp_dir()?;
    let pan: Camera = |t| ((60.0 * t, -20.0 * t), 1.0 + 0.1 * t);
    for (codec, ext, _) in codecs()? {
        let clip = write(
            dir.path(),
            &format!("apart-{codec:?}.{ext}"),
            codec,
            pan,
            2.0,
            None,
        )?;
        for (every, source) in [
            (Every::Frame, MotionSource::Auto),
            (Every::Stride(3), MotionSource::Auto),
            (Every::Stride(3), MotionSource::Estimated),
        ] {
            let options = options(every, source);
            let mut video = Video::open(&clip, options.clone())?;
            let inline: Vec<(f64, Option<Motion>)> =
                std::iter::from_fn(|| video.next_frame().transpose())
                    .map(|f| f.map(|f| (f.timestamp, f.motion)))
                    .collect::<crate::Result<_>>()?;
            let measured = inline
                .iter()
                .filter(|(_, m)| m.as_ref().is_some_and(|m| m.pan[0].abs() > 0.05))
                .count();
            let what = format!("{codec:?} {every:?} {source:?}");
            assert!(measured * 2 > inline.len(), "{what}: {inline:?}");
            let decoding = Decoding::with_converters(&crate::Source::file(&clip), options, 4, 1)?;
            let apart: Vec<(f64, Option<Motion>)> = decoding
                .frames
                .iter()
                .map(|f| (f.timestamp, f.motion))
                .collect();
            decoding.finish()?;
            assert_eq!(apart, inline, "{what}");
        }
    }
    Ok(())
}
