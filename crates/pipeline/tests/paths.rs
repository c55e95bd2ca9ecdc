//! Inputs and outputs whose names are not UTF-8 (legal on Linux, common in old archives).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{BIN, clip, json, lines, stderr, temp_dir};

fn pipeline(args: &[&OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running pipeline")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn a_file_name_that_is_not_utf8_is_processed_like_any_other() {
    let dir = temp_dir("non-utf8");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let video = input.join(OsStr::from_bytes(b"clip-\xff.mp4"));
    std::fs::copy(clip("five.mp4"), &video).expect("copy");
    let fps = [os("--device"), os("cpu"), os("--fps"), os("2")];

    // run, CSV to a file whose name is not UTF-8 either.
    let records = dir.join(OsStr::from_bytes(b"records-\xfe.csv"));
    let mut args = vec![
        os("run"),
        video.as_os_str(),
        os("--out"),
        records.as_os_str(),
    ];
    args.extend(fps);
    let out = pipeline(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = std::fs::read_to_string(&records).expect("the records");
    assert_eq!(csv.lines().count(), 1 + 10, "a header and 10 rows: {csv}");
    assert!(
        stderr(&out).contains("clip-\u{FFFD}.mp4"),
        "{}",
        stderr(&out)
    );

    // batch: the outputs keep the input's bytes; JSON fields show U+FFFD for them.
    let out_dir = dir.join("out");
    let mut args = vec![
        os("batch"),
        input.as_os_str(),
        os("--out"),
        out_dir.as_os_str(),
    ];
    args.extend(fps);
    let out = pipeline(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let named =
        |suffix: &[u8]| out_dir.join(OsStr::from_bytes(&[b"clip-\xff.mp4", suffix].concat()));
    assert_eq!(lines(&named(b".jsonl")).len(), 10);
    let summary = json(&named(b".summary.json"));
    let recorded = summary["provenance"]["input"].as_str().expect("input");
    assert!(recorded.ends_with("clip-\u{FFFD}.mp4"), "{recorded}");

    // extract: the features file keeps the bytes too.
    let features = dir.join("features");
    let mut args = vec![
        os("extract"),
        video.as_os_str(),
        os("--out"),
        features.as_os_str(),
    ];
    args.extend(fps);
    let out = pipeline(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(Path::new(&features.join(OsStr::from_bytes(b"clip-\xff.safetensors"))).is_file());
}
