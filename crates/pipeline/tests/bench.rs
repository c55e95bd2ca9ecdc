//! `pipeline bench` end to end, on the CPU (CI has no GPU).

mod common;
use common::*;

#[test]
fn named_stages_run_once_each_in_the_order_given() {
    let out = run(&[
        "bench",
        s(&clip("five.mp4")),
        "--stage",
        "decode,cnn,decode",
        "--repeats",
        "1",
        "--device",
        "cpu",
        "--batch",
        "4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("file: ") && lines[0].contains("batch: 4"),
        "{text}"
    );
    // Every frame of the 5 s, 25 fps clip; the CNN alone on 8 batches.
    assert!(
        lines[1].starts_with("decode") && lines[1].contains("; 125 frames x 1 runs)"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("cnn") && lines[2].contains("; 32 frames x 1 runs)"),
        "{text}"
    );
    assert!(
        lines[1..].iter().all(|l| l.contains("frames/s median")),
        "{text}"
    );
}

#[test]
fn the_cpu_layer_profile_times_each_layer_of_the_fused_kernels() {
    let out = run(&[
        "bench",
        s(&clip("five.mp4")),
        "--stage",
        "layers",
        "--repeats",
        "1",
        "--device",
        "cpu",
        "--batch",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].starts_with("layers   CPU kernels timed inside each frame's thread"),
        "{text}"
    );
    // The stem, 16 blocks (the first without an expansion), the head; then the summaries.
    let steps = &lines[2..lines.len() - 2];
    assert_eq!(steps.len(), 49, "{text}");
    assert!(steps[0].trim_start().starts_with("stem") && steps[0].contains("2x32x112x112"));
    assert!(steps[48].trim_start().starts_with("head+pool") && steps[48].contains("2x1280x1x1"));
    let by_kind = lines[lines.len() - 2];
    for kind in ["stem", "depthwise", "project", "expand", "head+pool"] {
        assert!(by_kind.contains(&format!("{kind} ")), "{text}");
    }
    assert!(
        lines[lines.len() - 1].contains("ms of thread time per batch of 2: "),
        "{text}"
    );
}

/// `--kernels portable` times the path CPUs without SIMD kernels run, and says so.
#[test]
fn the_portable_kernels_can_be_timed_on_any_cpu() {
    let out = run(&[
        "bench",
        s(&clip("five.mp4")),
        "--stage",
        "cnn",
        "--repeats",
        "1",
        "--device",
        "cpu",
        "--batch",
        "4",
        "--kernels",
        "portable",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("device: cpu (CNN: portable kernels"),
        "{text}"
    );
    assert!(
        text.lines().nth(1).is_some_and(|l| l.starts_with("cnn")),
        "{text}"
    );
}
