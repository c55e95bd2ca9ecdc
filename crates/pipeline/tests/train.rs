//! `pipeline train` and `pipeline eval` end to end on the shipped order-only clip set
//! (`samples/motion`, written by `pipeline make-clips`) and on small sets made from it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{json, lines, repo_root, run, s, stderr, stdout, temp_dir, the_error_line};
use serde_json::Value;

fn motion() -> PathBuf {
    repo_root().join("samples/motion")
}

/// One feature cache for the whole file: clips are keyed by content, so the copies the tests
/// make are extracted once.
fn cache() -> &'static str {
    static DIR: OnceLock<String> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-feature-cache");
        std::fs::create_dir_all(&dir).expect("cache dir");
        dir.display().to_string()
    })
}

fn train(data: &Path, out: &Path, flags: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(out),
        "--cache",
        cache(),
        "--device",
        "cpu",
    ];
    args.extend(flags);
    run(&args)
}

/// `n` clips of each class copied from samples/motion into `root/<class>/`.
fn subset(root: &Path, classes: &[&str], n: usize) {
    for class in classes {
        std::fs::create_dir_all(root.join(class)).expect("mkdir");
        for i in 0..n {
            let name = format!("{class}_{i:03}.mp4");
            std::fs::copy(
                motion().join(class).join(&name),
                root.join(class).join(&name),
            )
            .expect("copy clip");
        }
    }
}

#[test]
fn recurrent_head_learns_the_order_only_samples_and_the_baseline_cannot() {
    let dir = temp_dir("train-motion");
    let model = dir.join("model");
    // 4 fps (8 steps) and 30 epochs keep the test short; the defaults' own sampling is checked
    // below.
    let held_out = ["--test-fraction", "0.2", "--fps", "4", "--epochs", "30"];
    let result = train(&motion(), &model, &held_out);
    assert!(result.status.success(), "{}", stderr(&result));
    // Both splits are printed, each named for what it did.
    let printed = stdout(&result);
    assert!(
        printed
            .contains("of the val split (validation: the last epoch was kept, so it chose nothing"),
        "{printed}"
    );
    assert!(
        printed.contains("of the test split (held out: it chose nothing)"),
        "{printed}"
    );
    assert!(!printed.contains("no test split"), "{printed}");
    for f in [
        "config.json",
        "labels.json",
        "metrics.json",
        "curves.png",
        "confusion.png",
        "model.safetensors",
        "baseline.safetensors",
        "clips.jsonl",
    ] {
        assert!(model.join(f).is_file(), "{f} missing");
    }
    for png in ["curves.png", "confusion.png"] {
        let img = image::open(model.join(png)).expect("PNG decodes");
        assert!(img.width() > 100 && img.height() > 100);
    }
    assert_eq!(
        json(&model.join("labels.json")),
        serde_json::json!(["dip", "grow", "pulse", "shrink"])
    );
    let metrics = json(&model.join("metrics.json"));
    let val = &metrics["validation"];
    let test = &metrics["test"];
    assert_eq!(
        (val["split"].as_str(), test["split"].as_str()),
        (Some("val"), Some("test"))
    );
    let accuracy = test["accuracy"].as_f64().expect("accuracy");
    let baseline = test["baseline_accuracy"].as_f64().expect("baseline");
    // Four classes: chance is 0.25. Only the order of frames tells them apart.
    assert!(accuracy >= 0.95, "recurrent head test accuracy {accuracy}");
    assert!(
        baseline <= 0.4,
        "order-blind baseline test accuracy {baseline}"
    );
    // Of each class's 128 clips, a fifth (26) is test and another fifth val.
    assert_eq!(
        (
            metrics["data"]["test_sequences"].as_u64(),
            metrics["data"]["val_sequences"].as_u64()
        ),
        (Some(104), Some(104))
    );
    assert!(metrics["epochs"].as_array().is_some_and(|e| !e.is_empty()));
    let card = json(&model.join("config.json"));
    assert_eq!(card["sampling"]["fps"], 4.0);
    assert_eq!(card["clip_len"], 30);
    assert!(card["backbone"]["fingerprint"].as_str().is_some());
    let checkpoints = std::fs::read_dir(model.join("checkpoint"))
        .expect("checkpoint dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("epoch-"))
        })
        .count();
    assert_eq!(checkpoints, 1);

    // eval scores the same test clips the same way (test is its default when there is one),
    // and the validation clips when asked.
    let data = motion();
    let eval = |flags: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--cache",
            cache(),
            "--device",
            "cpu",
            "--json",
        ];
        args.extend(flags);
        let eval = run(&args);
        assert!(eval.status.success(), "{}", stderr(&eval));
        serde_json::from_str::<Value>(stdout(&eval).trim()).expect("one JSON object")
    };
    for (flags, expected, clips) in [(&[][..], test, 104), (&["--split", "val"][..], val, 104)] {
        let scores = eval(flags);
        assert_eq!(scores["split"], expected["split"]);
        assert_eq!(scores["accuracy"], expected["accuracy"]);
        assert_eq!(scores["baseline_accuracy"], expected["baseline_accuracy"]);
        assert_eq!(
            scores["classes"],
            serde_json::json!(["dip", "grow", "pulse", "shrink"])
        );
        let total: u64 = scores["confusion"]
            .as_array()
            .expect("confusion")
            .iter()
            .flat_map(|r| r.as_array().expect("row").iter())
            .map(|c| c.as_u64().expect("count"))
            .sum();
        assert_eq!(total, clips, "{flags:?}");
        assert!(scores["macro_f1"].as_f64().is_some());
    }

    // A second run into the same folder is refused; --resume carries on from the checkpoint
    // and reads every clip's features from the cache.
    let again = train(&motion(), &model, &held_out);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));
    let other_split = train(&motion(), &model, &["--resume"]);
    assert_eq!(other_split.status.code(), Some(2));
    assert!(
        stderr(&other_split).contains("--test-fraction 0.2"),
        "{}",
        stderr(&other_split)
    );
    let mut resume = held_out.to_vec();
    resume.push("--resume");
    let resumed = train(&motion(), &model, &resume);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("512 clips (512 from the cache)"),
        "{}",
        stderr(&resumed)
    );
}

#[test]
fn bad_training_data_is_named_and_a_damaged_clip_is_skipped() {
    let dir = temp_dir("train-bad");
    let data = dir.join("data");
    subset(&data, &["grow", "shrink"], 5);
    std::fs::write(data.join("grow/broken.mp4"), b"not a video").expect("write");
    let model = dir.join("model");
    let ok = train(&data, &model, &["--epochs", "2"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stderr(&ok).contains("broken.mp4"), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("1 clip(s) skipped"), "{}", stdout(&ok));
    // Without --fps or --stride, classify samples --clip-len (30) steps over the median clip
    // (2 s): 15 fps, every frame of these 12 fps clips; the card says so.
    let card = json(&model.join("config.json"));
    assert_eq!(card["sampling"]["fps"], 15.0);
    assert!(
        card["sampling"]["chosen"]
            .as_str()
            .is_some_and(|c| c.contains("median training clip of 2.00 s")),
        "{}",
        card["sampling"]
    );
    assert!((card["step_seconds"].as_f64().expect("step") - 1.0 / 12.0).abs() < 1e-3);
    assert_eq!(card["version"], 4);
    assert_eq!(card["inputs"], serde_json::json!(["features"]));
    assert!(card.get("motion_layout").is_none());
    assert_eq!(card["model"]["activation"], "relu");
    assert_eq!(card["recipe"]["selection"], "last");
    // Without a test split, train says the number it printed chose the kept epoch.
    assert!(
        stdout(&ok).contains("no test split: the scores above are validation scores"),
        "{}",
        stdout(&ok)
    );
    let skipped = &json(&model.join("metrics.json"))["data"]["skipped"];
    assert_eq!(skipped.as_array().map(Vec::len), Some(1));

    // Another head on resume is refused before anything is written: the card still says
    // what the weights are.
    let other_head = train(
        &data,
        &model,
        &["--resume", "--epochs", "2", "--activation", "none"],
    );
    assert_eq!(other_head.status.code(), Some(2));
    assert!(
        stderr(&other_head).contains(
            "the interrupted run's head was --cell lstm --hidden 256 --layers 1 --activation relu"
        ),
        "{}",
        stderr(&other_head)
    );
    assert_eq!(
        json(&model.join("config.json"))["model"]["activation"],
        "relu"
    );

    // Labels that change between a run and its resumption.
    subset(&data, &["pulse"], 3);
    let resumed = train(&data, &model, &["--resume", "--epochs", "2"]);
    assert_eq!(resumed.status.code(), Some(2));
    assert!(
        stderr(&resumed).contains("labels differ"),
        "{}",
        stderr(&resumed)
    );

    // eval on data with a class the model never saw.
    let eval = run(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--cache",
        cache(),
        "--device",
        "cpu",
    ]);
    assert_eq!(eval.status.code(), Some(2));
    assert!(
        stderr(&eval).contains("unknown class 'pulse'"),
        "{}",
        stderr(&eval)
    );

    // A held-out test manifest of one class and no split column is scored whole.
    let test_set = dir.join("test.csv");
    std::fs::write(
        &test_set,
        "data/grow/grow_000.mp4,grow\ndata/grow/grow_001.mp4,grow\n",
    )
    .expect("write");
    let held_out = run(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&test_set),
        "--cache",
        cache(),
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(held_out.status.success(), "{}", stderr(&held_out));
    let scores: Value = serde_json::from_str(stdout(&held_out).trim()).expect("json");
    assert_eq!(scores["sequences"], 2);
    assert_eq!(scores["split"], "all");

    // An empty class folder.
    std::fs::create_dir_all(data.join("empty")).expect("mkdir");
    let empty = train(&data, &dir.join("m2"), &[]);
    assert_eq!(empty.status.code(), Some(2));
    assert!(
        stderr(&empty).contains("has no video files"),
        "{}",
        stderr(&empty)
    );

    // A manifest naming a file that is not there, and one with a segment too short to hold
    // a single step.
    let manifest = dir.join("clips.csv");
    std::fs::write(
        &manifest,
        "path,label\ndata/grow/grow_000.mp4,grow\nnope.mp4,shrink\n",
    )
    .expect("write");
    let missing = train(&manifest, &dir.join("m3"), &[]);
    assert_eq!(missing.status.code(), Some(2));
    let err = stderr(&missing);
    assert!(
        err.contains("clips.csv:3") && err.contains("nope.mp4"),
        "{err}"
    );
    std::fs::write(
        &manifest,
        "path,label,start,end\n\
         data/grow/grow_000.mp4,grow,,\ndata/grow/grow_001.mp4,grow,,\n\
         data/shrink/shrink_000.mp4,shrink,,\ndata/shrink/shrink_001.mp4,shrink,0.01,0.02\n",
    )
    .expect("write");
    let short = train(&manifest, &dir.join("m4"), &["--epochs", "1"]);
    assert!(short.status.success(), "{}", stderr(&short));
    assert!(
        stderr(&short).contains("shorter than one step"),
        "{}",
        stderr(&short)
    );
}

#[test]
fn forecaster_trains_on_unlabelled_video_and_reports_persistence() {
    let dir = temp_dir("train-forecast");
    let data = dir.join("videos");
    subset(&data, &["grow", "pulse"], 6);
    let model = dir.join("model");
    // A horizon longer than the training windows is refused before training, and the failed
    // run does not block the next one into the same folder.
    let too_far = train(&data, &model, &["--task", "forecast", "--horizon", "100"]);
    assert_eq!(too_far.status.code(), Some(2));
    assert!(
        stderr(&too_far).contains("--clip-len"),
        "{}",
        stderr(&too_far)
    );
    let result = train(
        &data,
        &model,
        &["--task", "forecast", "--horizon", "0.5", "--epochs", "3"],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let card = json(&model.join("config.json"));
    assert_eq!(card["horizon_steps"], 2, "0.5 s at 4 steps/s");
    assert_eq!(card["classes"], serde_json::json!([]));
    // forecast keeps its own defaults: the best validation epoch, per-feature scaling.
    let recipe = &json(&model.join("config.json"))["recipe"];
    assert_eq!(
        (&recipe["selection"], &recipe["normalization"]),
        (
            &serde_json::json!("best"),
            &serde_json::json!("per-feature")
        )
    );
    let forecast = &json(&model.join("metrics.json"))["validation"]["forecast"];
    let (m, p) = (
        forecast["model_mse"].as_f64().expect("model"),
        forecast["persistence_mse"].as_f64().expect("persistence"),
    );
    let winner = if m < p { "model" } else { "persistence" };
    assert_eq!(forecast["winner"], winner);
    assert!(
        stdout(&result).contains("persistence"),
        "{}",
        stdout(&result)
    );
}

#[test]
fn anticipation_trains_on_segments_of_a_longer_video() {
    let dir = temp_dir("train-anticipate");
    let video = repo_root().join("samples/bigbuckbunny.mp4");
    let manifest = dir.join("segments.csv");
    std::fs::write(
        &manifest,
        format!(
            "{0},meadow,0,2.5\n{0},bunny,2.5,5\n{0},meadow,5,7.5\n{0},bunny,7.5,10\n",
            s(&video)
        ),
    )
    .expect("write");
    let model = dir.join("model");
    let result = train(
        &manifest,
        &model,
        &[
            "--task",
            "anticipate",
            "--horizon",
            "1",
            "--fps",
            "2",
            "--epochs",
            "3",
        ],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let card = json(&model.join("config.json"));
    assert_eq!(card["horizon_steps"], 2);
    assert_eq!(card["classes"], serde_json::json!(["bunny", "meadow"]));
    let val = &json(&model.join("metrics.json"))["validation"];
    assert!(val["confusion"].is_array(), "{val}");
    // Steps at 0, 0.5, ... 5.0 s: meadow x5, bunny x5, meadow. Of the 9 steps with a label
    // 1 s (2 steps) later, the label now is that label for 6: the carry-forward baseline.
    let carried = val["carry_forward_accuracy"]
        .as_f64()
        .expect("carry-forward");
    assert!((carried - 6.0 / 9.0).abs() < 1e-9, "{carried}");
    assert!(stdout(&result).contains("the label now, carried forward (no model): accuracy 66.7%"));
    // The order-blind head sees the frame now alone, on the same 9 targets.
    assert!(val["baseline_accuracy"].as_f64().is_some(), "{val}");
    assert!(model.join("baseline.safetensors").is_file());
    assert!(stdout(&result).contains("order-blind baseline (the frame now alone, linear)"));
}

/// A head on features and motion: the card records its inputs and the motion layout, `run`
/// and `eval` feed it both, and `run --no-motion` is refused in one line before any work.
/// By default it is fused late: a head per stream, each a model folder of its own, weighed on
/// the validation split.
#[test]
fn a_head_that_reads_motion_is_fed_motion_and_refuses_to_run_without() {
    let dir = temp_dir("train-inputs");
    let data = dir.join("data");
    subset(&data, &["grow", "shrink"], 4);
    let model = dir.join("model");
    let flags = ["--epochs", "2", "--inputs", "motion,features"];
    let result = train(&data, &model, &flags);
    assert!(result.status.success(), "{}", stderr(&result));
    let card = json(&model.join("config.json"));
    assert_eq!(card["inputs"], serde_json::json!(["features", "motion"]));
    assert_eq!(card["motion_layout"], 1);
    assert_eq!(card["model"]["input_dim"], 1280 + 58);
    let branches = card["fusion"]["branches"].as_array().expect("fused late");
    let streams: Vec<_> = branches.iter().map(|b| b["stream"].clone()).collect();
    assert_eq!(
        streams,
        [serde_json::json!("features"), serde_json::json!("motion")]
    );
    for b in branches {
        let weight = b["weight"].as_f64().expect("a weight");
        assert!((0.0..=2.0).contains(&weight), "{b}");
        // Each stream's head is a model folder that reads that stream alone.
        let branch = model.join(b["dir"].as_str().expect("dir"));
        assert!(
            branch.join("model.safetensors").is_file(),
            "{}",
            branch.display()
        );
        assert_eq!(
            json(&branch.join("config.json"))["inputs"],
            serde_json::json!([b["stream"]])
        );
    }
    let metrics = json(&model.join("metrics.json"));
    let chosen_on = metrics["fusion"]["chosen_on"].as_str().expect("chosen_on");
    assert!(chosen_on.starts_with("the validation split"), "{chosen_on}");
    assert!(
        stdout(&result).contains("fused late: features weight"),
        "{}",
        stdout(&result)
    );

    let clip = data.join("grow/grow_000.mp4");
    let out = dir.join("records.jsonl");
    let ran = run(&["run", s(&clip), "--model", s(&model), "--out", s(&out)]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let records = lines(&out);
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r["head"]["task"], "classify");
        assert!(r["motion"]["source"].is_string(), "{r}");
    }
    let refused = run(&["run", s(&clip), "--model", s(&model), "--no-motion"]);
    let line = the_error_line(&refused);
    assert!(line.contains("reads features,motion"), "{line}");

    let scored = run(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--cache",
        cache(),
    ]);
    assert!(scored.status.success(), "{}", stderr(&scored));
    let bad = train(&data, &dir.join("bad"), &["--inputs", "features,flow"]);
    assert!(the_error_line(&bad).contains("unknown stream \"flow\""));
    let one = train(
        &data,
        &dir.join("one"),
        &["--inputs", "motion", "--fusion", "late"],
    );
    assert!(the_error_line(&one).contains("--fusion late needs several streams"));
}

/// Without a validation split, late fusion weighs its heads on out-of-fold predictions over
/// the training groups; forecast heads are not fused late.
#[test]
fn late_fusion_without_a_validation_split_weighs_on_out_of_fold_predictions() {
    let dir = temp_dir("train-folds");
    let data = dir.join("data");
    subset(&data, &["grow", "shrink"], 3);
    let model = dir.join("model");
    let flags = [
        "--epochs",
        "1",
        "--inputs",
        "features,motion",
        "--val-fraction",
        "0",
    ];
    let result = train(&data, &model, &flags);
    assert!(result.status.success(), "{}", stderr(&result));
    let fusion = &json(&model.join("metrics.json"))["fusion"];
    let chosen_on = fusion["chosen_on"].as_str().expect("chosen_on");
    // Six clips, each its own group: five folds.
    assert!(
        chosen_on.starts_with(
            "out-of-fold predictions on the training split (6 sequences; 6 groups in 5 folds"
        ),
        "{chosen_on}"
    );
    for b in fusion["branches"].as_array().expect("branches") {
        assert!(b["held_out_accuracy"].as_f64().is_some(), "{b}");
    }
    // Clips with no group named: each is its own, which the folds cannot keep apart.
    assert!(
        stderr(&result).contains("every training clip is a group of its own"),
        "{}",
        stderr(&result)
    );
    assert_eq!(
        json(&model.join("config.json"))["fusion"]["weighed_on"],
        "out-of-fold"
    );
    let forecast = train(
        &data,
        &dir.join("forecast"),
        &[
            "--task",
            "forecast",
            "--inputs",
            "features,motion",
            "--fusion",
            "late",
        ],
    );
    assert!(the_error_line(&forecast).contains("a forecast head predicts the whole step"));
}

/// `--fusion early`: one head on both streams side by side, as before late fusion.
#[test]
fn early_fusion_is_one_head_on_the_streams_side_by_side() {
    let dir = temp_dir("train-early");
    let data = dir.join("data");
    subset(&data, &["grow", "shrink"], 3);
    let model = dir.join("model");
    let flags = [
        "--epochs",
        "1",
        "--inputs",
        "features,motion",
        "--fusion",
        "early",
    ];
    let result = train(&data, &model, &flags);
    assert!(result.status.success(), "{}", stderr(&result));
    let card = json(&model.join("config.json"));
    assert!(card.get("fusion").is_none(), "{card}");
    assert!(model.join("model.safetensors").is_file());
    assert!(!model.join("motion").exists());
}
