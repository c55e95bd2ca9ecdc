//! `pipeline run` and `pipeline batch` end to end.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{clip, json, lines, repo_root, run, s, stderr, stdout, temp_dir};
use serde_json::Value;

fn bunny() -> PathBuf {
    repo_root().join("samples/bigbuckbunny.mp4")
}

/// Width, height and frame count of a video, from ffprobe.
fn probe(path: &Path) -> (u64, u64, u64) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
            s(path),
        ])
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .trim()
        .split(',')
        .map(|x| x.parse().expect("number"))
        .collect();
    (v[0], v[1], v[2])
}

#[test]
fn run_writes_one_record_per_sampled_frame_with_plot_and_annotated_video() {
    let dir = temp_dir("run-bunny");
    let (out, plot, video) = (
        dir.join("bunny.jsonl"),
        dir.join("timeline.png"),
        dir.join("annotated.mp4"),
    );
    let result = run(&[
        "run",
        s(&bunny()),
        "--device",
        "cpu",
        "--out",
        s(&out),
        "--plot",
        s(&plot),
        "--annotate",
        s(&video),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let records = lines(&out);
    // The built-in forecaster samples at 4 frames/s: 5.3 s of video.
    assert_eq!(records.len(), 21);
    let mut previous = -1.0;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["frame"], i as u64);
        let t = r["timestamp"].as_f64().expect("timestamp");
        assert!(t > previous, "timestamps increase: {t} after {previous}");
        previous = t;
        assert_eq!(r["top"].as_array().map(Vec::len), Some(3));
        assert_eq!(r["head"]["task"], "forecast");
        assert_eq!(r["head"]["horizon_seconds"], 1.0);
        assert_eq!(r["head"]["expected"].as_array().map(Vec::len), Some(3));
        // A forecast made 4 steps (1 s) earlier comes due from the fifth frame on.
        assert_eq!(
            r["surprise"].is_number(),
            i >= 4,
            "frame {i}: {}",
            r["surprise"]
        );
        assert!(r["events"].is_array());
        let source = if i == 0 { "none" } else { "codec" };
        assert_eq!(r["motion"]["source"], source, "frame {i}: {}", r["motion"]);
        assert!(r["motion"]["pan"].as_array().is_some_and(|p| p.len() == 2));
    }
    let events: Vec<&Value> = records
        .iter()
        .flat_map(|r| r["events"].as_array().into_iter().flatten())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("view: "))),
        "the view changes from forest to bird: {events:?}"
    );
    let img = image::open(&plot).expect("the plot is a PNG");
    // Three panels: surprise, classes, motion.
    assert!(
        img.width() >= 800 && img.height() >= 900,
        "{}x{}",
        img.width(),
        img.height()
    );
    // The whole 1280x720 source frames, at most 1280 wide by default.
    assert_eq!(probe(&video), (1280, 720, 21), "width, height, frames");
    assert!(
        stderr(&result).contains("21 frames over"),
        "{}",
        stderr(&result)
    );

    // CSV on stdout, and the annotated video smaller.
    let small = dir.join("small.mp4");
    let csv = run(&[
        "run",
        s(&bunny()),
        "--device",
        "cpu",
        "--format",
        "csv",
        "--top",
        "2",
        "--annotate",
        s(&small),
        "--annotate-size",
        "640",
    ]);
    assert!(csv.status.success(), "{}", stderr(&csv));
    let text = stdout(&csv);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[0],
        "timestamp,frame,top1,top1_probability,top,head,surprise,events,\
         pan_x,pan_y,zoom,roll,objects,coverage,motion_source,wall,latency"
    );
    // H.264: the codec's vectors, from the second frame on (the first has nothing before it).
    // A file has no arrival times.
    assert!(rows[1].ends_with(",none,,"), "{}", rows[1]);
    assert!(rows[2].ends_with(",codec,,"), "{}", rows[2]);
    assert_eq!(rows.len(), 22);
    assert!(rows[1].starts_with("0.000000,0,"), "{}", rows[1]);
    assert_eq!(probe(&small), (640, 360, 21), "width, height, frames");
}

#[test]
fn run_with_a_trained_classifier_reports_its_classes() {
    let dir = temp_dir("run-classifier");
    let data = dir.join("data");
    for class in ["grow", "shrink"] {
        std::fs::create_dir_all(data.join(class)).expect("mkdir");
        for i in 0..6 {
            let name = format!("{class}_{i:03}.mp4");
            std::fs::copy(
                repo_root().join("samples/motion").join(class).join(&name),
                data.join(class).join(&name),
            )
            .expect("copy");
        }
    }
    let model = dir.join("model");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-feature-cache");
    let trained = run(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&model),
        "--cache",
        s(&cache),
        "--device",
        "cpu",
        "--epochs",
        "2",
    ]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let out = dir.join("grow.jsonl");
    let result = run(&[
        "run",
        s(&data.join("grow/grow_000.mp4")),
        "--model",
        s(&model),
        "--device",
        "cpu",
        "--out",
        s(&out),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let records = lines(&out);
    assert_eq!(
        records.len(),
        24,
        "2 s at the model's 15 frames/s (chosen by train from the clips): every 12 fps frame"
    );
    for r in &records {
        assert_eq!(r["head"]["task"], "classify");
        let labels: BTreeSet<&str> = r["head"]["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(|n| n["label"].as_str().expect("label"))
            .collect();
        assert_eq!(labels, BTreeSet::from(["grow", "shrink"]));
        assert!(r["surprise"].is_null());
    }
}

#[test]
fn bad_input_fails_in_one_line_and_leaves_no_output() {
    let dir = temp_dir("run-bad");
    let text = dir.join("notes.mp4");
    std::fs::write(&text, "not a video").expect("write");
    let out = dir.join("notes.jsonl");
    let result = run(&["run", s(&text), "--device", "cpu", "--out", s(&out)]);
    // An input that is there but unreadable: 1, as for every command.
    assert_eq!(result.status.code(), Some(1));
    let err = stderr(&result);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("notes.mp4"),
        "{err}"
    );
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    let missing = run(&["run", s(&dir.join("nope.mp4")), "--device", "cpu"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("nope.mp4"),
        "{}",
        stderr(&missing)
    );
}

/// A folder of inputs for the batch tests: two good videos (one in a subfolder), the damaged
/// AVI, a text file and an empty file dressed as videos.
fn batch_inputs(name: &str) -> PathBuf {
    let dir = temp_dir(name).join("in");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::copy(bunny(), dir.join("sub/bunny.mp4")).expect("copy");
    std::fs::copy(clip("five.mp4"), dir.join("five.mp4")).expect("copy");
    std::fs::copy(clip("damaged.avi"), dir.join("damaged.avi")).expect("copy");
    std::fs::write(dir.join("notes.mp4"), "not a video").expect("write");
    std::fs::write(dir.join("empty.avi"), "").expect("write");
    dir
}

fn batch(inputs: &Path, out: &Path, flags: &[&str]) -> std::process::Output {
    let mut args = vec!["batch", s(inputs), "--out", s(out), "--device", "cpu"];
    args.extend(flags);
    run(&args)
}

#[test]
fn batch_isolates_bad_files_resumes_and_redoes_what_is_missing() {
    let inputs = batch_inputs("batch-resume");
    let out = inputs.with_file_name("out");
    let first = batch(&inputs, &out, &[]);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    for good in ["sub/bunny.mp4", "five.mp4", "damaged.avi"] {
        assert!(out.join(format!("{good}.jsonl")).is_file(), "{good}");
        assert!(out.join(format!("{good}.summary.json")).is_file(), "{good}");
    }
    assert_eq!(lines(&out.join("sub/bunny.mp4.jsonl")).len(), 21);
    // The damaged AVI decodes with its bad frame skipped and counted.
    assert!(json(&out.join("damaged.avi.summary.json"))["damaged"].as_u64() >= Some(1));
    let errors = lines(&out.join("errors.jsonl"));
    let bad: BTreeSet<String> = errors
        .iter()
        .map(|e| {
            e["input"]
                .as_str()
                .expect("input")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        bad,
        BTreeSet::from(["empty.avi".into(), "notes.mp4".into()])
    );
    assert!(
        errors
            .iter()
            .all(|e| !e["error"].as_str().unwrap_or("").is_empty())
    );
    let summary = json(&out.join("summary.json"));
    assert_eq!(
        (summary["done"].as_u64(), summary["failed"].as_u64()),
        (Some(3), Some(2))
    );

    // A second run does no work.
    let again = batch(&inputs, &out, &[]);
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["done"], 0, "{}", stderr(&again));
    assert_eq!(summary["skipped"], 3);
    assert_eq!(summary["frames"], 0);

    // A removed output is redone; a leftover temporary file is not taken for a finished one.
    std::fs::remove_file(out.join("five.mp4.jsonl")).expect("rm");
    std::fs::write(out.join("sub/.bunny.mp4.jsonl.records-1.tmp"), "{}\n").expect("write");
    std::fs::remove_file(out.join("sub/bunny.mp4.jsonl")).expect("rm");
    let redo = batch(&inputs, &out, &[]);
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["done"], 2, "{}", stderr(&redo));
    assert_eq!(lines(&out.join("sub/bunny.mp4.jsonl")).len(), 21);

    // A changed input is redone; --force redoes everything.
    std::fs::copy(clip("vfr.mp4"), inputs.join("five.mp4")).expect("replace");
    batch(&inputs, &out, &[]);
    assert_eq!(json(&out.join("summary.json"))["done"], 1);
    batch(&inputs, &out, &["--force"]);
    assert_eq!(json(&out.join("summary.json"))["done"], 3);
}

#[test]
fn shards_cover_every_input_once() {
    let inputs = batch_inputs("batch-shards");
    let out = inputs.with_file_name("out");
    let mut seen = Vec::new();
    for shard in ["0/3", "1/3", "2/3"] {
        let r = batch(&inputs, &out, &["--shard", shard, "--jobs", "1"]);
        assert!(
            r.status.code() == Some(0) || r.status.code() == Some(1),
            "{}",
            stderr(&r)
        );
        let tag = shard.replace('/', "-of-");
        let summary = json(&out.join(format!("summary-{tag}.json")));
        seen.push(summary["inputs"].as_u64().expect("inputs"));
    }
    assert_eq!(seen.iter().sum::<u64>(), 5, "{seen:?}");
    for good in ["sub/bunny.mp4", "five.mp4", "damaged.avi"] {
        assert!(out.join(format!("{good}.jsonl")).is_file(), "{good}");
    }
    let bad: usize = ["0-of-3", "1-of-3", "2-of-3"]
        .iter()
        .map(|t| out.join(format!("errors-{t}.jsonl")))
        .filter(|p| p.is_file())
        .map(|p| lines(&p).len())
        .sum();
    assert_eq!(bad, 2);
    let bad_shard = batch(&inputs, &out, &["--shard", "3/3"]);
    assert_eq!(bad_shard.status.code(), Some(2));
    // Two inputs that would write the same output are refused before any work.
    let other = inputs.with_file_name("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::copy(inputs.join("five.mp4"), other.join("five.mp4")).expect("copy");
    let clash = run(&[
        "batch",
        s(&inputs.join("five.mp4")),
        s(&other.join("five.mp4")),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]);
    assert_eq!(clash.status.code(), Some(2));
    assert!(
        stderr(&clash).contains("would both write"),
        "{}",
        stderr(&clash)
    );
}
