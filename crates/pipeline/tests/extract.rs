//! End-to-end: `pipeline extract` on generated clips, real media and bad inputs.

mod common;

use common::*;

#[test]
fn fps_two_on_a_five_second_clip_gives_ten_frames() {
    let x = extract(
        "fps2",
        &clip("five.mp4"),
        &["--fps", "2", "--device", "cpu"],
    );
    assert_eq!(x.shape, [10, 1280]);
    assert_eq!(x.timestamps.len(), 10);
    // The first frame at or after each tick: 0.5 s falls between two 25 fps frames.
    for (i, t) in x.timestamps.iter().enumerate() {
        let tick = i as f64 * 0.5;
        assert!((tick..tick + 0.04).contains(t), "{:?}", x.timestamps);
    }
    assert!(x.features.iter().all(|v| v.is_finite()));
    assert_eq!(x.metadata["backbone"], "efficientnet-lite0");
    assert_eq!(x.metadata["sampling"], "fps=2");
    assert_eq!(x.metadata["frame_size"], "320x240");
    assert_eq!(x.metadata["input_size"], "224x224");
    assert_eq!(x.metadata["decoder_warnings"], "none");
    assert!(x.metadata["source"].ends_with("five.mp4"));
}

/// Motion beside the features by default, its layout named in the metadata; `--no-motion`
/// and `--keyframes` write none. The generated clip's codec has vectors: every sample after
/// the first says so.
#[test]
fn motion_is_written_beside_the_features_unless_asked_not_to() {
    let x = extract("motion", &clip("five.mp4"), &["--fps", "2"]);
    let (shape, values) = x.motion.expect("a motion tensor");
    assert_eq!(shape, [10, 58]);
    assert_eq!(x.metadata["motion_layout"], "1");
    let fields: Vec<&str> = x.metadata["motion_fields"].split(',').collect();
    assert_eq!(fields.len(), 58);
    assert_eq!(&fields[..3], ["pan_x", "pan_y", "zoom"]);
    let codec = fields
        .iter()
        .position(|f| *f == "codec")
        .expect("a codec field");
    let sources: Vec<f32> = values.chunks(58).map(|row| row[codec]).collect();
    assert!(sources[1..].iter().all(|s| *s > 0.0), "{sources:?}");
    assert!(values.iter().all(|v| v.is_finite()));
    for flags in [&["--no-motion"][..], &["--keyframes"], &["--motion", "off"]] {
        let x = extract("no-motion", &clip("five.mp4"), flags);
        assert!(x.motion.is_none(), "{flags:?}");
        assert!(!x.metadata.contains_key("motion_layout"), "{flags:?}");
    }
}

#[test]
fn every_frame_by_default_with_increasing_timestamps() {
    let x = extract(
        "every",
        &clip("five.mp4"),
        &["--end", "1", "--device", "cpu"],
    );
    // 25 fps, [0, 1): frames 0..25.
    assert_eq!(x.shape, [25, 1280]);
    assert!(
        x.timestamps.windows(2).all(|w| w[1] > w[0]),
        "{:?}",
        x.timestamps
    );
}

#[test]
fn start_end_window_seeks_and_decodes_accurately() {
    let x = extract(
        "window",
        &clip("five.mp4"),
        &["--start", "1.5", "--end", "3.5", "--fps", "5"],
    );
    // Ticks 1.5, 1.7, ..., 3.3: one sample each, the first 25 fps frame at or after it.
    assert_eq!(x.timestamps.len(), 10, "{:?}", x.timestamps);
    assert!((1.5..1.54).contains(&x.timestamps[0]), "{:?}", x.timestamps);
    assert!(x.timestamps.iter().all(|t| (1.5..3.5).contains(t)));
}

#[test]
fn stride_takes_every_kth_frame() {
    let x = extract("stride", &clip("five.mp4"), &["--stride", "10"]);
    // 125 frames: 0, 10, ..., 120.
    assert_eq!(x.timestamps.len(), 13);
    assert!((x.timestamps[1] - 0.4).abs() < 1e-6);
}

#[test]
fn keyframes_skips_everything_else() {
    let x = extract("keys", &clip("five.mp4"), &["--keyframes"]);
    // A key frame every 25 frames: one a second.
    assert_eq!(x.timestamps, [0.0, 1.0, 2.0, 3.0, 4.0]);
}

/// Sparse sampling has the decoder drop the frames nothing refers to that it will skip, before
/// decoding them: the samples are still those of a full decode (the first frame at or after
/// each tick), pixel for pixel, from fewer decoded frames.
#[test]
fn sparse_sampling_drops_unreferenced_frames_and_takes_the_same_ones() {
    let video = clip("bframes.mp4");
    let all = extract("bframes-all", &video, &["--device", "cpu"]);
    assert_eq!(all.timestamps.len(), 100);
    for (test, fps, start, most) in [
        ("bframes-fps3", "3", None, 50),
        ("bframes-fps7.5", "7.5", None, 60),
        ("bframes-start", "2", Some("1.3"), 40),
    ] {
        let out = temp_dir(test);
        let mut args = vec!["extract", s(&video), "--out", s(&out), "--fps", fps];
        args.extend(["--device", "cpu", "-v"]);
        if let Some(start) = start {
            args.extend(["--start", start]);
        }
        let result = run(&args);
        assert!(result.status.success(), "{}", stderr(&result));
        let got = read_extracted(&out.join("bframes.safetensors"));
        // What the full decode gives: with an fps clock from `start` (or the first frame),
        // the first frame at or after each tick.
        let fps: f64 = fps.parse().expect("fps");
        let origin = start.map_or(0.0, |s| s.parse().expect("start"));
        let mut want = Vec::new();
        let mut tick = 0.0;
        for (i, &t) in all.timestamps.iter().enumerate() {
            if t >= origin - 1e-6 && t + 1e-6 >= origin + tick / fps {
                want.push(i);
                tick = ((t - origin) * fps + 1e-6).floor() + 1.0;
            }
        }
        let times: Vec<f64> = want.iter().map(|&i| all.timestamps[i]).collect();
        assert_eq!(got.timestamps, times, "{test}");
        for (row, &i) in want.iter().enumerate() {
            assert!(
                got.features[row * 1280..][..1280] == all.features[i * 1280..][..1280],
                "{test}: sample {row} is not frame {i} of the full decode"
            );
        }
        let log = stderr(&result);
        let decoded: usize = log
            .lines()
            .find_map(|l| {
                l.split_once(" frames decoded")?
                    .0
                    .rsplit(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no decode report in {log}"));
        assert!(decoded <= most, "{test}: {decoded} frames decoded");
    }
}

#[test]
fn variable_frame_rate_timestamps_come_from_the_stream() {
    let x = extract("vfr", &clip("vfr.mp4"), &[]);
    assert_eq!(x.timestamps.len(), 60);
    for (i, t) in x.timestamps.iter().enumerate() {
        let want = if i < 30 {
            i as f64 / 30.0
        } else {
            1.0 + (i - 30) as f64 / 10.0
        };
        assert!((t - want).abs() < 2e-3, "frame {i}: {t} vs {want}");
    }
    // A frame counter times a nominal rate would end near 2 s; the stream ends at 3.9 s.
    assert!(x.timestamps[59] > 3.8);
}

#[test]
fn display_rotation_is_applied_like_the_ffmpeg_cli() {
    let flags = ["--keyframes"];
    let rotated = extract("rot", &clip("rotated.mp4"), &flags);
    let upright = extract("upright", &clip("upright.mp4"), &flags);
    let plain = extract("plain", &clip("five.mp4"), &flags);
    assert_eq!(rotated.metadata["rotation"], "270");
    let same = cosine(&rotated.features[..1280], &upright.features[..1280]);
    let unrotated = cosine(&plain.features[..1280], &upright.features[..1280]);
    assert!(same > 0.97, "rotated vs upright cosine {same}");
    assert!(
        same > unrotated + 0.02,
        "rotation made no difference: {same} vs {unrotated}"
    );
}

#[test]
fn damaged_avi_is_decoded_with_bad_data_skipped_and_counted() {
    let x = extract("damaged", &clip("damaged.avi"), &["--fps", "2"]);
    assert!(x.timestamps.len() > 5, "{:?}", x.timestamps);
    assert!(x.timestamps.windows(2).all(|w| w[1] > w[0]));
    assert_ne!(
        x.metadata["decoder_warnings"], "none",
        "damage went unnoticed"
    );
}

#[test]
#[ignore = "needs ../shared/media beside the checkout: cargo test -- --ignored"]
fn the_damaged_megamind_avi_decodes_with_bad_data_skipped_and_counted() {
    let x = extract(
        "megamind",
        &shared_media("Megamind_bugy.avi"),
        &["--fps", "2"],
    );
    assert!(x.timestamps.len() > 5, "{:?}", x.timestamps);
    assert_ne!(x.metadata["decoder_warnings"], "none");
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_file() {
    let dir = temp_dir("bad-single");
    let cases: [(&str, &[u8]); 2] = [
        ("empty.mp4", b""),
        ("notes.mp4", b"this is text, not video\n"),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let out = run(&[
            "extract",
            path.to_str().expect("utf-8"),
            "--out",
            dir.join("out").to_str().expect("utf-8"),
        ]);
        let line = the_error_line(&out);
        assert!(line.contains(name), "{line}");
        assert!(
            !dir.join("out")
                .join(name)
                .with_extension("safetensors")
                .exists()
        );
    }
    let out = run(&[
        "extract",
        "/no/such/file.mp4",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/no/such/file.mp4"));
}

#[test]
fn a_directory_mixing_videos_and_other_files_keeps_going_past_bad_ones() {
    let dir = temp_dir("mixed");
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).expect("mkdir");
    std::fs::copy(clip("five.mp4"), input.join("a.mp4")).expect("copy");
    std::fs::copy(clip("vfr.mp4"), input.join("sub/b.mp4")).expect("copy");
    std::fs::write(input.join("readme.txt"), "not a video").expect("write");
    std::fs::write(input.join("empty.mp4"), "").expect("write");
    // The first third of an mp4 whose index sits at the end: unreadable.
    let bytes = std::fs::read(clip("five.mp4")).expect("read");
    std::fs::write(input.join("truncated.mp4"), &bytes[..bytes.len() / 3]).expect("write");

    let out_dir = dir.join("out");
    let out = run(&[
        "extract",
        input.to_str().expect("utf-8"),
        "--out",
        out_dir.to_str().expect("utf-8"),
        "--keyframes",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("error:") && l.contains("empty.mp4")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("error:") && l.contains("truncated.mp4")),
        "{err}"
    );
    assert!(
        !err.contains("readme.txt"),
        "non-video files are not inputs: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        read_extracted(&out_dir.join("a.safetensors"))
            .timestamps
            .len(),
        5
    );
    assert_eq!(
        read_extracted(&out_dir.join("sub/b.safetensors")).shape[1],
        1280
    );
    let mut written: Vec<String> = walk(&out_dir);
    written.sort();
    assert_eq!(
        written,
        ["a.safetensors", "sub/b.safetensors"],
        "no partial or temporary files"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("ls") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let sub = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            out.extend(walk(&path).into_iter().map(|p| format!("{sub}/{p}")));
        } else {
            out.push(
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out
}

/// Runs `extract` on the shipped clip with `flags` into a fresh folder, expecting a refusal:
/// returns the one error line, having checked that nothing was written.
fn extract_refused(name: &str, flags: &[&str]) -> String {
    let dir = temp_dir(name);
    let video = repo_root().join("samples/bigbuckbunny.mp4");
    let mut args = vec!["extract", s(&video), "--out", s(&dir)];
    args.extend(flags);
    let line = the_error_line(&run(&args));
    assert!(walk(&dir).is_empty(), "{:?}", walk(&dir));
    line
}

#[test]
fn half_precision_on_the_cpu_is_refused_before_any_output() {
    let line = extract_refused("f16-on-cpu", &["--device", "cpu", "--precision", "f16"]);
    assert!(line.contains("--precision f16 needs a GPU"), "{line}");
}

#[cfg(not(feature = "gpu"))]
#[test]
fn a_gpu_asked_of_a_cpu_only_build_is_refused_before_any_output() {
    let line = extract_refused("wgpu-not-built", &["--device", "wgpu"]);
    assert!(line.contains("built without GPU support"), "{line}");
    assert!(line.contains("--features gpu"), "{line}");
}
