//! `run` on live and streamed sources, with the ffmpeg CLI as the server on localhost: records
//! while the stream plays, standard input, a generator, a server that never sends, a server
//! that comes back, Ctrl-C, and credentials that never show.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// A 3 s, 25 frames/s test pattern in MPEG-TS, a key frame every second.
fn stream_clip() -> &'static Path {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = temp_dir("live-clips");
        let path = dir.join("three.ts");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=3",
            "-c:v",
            "mpeg4",
            "-q:v",
            "5",
            "-g",
            "25",
            s(&path),
        ]);
        path
    })
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether something listens on (`/proc/net/tcp`) or is bound to (`/proc/net/udp`) `port`
/// on localhost.
fn bound(table: &str, port: u16, state: Option<&str>) -> bool {
    let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
    let want = format!(":{port:04X}");
    text.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && fields[1].ends_with(&want) && state.is_none_or(|s| fields[3] == s)
    })
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The ffmpeg CLI serving `clip` in real time on `url` (`-listen 1`), once it listens.
fn serve(clip: &Path, url: &str, port: u16) -> Child {
    let child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-re", "-i", s(clip)])
        .args(["-c", "copy", "-f", "mpegts", "-listen", "1", url])
        .spawn()
        .expect("the live tests need the ffmpeg CLI");
    wait_until("the ffmpeg server", || bound("tcp", port, Some("0A")));
    child
}

/// `pipeline run ARGS` with stdout piped: each record line with the seconds since the start at
/// which it came, then the exit status and stderr.
fn run_live(
    args: &[&str],
) -> (
    Vec<(f64, serde_json::Value)>,
    std::process::ExitStatus,
    String,
) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running pipeline");
    let stdout = child.stdout.take().expect("stdout");
    let mut records = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        let value = serde_json::from_str(&line).expect("each line is a whole JSON record");
        records.push((started.elapsed().as_secs_f64(), value));
    }
    let out = child.wait_with_output().expect("waits");
    (records, out.status, stderr(&out))
}

fn timestamps(records: &[(f64, serde_json::Value)]) -> Vec<f64> {
    records
        .iter()
        .map(|(_, r)| r["timestamp"].as_f64().expect("timestamp"))
        .collect()
}

fn increasing(times: &[f64]) -> bool {
    times.windows(2).all(|w| w[1] > w[0])
}

/// Served in real time over tcp and http: records come while the stream still plays, with
/// their arrival time and latency, timestamps increase, and there are as many as 3 s at the
/// head's 4 frames/s.
#[test]
fn tcp_and_http_streams_give_records_as_they_play() {
    let clip = stream_clip();
    for scheme in ["tcp", "http"] {
        let port = free_port();
        let url = format!("{scheme}://127.0.0.1:{port}");
        let mut server = serve(clip, &url, port);
        let (records, status, err) = run_live(&["run", &url, "--reconnect", "0"]);
        let _ = server.wait();
        assert!(status.success(), "{scheme}: {err}");
        let times = timestamps(&records);
        assert!(
            (11..=13).contains(&times.len()),
            "{scheme}: {times:?}\n{err}"
        );
        assert!(increasing(&times), "{scheme}: {times:?}");
        // The first record arrives well before the 3 s stream is over; the last after.
        let (first, last) = (records[0].0, records[records.len() - 1].0);
        assert!(
            last - first > 1.5,
            "{scheme}: records came at {first} .. {last} s"
        );
        for (_, r) in &records {
            assert_eq!(r["wall_clock"], "arrival", "{r}");
            let latency = r["latency"].as_f64().expect("latency");
            assert!((0.0..2.0).contains(&latency), "{r}");
        }
        assert!(err.contains("live: latency"), "{err}");
    }
}

/// udp, the receiver bound first: the stream's records (loopback may drop a few packets), and
/// the run ends when no data has come for the timeout.
#[test]
fn a_udp_stream_is_received() {
    let clip = stream_clip();
    let port = free_port();
    let url = format!("udp://127.0.0.1:{port}");
    let args: Vec<String> = ["run", &url, "--timeout", "2", "--reconnect", "0"]
        .map(str::to_string)
        .to_vec();
    let receiver = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_live(&args)
    });
    wait_until("the receiver to bind", || bound("udp", port, None));
    let sent = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-re", "-i", s(clip)])
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(format!("{url}?pkt_size=1316"))
        .status()
        .expect("ffmpeg sends");
    assert!(sent.success());
    let (records, status, err) = receiver.join().expect("receiver");
    assert!(status.success(), "{err}");
    let times = timestamps(&records);
    assert!((8..=13).contains(&times.len()), "{times:?}\n{err}");
    assert!(increasing(&times), "{times:?}");
    assert!(err.contains("ended: no data for 2 s"), "{err}");
}

/// MPEG-TS through standard input gives the records the file gives (but for arrival times),
/// and MP4, which needs seeking, is refused in one line that says what to do.
#[test]
fn standard_input_gives_the_records_of_the_file() {
    let clip = stream_clip();
    let dir = temp_dir("live-stdin");
    let from_file = dir.join("file.jsonl");
    let out = run(&["run", s(clip), "--out", s(&from_file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let from_pipe = dir.join("pipe.jsonl");
    let mut child = Command::new(BIN)
        .args(["run", "-", "--out", s(&from_pipe)])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let bytes = std::fs::read(clip).expect("reads the clip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("pipes");
    let out = child.wait_with_output().expect("waits");
    assert!(out.status.success(), "{}", stderr(&out));
    let strip = |mut v: serde_json::Value| {
        let map = v.as_object_mut().expect("object");
        for key in ["wall", "wall_clock", "latency"] {
            map.remove(key);
        }
        v
    };
    let piped: Vec<serde_json::Value> = lines(&from_pipe).into_iter().map(strip).collect();
    assert_eq!(piped, lines(&from_file));
    assert!(
        stderr(&out).contains("streamed: latency"),
        "{}",
        stderr(&out)
    );

    let mp4 = common::clip("five.mp4");
    let mut child = Command::new(BIN)
        .args(["run", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let bytes = std::fs::read(&mp4).expect("reads");
    // The run may refuse before reading it all.
    let _ = child.stdin.take().expect("stdin").write_all(&bytes);
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(1));
    let line = the_error_line(&out);
    assert!(line.contains("standard input: MP4 needs seeking"), "{line}");
}

/// A server that accepts and never sends: one line naming the source (its password hidden)
/// within the timeout, exit 1, nothing on stdout.
#[test]
fn a_silent_server_is_an_error_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = listener.local_addr().expect("address").port();
    let held = std::thread::spawn(move || {
        let accepted = listener.accept();
        std::thread::sleep(Duration::from_secs(6));
        drop(accepted);
    });
    let url = format!("tcp://viewer:s3cret@127.0.0.1:{port}");
    let started = Instant::now();
    let out = run(&["run", &url, "--timeout", "1.5"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let line = the_error_line(&out);
    assert!(
        line.contains("tcp://viewer:***@127.0.0.1") && line.contains("no data within 1.5 s"),
        "{line}"
    );
    assert!(!stderr(&out).contains("s3cret"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    held.join().expect("server thread");
}

/// A server that goes away and comes back: a `reconnected` event, records after it,
/// timestamps increasing though the server's clock starts again; the password appears in
/// none of stdout, stderr and the records file.
#[test]
fn a_restarted_server_is_reconnected() {
    let clip = stream_clip();
    let bytes = std::fs::read(clip).expect("reads the clip");
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = listener.local_addr().expect("address").port();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().expect("accepts");
            // The whole clip over about a second, then the connection closes.
            for chunk in bytes.chunks(bytes.len() / 10 + 1) {
                if stream.write_all(chunk).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let dir = temp_dir("live-reconnect");
    let records = dir.join("records.jsonl");
    let url = format!("tcp://viewer:s3cret@127.0.0.1:{port}");
    let out = run(&[
        "run",
        &url,
        "--reconnect",
        "1",
        "--out",
        s(&records),
        "--fps",
        "4",
    ]);
    server.join().expect("server thread");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let got = lines(&records);
    let times: Vec<f64> = got
        .iter()
        .map(|r| r["timestamp"].as_f64().expect("t"))
        .collect();
    assert!(increasing(&times), "{times:?}");
    let at = got
        .iter()
        .position(|r| {
            r["events"].as_array().expect("events").iter().any(|e| {
                e.as_str()
                    .is_some_and(|e| e.starts_with("reconnected after"))
            })
        })
        .unwrap_or_else(|| panic!("no reconnected event: {times:?}\n{err}"));
    assert!(
        at >= 8 && got.len() - at >= 8,
        "at {at} of {}: {times:?}",
        got.len()
    );
    assert!(err.contains("1 reconnects"), "{err}");
    let written = std::fs::read_to_string(&records).expect("reads");
    for text in [&written, &err, &stdout(&out)] {
        assert!(!text.contains("s3cret"), "{text}");
    }
    assert!(err.contains("viewer:***@"), "{err}");
}

/// Ctrl-C on a live source is its normal end: exit 0, the summary, every record a whole line,
/// and a playable annotated video. On a file it is not: exit 130 and nothing written.
#[test]
fn ctrl_c_ends_a_live_run_and_abandons_a_file() {
    let dir = temp_dir("live-sigint");
    let records = dir.join("live.jsonl");
    let video = dir.join("live.mp4");
    let plot = dir.join("live.png");
    let child = Command::new(BIN)
        .args([
            "run",
            "--input-format",
            "lavfi",
            "testsrc2=size=160x120:rate=10",
        ])
        .args([
            "--out",
            s(&records),
            "--annotate",
            s(&video),
            "--plot",
            s(&plot),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    wait_until("five records", || {
        std::fs::read_to_string(&records).is_ok_and(|t| t.lines().count() >= 5)
    });
    interrupt(&child);
    let out = child.wait_with_output().expect("waits");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("; stopped"), "{err}");
    let got = lines(&records);
    assert!(got.len() >= 5);
    assert!(plot.is_file());
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
        ])
        .args(["-of", "csv=p=0", s(&video)])
        .output()
        .expect("ffprobe");
    let frames: usize = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .expect("a frame count");
    assert_eq!(frames, got.len());

    // A file: long enough to be stopped half way.
    let long = dir.join("long.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25:duration=120",
        "-c:v",
        "mpeg4",
        s(&long),
    ]);
    let outputs = dir.join("file");
    let child = Command::new(BIN)
        .args(["run", s(&long), "--stride", "1"])
        .args([
            "--out",
            s(&outputs.join("r.jsonl")),
            "--plot",
            s(&outputs.join("r.png")),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    std::thread::sleep(Duration::from_millis(1500));
    interrupt(&child);
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let line = the_error_line(&out);
    assert!(
        line.contains("interrupted before its end; nothing written"),
        "{line}"
    );
    let left = std::fs::read_dir(&outputs).map_or(0, |d| d.count());
    assert_eq!(left, 0, "files left in {}", outputs.display());
}

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// A generator (`--input-format lavfi`) is live: a fixed duration gives its records at the
/// sampling rate, in real time.
#[test]
fn a_generator_runs_for_a_fixed_duration() {
    let started = Instant::now();
    let (records, status, err) = run_live(&[
        "run",
        "--input-format",
        "lavfi",
        "testsrc2=size=160x120:rate=20",
        "--end",
        "2",
        "--fps",
        "5",
    ]);
    assert!(status.success(), "{err}");
    let times = timestamps(&records);
    assert_eq!(times.len(), 10, "{times:?}");
    assert!(times[0].abs() < 1e-9 && increasing(&times), "{times:?}");
    assert!(started.elapsed() > Duration::from_millis(1800));
    assert!(
        err.contains("lavfi:testsrc2=size=160x120:rate=20: 10 frames"),
        "{err}"
    );
}

/// Several sources in one run, one backbone: a records file and a plot per source, named from
/// the source; a source that cannot be opened and a missing file are reported in one line
/// each and the others carry on (exit 1).
#[test]
fn several_sources_run_at_once_and_a_bad_one_does_not_stop_the_others() {
    let dir = temp_dir("live-several");
    let out = dir.join("out");
    let plots = dir.join("plots");
    let missing = dir.join("missing.mp4");
    let result = run(&[
        "run",
        "--input-format",
        "lavfi",
        "testsrc2=size=160x120:rate=10",
        "smptebars=size=160x120:rate=10",
        "nosuchfilter=1",
        "--end",
        "2",
        "--fps",
        "4",
        "--out",
        s(&out),
        "--plot",
        s(&plots),
    ]);
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("lavfi:nosuchfilter=1"), "{err}");
    for name in [
        "lavfi-testsrc2_size_160x120_rate_10",
        "lavfi-smptebars_size_160x120_rate_10",
    ] {
        let records = lines(&out.join(format!("{name}.jsonl")));
        let times: Vec<f64> = records
            .iter()
            .map(|r| r["timestamp"].as_f64().expect("t"))
            .collect();
        assert_eq!(times.len(), 8, "{name}: {times:?}");
        assert!(increasing(&times), "{name}: {times:?}");
        assert!(plots.join(format!("{name}.png")).is_file(), "{name}");
    }
    // Nothing for the source that never opened.
    assert_eq!(std::fs::read_dir(&out).expect("ls").count(), 2);
    assert!(!missing.exists());

    // A missing file among files: its line, and the other's records.
    let result = run(&[
        "run",
        s(&missing),
        s(stream_clip()),
        "--out",
        s(&dir.join("files")),
    ]);
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    let line = the_error_line(&result);
    assert!(line.contains("missing.mp4: no such file"), "{line}");
    assert_eq!(lines(&dir.join("files/three.jsonl")).len(), 12);

    // Several sources need a folder for their records.
    let result = run(&["run", s(stream_clip()), s(stream_clip())]);
    assert_eq!(result.status.code(), Some(2));
    assert!(the_error_line(&result).contains("several sources need --out DIR"));
}

/// `extract` on a live source: a file per segment, named by the UTC time of its first frame,
/// every frame in one of them; on standard input, one file with the features the file gives.
#[test]
fn extract_writes_a_live_source_in_segments_and_standard_input_whole() {
    let dir = temp_dir("live-extract");
    let out = dir.join("segments");
    let result = run(&[
        "extract",
        "--input-format",
        "lavfi",
        "testsrc2=size=160x120:rate=10",
        "--end",
        "3.5",
        "--fps",
        "4",
        "--segment",
        "1",
        "--out",
        s(&out),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let mut times = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        // Named by UTC start to the second; two segments that start in one second (1 s
        // segments, a clock that ticks over between them) are told apart by `-2`.
        let stem = name.trim_end_matches(".safetensors");
        let stem = match stem.rsplit_once('-') {
            Some((head, n)) if head.ends_with('Z') && n.parse::<u32>().is_ok() => head,
            _ => stem,
        };
        assert!(
            name.starts_with("lavfi-testsrc2_size_160x120_rate_10-20")
                && stem.ends_with('Z')
                && name.ends_with(".safetensors"),
            "{name}"
        );
        let got = read_extracted(file);
        assert_eq!(got.shape[1], 1280);
        assert_eq!(
            got.metadata["source"],
            "lavfi:testsrc2=size=160x120:rate=10"
        );
        times.extend(got.timestamps);
    }
    assert_eq!(times.len(), 14, "{times:?}");
    assert!(increasing(&times), "{times:?}");

    let clip = stream_clip();
    let whole = extract("live-extract-file", clip, &[]);
    let piped = dir.join("piped");
    let mut child = Command::new(BIN)
        .args(["extract", "-", "--out", s(&piped)])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let bytes = std::fs::read(clip).expect("reads");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("pipes");
    let done = child.wait_with_output().expect("waits");
    assert!(done.status.success(), "{}", stderr(&done));
    let got = read_extracted(&piped.join("stdin.safetensors"));
    assert_eq!(got.timestamps, whole.timestamps);
    assert_eq!(got.features, whole.features);
}

/// A stream with no video, and a refused connection: one line each, exit 1.
#[test]
fn a_stream_without_video_and_a_refused_connection_are_errors() {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut server = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=5",
        ])
        .args(["-c:a", "mp2", "-f", "mpegts", "-listen", "1", &url])
        .spawn()
        .expect("ffmpeg");
    wait_until("the ffmpeg server", || bound("tcp", port, Some("0A")));
    let out = run(&["run", &url]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(the_error_line(&out).ends_with(&format!("{url}: no video stream")));

    // A source that gives nothing leaves an earlier records file as it was.
    let dir = temp_dir("live-refused");
    let earlier = dir.join("cam.jsonl");
    std::fs::write(&earlier, "{\"earlier\":true}\n").expect("writes");
    let url = format!("tcp://127.0.0.1:{}", free_port());
    let out = run(&["run", &url, "--out", s(&earlier)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let line = the_error_line(&out);
    assert!(
        line.contains("cannot open as media: Connection refused"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_to_string(&earlier).expect("reads"),
        "{\"earlier\":true}\n"
    );
    assert_eq!(
        std::fs::read_dir(&dir).expect("ls").count(),
        1,
        "no file left beside it"
    );
}

/// RTSP, with the pipeline as the server (`--input-option rtsp_flags=listen`) and the ffmpeg
/// CLI pushing a clip to it in real time over tcp: the records come as it plays, and their
/// `wall` is the capture time the sender's reports (RTCP) give, a moment before each record.
/// An option the demuxer does not know is warned about, by name.
#[test]
fn an_rtsp_push_gives_records_with_capture_times() {
    let clip = stream_clip();
    let port = free_port();
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let args: Vec<String> = [
        "run",
        &url,
        "--input-option",
        "rtsp_flags=listen",
        "--input-option",
        "no_such_option=1",
        "--reconnect",
        "0",
    ]
    .map(str::to_string)
    .to_vec();
    let receiver = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = std::time::SystemTime::now();
        let (records, status, err) = run_live(&args);
        (started, records, status, err)
    });
    wait_until("the pipeline to listen", || bound("tcp", port, Some("0A")));
    let sent = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-re", "-i", s(clip)])
        .args(["-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", &url])
        .status()
        .expect("ffmpeg pushes");
    assert!(sent.success());
    let (started, records, status, err) = receiver.join().expect("receiver");
    assert!(status.success(), "{err}");
    let times = timestamps(&records);
    assert!((11..=13).contains(&times.len()), "{times:?}\n{err}");
    assert!(increasing(&times), "{times:?}");
    let started = started
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    for (at, r) in &records {
        assert_eq!(r["wall_clock"], "capture", "{r}");
        // Captured after the run started, and before its record was read, by less than the
        // latency allows and the sender's buffering.
        let wall = r["wall"].as_f64().expect("wall");
        let read = started + at;
        assert!(
            wall > started && wall < read && read - wall < 3.0,
            "{r} read at {read}"
        );
    }
    assert!(
        err.contains("nor its protocol used the input option no_such_option"),
        "{err}"
    );
}
