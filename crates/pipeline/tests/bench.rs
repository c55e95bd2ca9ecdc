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
fn the_layer_profile_is_refused_on_the_cpu_with_one_line() {
    let out = run(&[
        "bench",
        s(&clip("five.mp4")),
        "--stage",
        "layers",
        "--device",
        "cpu",
    ]);
    let line = the_error_line(&out);
    assert!(line.contains("layer profile is for GPUs"), "{line}");
}
