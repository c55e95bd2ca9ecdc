//! Exit statuses, the same for every command: 0 done, 1 some inputs failed, 2 usage error
//! (nothing started), 3 runtime failure.

mod common;

use common::{clip, run, s, stderr, temp_dir};

#[test]
fn each_kind_of_ending_has_its_status() {
    let dir = temp_dir("exit");
    let five = clip("five.mp4");
    let fast = ["--device", "cpu", "--fps", "1"];
    let status = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(fast);
        let out = run(&all);
        (out.status.code(), stderr(&out))
    };
    let (code, err) = status(&["run", s(&five)]);
    assert_eq!(code, Some(0), "{err}");

    // An input that is there but is no video: 1, for run as for extract.
    let notes = dir.join("notes.mp4");
    std::fs::write(&notes, "not a video").expect("write");
    let out = dir.join("out");
    for args in [
        vec!["run", s(&notes)],
        vec!["extract", s(&notes), s(&five), "--out", s(&out)],
    ] {
        let (code, err) = status(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
    }

    // Nothing started: a missing input, a bad flag, a folder that is not a model.
    for args in [
        vec!["run", "/no/such/video.mp4"],
        vec!["run", s(&five), "--size", "8"],
        vec!["run", s(&five), "--model", s(&dir)],
    ] {
        let (code, err) = status(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }

    // Work started, then the output could not be written.
    let (code, err) = status(&["run", s(&five), "--out", "/proc/records.jsonl"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
}
