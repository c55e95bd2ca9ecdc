//! Test clips, written by the crate's own encoder: the tests need no sample files.

#![cfg(test)]

use std::path::{Path, PathBuf};

use crate::{VideoCodec, VideoWriter};

/// What a test returns: its setup's errors come back typed, with their messages.
pub type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Frame `i` of a `w x h` test pattern: four flat quadrants, red / green / blue / grey, each
/// brightness stepping with `i` so frame order shows.
pub fn pattern(w: usize, h: usize, i: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            rgb[(y * w + x) * 3..][..3].copy_from_slice(&quadrant_colour(x * 2 / w, y * 2 / h, i));
        }
    }
    rgb
}

/// The colour of quadrant (`qx`, `qy`) in frame `i` of [`pattern`].
pub fn quadrant_colour(qx: usize, qy: usize, i: usize) -> [u8; 3] {
    let v = (60 + (16 * i) % 160) as u8; // 60..204 over ten frames, then round again
    match (qx, qy) {
        (0, 0) => [v, 30, 30],
        (1, 0) => [30, v, 30],
        (0, 1) => [30, 30, v],
        _ => [v, v, v],
    }
}

/// Writes `frames` frames of the `w x h` [`pattern`] at `fps` to `dir/name` with `codec`.
pub fn write_clip(
    dir: &Path,
    name: impl AsRef<Path>,
    (w, h): (u32, u32),
    fps: u32,
    frames: usize,
    codec: VideoCodec,
) -> crate::Result<PathBuf> {
    let path = dir.join(name);
    let mut writer = VideoWriter::create_with(&path, w, h, fps, codec)?;
    for i in 0..frames {
        writer.push(&pattern(w as usize, h as usize, i))?;
    }
    assert_eq!(writer.finish()?, frames as u64);
    Ok(path)
}

/// An error's message followed by its sources', joined as anyhow's `{:#}` joins them.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// What a thread of a test returned, or an error if it panicked.
pub fn joined<T>(thread: std::thread::JoinHandle<T>) -> TestResult<T> {
    thread
        .join()
        .map_err(|_| "a thread of the test panicked".into())
}

pub fn temp_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::tempdir()
}
