//! End-to-end: `pipeline run`'s anomaly events on generated clips with a freeze, a black
//! stretch and a splice at known times.

mod common;

use common::*;

/// Anomalies in one record stream: (text, the record's time).
fn anomaly_events(records: &[serde_json::Value]) -> Vec<(String, f64)> {
    records
        .iter()
        .flat_map(|r| {
            let t = r["timestamp"].as_f64().expect("timestamp");
            r["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
                .filter(|e| e.starts_with("anomaly: "))
                .map(move |e| (e.to_string(), t))
        })
        .collect()
}

fn run_records(dir: &std::path::Path, clip: &std::path::Path) -> Vec<serde_json::Value> {
    let out = dir.join(format!(
        "{}.jsonl",
        clip.file_stem().expect("stem").to_string_lossy()
    ));
    let result = run(&["run", s(clip), "--device", "cpu", "--out", s(&out)]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("anomalies:") || anomaly_events(&lines(&out)).is_empty(),
        "the summary lists the anomalies: {}",
        stderr(&result)
    );
    lines(&out)
}

/// 16 s of the animated test pattern at 25 frames/s: 40 frames frozen from 4 s, 40 black from
/// 8.8 s, 40 spliced in from another source from 12.4 s. Each fires inside its interval, and
/// nothing fires elsewhere.
#[test]
fn a_freeze_a_black_stretch_and_a_splice_fire_where_they_are() {
    let dir = temp_dir("anomalies");
    let clip = dir.join("injected.mp4");
    let pattern = "testsrc2=size=320x240:rate=25:duration=20";
    let norm = "format=yuv420p,setsar=1";
    let cut = |from: f64, frames: u32| {
        format!(
            "[0:v]trim=start={from}:duration=4,setpts=PTS-STARTPTS,{norm},trim=end_frame={frames},setpts=N/(25*TB)"
        )
    };
    let graph = [
        cut(0.0, 100),
        format!(
            "[0:v]trim=start=4:duration=0.2,setpts=PTS-STARTPTS,{norm},trim=end_frame=1,tpad=stop_mode=clone:stop_duration=2,trim=end_frame=40,setpts=N/(25*TB)"
        ),
        cut(5.6, 80),
        format!("color=black:s=320x240:r=25:d=2,{norm},trim=end_frame=40,setpts=N/(25*TB)"),
        cut(10.4, 50),
        format!(
            "[1:v]trim=start=2:duration=2,setpts=PTS-STARTPTS,{norm},trim=end_frame=40,setpts=N/(25*TB)"
        ),
        cut(14.0, 90),
    ];
    let mut filter: String = graph
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{g}[p{i}];"))
        .collect();
    filter += &(0..graph.len())
        .map(|i| format!("[p{i}]"))
        .collect::<String>();
    filter += &format!("concat=n={}:v=1:a=0[out]", graph.len());
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        pattern,
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=320x240:rate=25",
        "-filter_complex",
        &filter,
        "-map",
        "[out]",
        "-c:v",
        "mpeg4",
        "-q:v",
        "3",
        "-g",
        "25",
        s(&clip),
    ]);
    let found = anomaly_events(&run_records(&dir, &clip));
    // Records come 4 a second; a cut is reported at the sample after it (once that one is
    // calm): a sample's slack before, two after.
    let inside = |(a, b): (f64, f64), t: f64| t >= a - 0.3 && t <= b + 0.55;
    let intervals = [
        ("frozen", (4.0, 5.6)),
        ("black", (8.8, 10.4)),
        ("cut", (12.4, 14.0)),
    ];
    for (kind, span) in intervals {
        let starts = format!("anomaly: {kind}");
        assert!(
            found
                .iter()
                .any(|(e, t)| e.starts_with(&starts) && !e.contains("ends") && inside(span, *t)),
            "no {kind} in {span:?}: {found:?}"
        );
    }
    for (e, t) in &found {
        assert!(
            intervals.iter().any(|(_, span)| inside(*span, *t)),
            "{e} at {t} s, outside every injected anomaly: {found:?}"
        );
    }
}

/// A picture still from its first frame (colour bars) is its own normal: no freeze, no
/// anomaly at all.
#[test]
fn a_stream_still_from_its_first_frame_raises_nothing() {
    let dir = temp_dir("anomalies-still");
    let clip = dir.join("bars.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "smptebars=size=320x240:rate=25:duration=8",
        "-c:v",
        "mpeg4",
        "-q:v",
        "3",
        s(&clip),
    ]);
    let found = anomaly_events(&run_records(&dir, &clip));
    assert!(found.is_empty(), "{found:?}");
}

/// Colour bars, still for 6 s, then a patch of moving test pattern sliding in: motion where the
/// scene had none, found from where it starts; nothing before it.
#[test]
fn objects_moving_in_a_still_scene_are_motion() {
    let dir = temp_dir("anomalies-motion");
    let clip = dir.join("intruder.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "smptebars=size=320x240:rate=25:duration=10",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=120x90:rate=25:duration=10",
        "-filter_complex",
        "[0:v][1:v]overlay=x='if(gte(t,6),(t-6)*40,-200)':y=80,format=yuv420p",
        "-c:v",
        "libx264",
        s(&clip),
    ]);
    let found = anomaly_events(&run_records(&dir, &clip));
    assert!(
        found
            .iter()
            .any(|(e, t)| e.starts_with("anomaly: motion (") && (6.0..=7.5).contains(t)),
        "no motion between 6 and 7.5 s: {found:?}"
    );
    assert!(
        found.iter().all(|(_, t)| *t >= 6.0),
        "an anomaly before anything moved: {found:?}"
    );
}

/// A window panning right over a still picture that turns back at 3 s at once (as footage
/// played backwards does): reversed there, and nothing else.
#[test]
fn a_pan_that_turns_back_at_once_is_reversed() {
    let dir = temp_dir("anomalies-reversed");
    let clip = dir.join("pan.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25:duration=1",
        "-vf",
        "trim=end_frame=1,tpad=stop_mode=clone:stop_duration=7,crop=320:240:x='if(lt(t,3),20+t*60,20+(6-t)*60)':y=60,format=yuv420p",
        "-c:v",
        "libx264",
        s(&clip),
    ]);
    let found = anomaly_events(&run_records(&dir, &clip));
    assert!(
        found
            .iter()
            .any(|(e, t)| e.starts_with("anomaly: reversed (") && (2.9..=3.6).contains(t)),
        "no reversal at 3 s: {found:?}"
    );
    assert!(
        found.iter().all(|(_, t)| (2.9..=3.6).contains(t)),
        "an anomaly away from the turn: {found:?}"
    );
}
