//! Helpers for the end-to-end tests: clips generated with the ffmpeg CLI (installed by the
//! README's set-up and by CI), the built binary, and readers for what it writes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_pipeline");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared/media/NAME` beside the checkout (CI and developers have it).
pub fn shared_media(name: &str) -> PathBuf {
    let path = repo_root().join("../shared/media").join(name);
    assert!(
        path.is_file(),
        "{} is missing: these tests use ../shared/media",
        path.display()
    );
    path
}

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating test dir");
    dir
}

pub fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .status()
        .expect("the end-to-end tests need the ffmpeg CLI (apt install ffmpeg)");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// Generated clips, made once per test binary:
/// - `five.mp4`: 5 s, 25 fps, 320x240 test pattern, a key frame every second;
/// - `vfr.mp4`: 30 frames at 30 fps, then 30 frames at 10 fps (variable frame rate);
/// - `bframes.mp4`: 4 s, 25 fps, two B-frames (which no frame refers to) between references;
/// - `rotated.mp4`: `five.mp4` with a display matrix saying "rotate 90 degrees";
/// - `upright.mp4`: `rotated.mp4` as the ffmpeg CLI shows it, rotation baked into the pixels;
/// - `damaged.avi`: the 5 s pattern in AVI with six 400-byte stretches overwritten with noise,
///   so some frames decode damaged and the rest fine (the damage `Megamind_bugy.avi` in
///   ../shared/media has, made here so the tests need nothing beside the checkout).
pub fn clips() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("clips");
        let p = |name: &str| dir.join(name).display().to_string();
        // The 25 fps test pattern in MPEG-4 part 2, a key frame every second.
        let pattern = |seconds: u32, extra: &[&str], name: &str| {
            let source = format!("testsrc=size=320x240:rate=25:duration={seconds}");
            let out = p(name);
            let mut args = vec!["-f", "lavfi", "-i", &source, "-c:v", "mpeg4", "-q:v", "5"];
            args.extend(["-g", "25"]);
            args.extend(extra);
            args.push(&out);
            ffmpeg(&args);
        };
        pattern(5, &[], "five.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30:duration=2",
            "-vf",
            "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "mpeg4",
            "-q:v",
            "5",
            &p("vfr.mp4"),
        ]);
        pattern(4, &["-bf", "2"], "bframes.mp4");
        ffmpeg(&[
            "-i",
            &p("five.mp4"),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            &p("rotated.mp4"),
        ]);
        ffmpeg(&[
            "-i",
            &p("rotated.mp4"),
            "-c:v",
            "mpeg4",
            "-q:v",
            "2",
            &p("upright.mp4"),
        ]);
        pattern(5, &[], "plain.avi");
        let mut bytes = std::fs::read(dir.join("plain.avi")).expect("read plain.avi");
        let n = bytes.len();
        let mut noise = 0x2545_f491_4f6c_dd1d_u64;
        for k in 0..6 {
            let at = n * (30 + 8 * k) / 100;
            for b in &mut bytes[at..at + 400] {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                *b = noise as u8;
            }
        }
        std::fs::write(dir.join("damaged.avi"), bytes).expect("write damaged.avi");
        dir
    })
}

pub fn clip(name: &str) -> PathBuf {
    clips().join(name)
}

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running pipeline")
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("json")
}

/// A JSON Lines file, one value per line.
pub fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one `error:` line of a run that must fail: a non-zero exit, exactly one such line on
/// stderr, and no panic.
pub fn the_error_line(out: &Output) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "succeeded: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_string()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `pipeline extract` wrote: features `[T, 1280]`, timestamps `[T]`, metadata.
#[derive(Debug)]
pub struct Extracted {
    pub shape: Vec<usize>,
    pub features: Vec<f32>,
    pub timestamps: Vec<f64>,
    pub metadata: HashMap<String, String>,
    /// The `motion` tensor's shape and values, when the file has one.
    pub motion: Option<(Vec<usize>, Vec<f32>)>,
}

pub fn read_extracted(path: &Path) -> Extracted {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors header");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let f = st.tensor("features").expect("features tensor");
    assert_eq!(f.dtype(), safetensors::Dtype::F32);
    let t = st.tensor("timestamps").expect("timestamps tensor");
    assert_eq!(t.dtype(), safetensors::Dtype::F64);
    Extracted {
        shape: f.shape().to_vec(),
        features: f
            .data()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect(),
        timestamps: t
            .data()
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
            .collect(),
        metadata: header.metadata().clone().unwrap_or_default(),
        motion: st.tensor("motion").ok().map(|m| {
            assert_eq!(m.dtype(), safetensors::Dtype::F32);
            let values = m
                .data()
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect();
            (m.shape().to_vec(), values)
        }),
    }
}

/// Runs `pipeline extract` on one file and reads the result.
pub fn extract(test: &str, input: &Path, flags: &[&str]) -> Extracted {
    let out = temp_dir(test);
    let mut args = vec![
        "extract",
        input.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend(flags);
    let result = run(&args);
    assert!(
        result.status.success(),
        "extract failed: {}",
        stderr(&result)
    );
    let stem = input
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    read_extracted(&out.join(format!("{stem}.safetensors")))
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}
