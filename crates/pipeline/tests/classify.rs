//! End-to-end: `pipeline classify` and `pipeline info`.

mod common;

use common::*;

#[test]
fn classifies_a_photo_as_json() {
    let image = repo_root().join("samples/chelsea.png");
    let out = run(&[
        "classify",
        image.to_str().expect("utf-8"),
        "--json",
        "--top",
        "3",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let record: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
    assert!(
        record["source"]
            .as_str()
            .expect("source")
            .ends_with("chelsea.png")
    );
    assert!(record.get("timestamp").is_none());
    let top = record["top"].as_array().expect("top");
    assert_eq!(top.len(), 3);
    // The reference implementation's top-1 for this photo is "tabby" (281); tiger cat (282)
    // and Egyptian cat (285) are the neighbours a resize can swap it with.
    let first = top[0]["index"].as_u64().expect("index");
    assert!([281, 282, 285].contains(&first), "{text}");
    let p: Vec<f64> = top
        .iter()
        .map(|t| t["probability"].as_f64().expect("p"))
        .collect();
    assert!(
        p.windows(2).all(|w| w[0] >= w[1]) && p[0] > 0.2 && p[0] <= 1.0,
        "{p:?}"
    );
}

#[test]
fn classifies_sampled_video_frames_with_timestamps() {
    let video = repo_root().join("samples/bigbuckbunny.mp4");
    let out = run(&[
        "classify",
        video.to_str().expect("utf-8"),
        "--json",
        "--fps",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    // 5.3 s at one frame a second.
    assert_eq!(records.len(), 6);
    for (i, r) in records.iter().enumerate() {
        let t = r["timestamp"].as_f64().expect("timestamp");
        assert!((t - i as f64).abs() < 0.05, "{t}");
        assert_eq!(r["top"].as_array().expect("top").len(), 5);
    }
}

#[test]
fn text_output_names_source_and_time() {
    let video = repo_root().join("samples/bigbuckbunny.mp4");
    let out = run(&[
        "classify",
        video.to_str().expect("utf-8"),
        "--keyframes",
        "--top",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().count() >= 1);
    assert!(
        text.lines()
            .all(|l| l.contains("bigbuckbunny.mp4 @ ") && l.contains("s: ")),
        "{text}"
    );
}

#[test]
fn info_lists_devices_and_the_auto_choice() {
    let out = run(&["info"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("pipeline "), "{text}");
    assert!(text.contains("--device auto: "), "{text}");
    if cfg!(not(feature = "gpu")) {
        assert!(text.contains("wgpu adapters: not built in"), "{text}");
        assert!(text.contains("`--features gpu` adds wgpu"), "{text}");
    }
}
