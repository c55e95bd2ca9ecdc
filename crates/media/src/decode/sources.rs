//! Decoding sources that are not files, end to end: a live generator (lavfi), a file read at
//! its own rate, a server that accepts and never sends, a stop raised mid-stream, a consumer
//! that falls behind a live source, and a URL with a password.

#![cfg(test)]

use std::ffi::OsStr;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::testing::{TestResult, chain, joined, temp_dir, write_clip};
use crate::{Every, VideoCodec};

fn options(every: Every, end: Option<f64>) -> DecodeOptions {
    DecodeOptions {
        sampling: Sampling {
            every,
            end,
            ..Sampling::default()
        },
        size: 32,
        display: None,
        motion: MotionSource::Off,
        read: ReadOptions {
            timeout: Some(Duration::from_secs(5)),
            ..ReadOptions::default()
        },
    }
}

fn lavfi(graph: &str) -> Source {
    Source::parse(OsStr::new(graph), Some("lavfi"))
}

/// A live generator: frames arrive at its rate, times start at 0 and increase, the window
/// ends it.
#[test]
fn a_live_generator_is_read_in_real_time() -> TestResult {
    let started = Instant::now();
    let decoding = Decoding::open(
        &lavfi("testsrc2=size=64x48:rate=10"),
        options(Every::Fps(5.0), Some(1.5)),
        4,
    )?;
    assert_eq!(decoding.info.liveness, Liveness::Live);
    let frames: Vec<Frame> = decoding.frames.iter().collect();
    let report = decoding.finish()?;
    let times: Vec<f64> = frames.iter().map(|f| f.timestamp).collect();
    assert_eq!(times.len(), 8, "{times:?} {report:?}");
    assert!(times[0].abs() < 1e-6, "{times:?}");
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    // lavfi paces itself: 1.5 s of stream takes about that long.
    let took = started.elapsed().as_secs_f64();
    assert!(took > 1.0, "{took} s");
    assert_eq!(report.dropped, 0);
    Ok(())
}

/// `realtime` reads a file at its own rate, keeping its times.
#[test]
fn realtime_reads_a_file_at_its_rate() -> TestResult {
    let dir = temp_dir()?;
    let path = write_clip(dir.path(), "r.mkv", (32, 32), 10, 12, VideoCodec::Mpeg4)?;
    let started = Instant::now();
    let source = Source::file(&path).realtime(true);
    let decoding = Decoding::open(&source, options(Every::Frame, None), 16)?;
    assert_eq!(decoding.info.liveness, Liveness::Live);
    let times: Vec<f64> = decoding.frames.iter().map(|f| f.timestamp).collect();
    decoding.finish()?;
    assert_eq!(times.len(), 12);
    assert!((times[11] - 1.1).abs() < 0.01, "{times:?}");
    let took = started.elapsed().as_secs_f64();
    assert!(took > 0.9, "read in {took} s");
    Ok(())
}

/// A server that accepts and never sends: an error naming the source within the timeout.
#[test]
fn a_silent_server_times_out() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let url = format!("tcp://user:s3cret@127.0.0.1:{port}");
    let source = Source::parse(OsStr::new(&url), None);
    let held = std::thread::spawn(move || {
        let accepted = listener.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(accepted);
    });
    let mut opts = options(Every::Frame, None);
    opts.read.timeout = Some(Duration::from_millis(800));
    let started = Instant::now();
    let err = Decoding::open(&source, opts, 4).expect_err("times out");
    let took = started.elapsed();
    let message = chain(&err);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(message.contains("no data within 0.8 s"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    joined(held)?;
    Ok(())
}

/// A stop raised mid-stream ends a live source as if it had ended: what was read comes out,
/// and the report says it was interrupted.
#[test]
fn a_stop_ends_a_live_source() -> TestResult {
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = options(Every::Frame, None);
    opts.read.stop = Some(Arc::clone(&stop));
    let decoding = Decoding::open(&lavfi("testsrc2=size=32x32:rate=20"), opts, 8)?;
    let mut n = 0;
    for _ in decoding.frames.iter() {
        n += 1;
        if n == 5 {
            stop.store(true, Ordering::Relaxed);
        }
    }
    let report = decoding.finish()?;
    assert!(report.interrupted, "{report:?}");
    assert!((5..12).contains(&n), "{n} frames");
    Ok(())
}

/// A consumer slower than a live source: frames are dropped before conversion, the ones that
/// come stay within the queue of the source, and times keep increasing.
#[test]
fn a_slow_consumer_makes_a_live_source_drop_frames() -> TestResult {
    let decoding = Decoding::open(
        &lavfi("testsrc2=size=32x32:rate=50"),
        options(Every::Frame, Some(2.0)),
        2,
    )?;
    let mut times = Vec::new();
    for frame in decoding.frames.iter() {
        times.push(frame.timestamp);
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = decoding.finish()?;
    // 100 frames in 2 s; the consumer takes 10 a second.
    assert!(report.dropped > 50, "{report:?}");
    assert!((15..=35).contains(&times.len()), "{} frames", times.len());
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    Ok(())
}

/// Sources that cannot be opened say why in one line naming them.
#[test]
fn unopenable_sources_say_why() -> TestResult {
    let cases = [
        (
            Source::parse(OsStr::new("nosuch://host/x"), None),
            "unknown protocol",
        ),
        (
            Source::parse(OsStr::new("x"), Some("no-such-format")),
            "no input format called \"no-such-format\"",
        ),
        (
            lavfi("nosuchfilter=1"),
            "lavfi:nosuchfilter=1: cannot open as media",
        ),
        (
            Source::parse(OsStr::new("tcp://127.0.0.1:1"), None),
            "tcp://127.0.0.1:1: cannot open as media",
        ),
    ];
    for (source, want) in cases {
        let err = Decoding::open(&source, options(Every::Frame, None), 4).expect_err("refused");
        let message = chain(&err);
        assert!(message.contains(want), "{message}");
    }
    Ok(())
}

/// A server that closes the stream and comes back: the reader reconnects, the first frame
/// after says how long the gap was, and times keep increasing though the server's clock
/// started again. When the server is gone for good, the reconnects run out and the report
/// says why the stream ended. Motion (measured on a thread of its own where the decode has
/// converter threads) starts afresh with the new connection: its first frame is a key frame.
#[test]
fn a_dropped_stream_is_reconnected_and_times_go_on() -> TestResult {
    use std::io::Write as _;
    let dir = temp_dir()?;
    let clip = write_clip(dir.path(), "s.mkv", (32, 32), 10, 20, VideoCodec::Mpeg4)?;
    let bytes = std::fs::read(&clip)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept()?;
            stream.write_all(&bytes)?;
        }
        Ok(())
    });
    let mut opts = options(Every::Frame, None);
    opts.read.reconnect = 2;
    opts.motion = MotionSource::Auto;
    let source = Source::parse(OsStr::new(&format!("tcp://127.0.0.1:{port}")), None);
    let decoding = Decoding::open(&source, opts, 64)?;
    assert_eq!(decoding.info.liveness, Liveness::Live);
    let frames: Vec<Frame> = decoding.frames.iter().collect();
    let report = decoding.finish()?;
    joined(server)??;
    let times: Vec<f64> = frames.iter().map(|f| f.timestamp).collect();
    assert_eq!(times.len(), 40, "{times:?} {report:?}");
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    let gaps: Vec<f64> = frames.iter().filter_map(|f| f.gap).collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0] >= 0.4, "{gaps:?}");
    assert!(frames[20].gap.is_some());
    assert!(times[20] >= times[19] + gaps[0], "{times:?}");
    assert_eq!(report.reconnects, 1, "{report:?}");
    assert!(report.ended.is_some(), "{report:?}");
    let motion: Vec<_> = frames.iter().map(|f| f.motion.as_ref()).collect();
    assert!(motion.iter().all(Option::is_some), "{motion:?}");
    assert!(motion[0].is_some_and(|m| m.key) && motion[20].is_some_and(|m| m.key));
    assert!(motion[19].is_some_and(|m| !m.key), "{motion:?}");
    Ok(())
}

/// A source whose own clock starts again mid-stream (MPEG-TS from a restarted sender on the
/// same connection): times go on increasing, the frames still in the decoder keep theirs.
#[test]
fn a_clock_that_starts_again_keeps_times_increasing() -> TestResult {
    use std::io::Write as _;
    let dir = temp_dir()?;
    let clip = write_clip(dir.path(), "c.ts", (32, 32), 10, 20, VideoCodec::Mpeg4)?;
    let bytes = std::fs::read(&clip)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        for _ in 0..2 {
            stream.write_all(&bytes)?;
        }
        Ok(())
    });
    let source = Source::parse(OsStr::new(&format!("tcp://127.0.0.1:{port}")), None);
    let decoding = Decoding::open(&source, options(Every::Frame, None), 64)?;
    let times: Vec<f64> = decoding.frames.iter().map(|f| f.timestamp).collect();
    let report = decoding.finish()?;
    joined(server)??;
    assert!(times.len() >= 36, "{times:?} {report:?}");
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    assert!(times[times.len() - 1] < 4.0, "{times:?}");
    Ok(())
}
