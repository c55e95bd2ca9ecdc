//! Video decoding: FFmpeg demux + multi-threaded decode, sampling on timestamps, and one
//! swscale pass per taken frame straight to the model's input (shorter side to `size`, centre
//! crop, RGB24), on a thread of its own behind a bounded queue; with more than one core, the
//! swscale passes run on threads of their own too, and so does the measuring of motion (see
//! [`Decoding`]). When asked, the same thread scales each taken frame once more, whole, for
//! people to look at ([`DisplayFrame`]).

mod live;
mod sample;
mod sources;
mod watch;

use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvError, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ffmpeg::codec;
use ffmpeg::format::Pixel;
use ffmpeg::format::context::Input;
use ffmpeg::software::scaling;
use ffmpeg::util::frame;
use ffmpeg::{Dictionary, ffi};
use ffmpeg_next as ffmpeg;

pub use sample::{Decision, Every, Sampler, Sampling};

use crate::error::{Error, Result};
use crate::motion::{Motion, MotionSource, Tracker};
use crate::options;
use crate::source::{Liveness, Source};
use live::{Clock, Lag, Pace};
use watch::Watch;

/// Initialises FFmpeg once per process, with its own logging silenced: damaged data is counted
/// and reported by us, once, instead of a screenful of decoder complaints. Every function of
/// this crate calls it; FFmpeg's own error is returned as it is (there is no file to name).
pub fn init() -> std::result::Result<(), ffmpeg::Error> {
    static INIT: std::sync::OnceLock<std::result::Result<(), ffmpeg::Error>> =
        std::sync::OnceLock::new();
    *INIT.get_or_init(|| {
        ffmpeg::init()?;
        // Network protocols once per process, and capture devices (and lavfi) as inputs.
        ffmpeg::format::network::init();
        ffmpeg::device::register_all();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
        Ok(())
    })
}

/// [`init`], its error naming the file it was called for.
pub(crate) fn init_for(path: &Path) -> Result<()> {
    init().map_err(|e| Error::ffmpeg(path, "initialising FFmpeg", e))
}

/// `path` as the C string FFmpeg takes. On Unix, its bytes as they are: a file name need not
/// be UTF-8 (ffmpeg-next's own `format::input` and `output_as` panic on one that is not).
pub(crate) fn c_path(path: &Path) -> Result<CString> {
    c_string(path.as_os_str(), path)
}

/// `s` as a C string; errors name `name`.
fn c_string(s: &OsStr, name: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt as _;
        s.as_bytes()
    };
    // Elsewhere (Windows) FFmpeg takes UTF-8 file names.
    #[cfg(not(unix))]
    let bytes = s
        .to_str()
        .ok_or_else(|| Error::invalid(name, "the path is not valid UTF-8"))?
        .as_bytes();
    CString::new(bytes).map_err(|_| Error::invalid(name, "the path contains a NUL byte"))
}

/// Opens a file, URL or device for demuxing and reads its streams' parameters, as
/// ffmpeg-next's `format::input_with_dictionary` does but from a C string (see [`c_path`]),
/// with the demuxer `format` when given, and with `watch` as the interrupt callback of every
/// blocking read; returns the options the demuxer left unused too. `Ok(None)`: no demuxer is
/// called `format`.
#[allow(unsafe_code)]
fn open_input(
    path: &CStr,
    format: Option<&CStr>,
    options: Dictionary<'static>,
    watch: &Arc<Watch>,
) -> std::result::Result<Option<(Input, Dictionary<'static>)>, ffmpeg::Error> {
    // SAFETY: `path` and `format` are NUL-terminated and outlive the calls;
    // av_find_input_format returns a static demuxer or null. The context is allocated here so
    // that the interrupt callback is in place before the first read; avformat_open_input
    // frees it on failure (and nulls `ps`). The callback's argument is `watch`, which the
    // caller keeps (beside the `Input`, dropped after it) while the input is open. The options
    // are handed over with `disown` and the leftovers (avformat_open_input replaces the
    // dictionary with the entries it did not use) taken back with `own`, so they are freed
    // once. After a successful open the context is ours: closed here if reading the stream
    // info fails, otherwise owned by `Input`, whose drop closes it.
    unsafe {
        let demuxer = match format {
            Some(name) => {
                let found = ffi::av_find_input_format(name.as_ptr());
                if found.is_null() {
                    return Ok(None);
                }
                found
            }
            None => std::ptr::null(),
        };
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ffmpeg::Error::Other {
                errno: ffmpeg::util::error::ENOMEM,
            });
        }
        (*ps).interrupt_callback = Watch::callback(watch);
        let mut opts = options.disown();
        let opened = ffi::avformat_open_input(&mut ps, path.as_ptr(), demuxer, &mut opts);
        let unused = Dictionary::own(opts);
        if opened < 0 {
            return Err(ffmpeg::Error::from(opened));
        }
        let found = ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
        if found < 0 {
            ffi::avformat_close_input(&mut ps);
            return Err(ffmpeg::Error::from(found));
        }
        Ok(Some((Input::wrap(ps), unused)))
    }
}

/// The Unix time (seconds) of an input's timestamp 0, where its demuxer knows it: RTSP sets it
/// from the first sender report (RTCP), which maps the stream's timestamps to the sender's
/// wall clock. `None` until then, and for every other source.
#[allow(unsafe_code)]
fn capture_clock(input: &Input) -> Option<f64> {
    // SAFETY: `input` owns an open format context; `start_time_realtime` is a plain field that
    // its demuxer writes on this thread, between our reads.
    let micros = unsafe { (*input.as_ptr()).start_time_realtime };
    (micros != ffi::AV_NOPTS_VALUE && micros > 0).then(|| micros as f64 / 1e6)
}

/// The best video stream of an opened source, its decoder opened with `decoder_options`.
struct Stream {
    input: Input,
    index: usize,
    time_base: f64,
    rotation: u32,
    duration: Option<f64>,
    decoder: ffmpeg::decoder::Video,
    liveness: Liveness,
    /// The input options (the user's) that neither the demuxer nor its protocol used.
    unused: Vec<String>,
    /// The interrupt callback's state: after `input`, so dropped after it is closed.
    watch: Arc<Watch>,
}

impl Stream {
    /// Opens `source` (with [`options::demuxer`]), its reads watched by `read`, and the
    /// decoder of its best video stream, with the options `decoder_options` gives for its
    /// codec and display rotation. Errors name the source and what is wrong with it.
    fn open(
        source: &Source,
        read: &ReadOptions,
        closed: &Arc<AtomicBool>,
        decoder_options: impl FnOnce(codec::Id, u32) -> Dictionary<'static>,
    ) -> Result<Self> {
        let path = &source.error_name();
        init_for(path)?;
        if let Some(file) = source.path().filter(|_| source.format().is_none()) {
            let meta =
                std::fs::metadata(file).map_err(|e| Error::io(path, "cannot read file", e))?;
            if meta.is_dir() {
                return Err(Error::invalid(path, "is a directory"));
            }
            if meta.len() == 0 && meta.is_file() {
                return Err(Error::invalid(path, "empty file"));
            }
        }
        let watch = Watch::new(read.timeout, read.stop.clone(), Arc::clone(closed));
        watch.alive();
        let format = match source.format() {
            Some(f) => Some(
                CString::new(f)
                    .map_err(|_| Error::invalid(path, "the input format contains a NUL byte"))?,
            ),
            None => None,
        };
        let url = c_string(&source.url(), path)?;
        let demuxer_options = options::demuxer(source.options());
        let opened = open_input(&url, format.as_deref(), demuxer_options, &watch)
            .map_err(|e| open_error(source, &watch, e))?;
        let Some((input, unused)) = opened else {
            let what = format!(
                "no input format called {:?} in this FFmpeg (see `ffmpeg -formats`)",
                source.format().unwrap_or_default()
            );
            return Err(Error::invalid(path, what));
        };
        let unused = unused.iter().map(|(key, _)| key.to_string()).collect();
        if source.is_stdin() && input.format().name().contains("mp4") {
            return Err(Error::invalid(path, PIPE_MP4));
        }
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| Error::invalid(path, "no video stream"))?;
        let index = stream.index();
        let time_base = f64::from(stream.time_base());
        let rotation = display_rotation(&stream);
        let duration = (input.duration() > 0).then(|| input.duration() as f64 / 1e6);
        let context = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| Error::ffmpeg(path, "reading codec parameters", e))?;
        let id = context.id();
        let found = ffmpeg::decoder::find(id).ok_or_else(|| {
            let what = format!("no decoder for this video codec ({id:?})");
            Error::ffmpeg(path, what, ffmpeg::Error::DecoderNotFound)
        })?;
        let decoder = context
            .decoder()
            .open_as_with(found, decoder_options(id, rotation))
            .and_then(|opened| opened.video())
            .map_err(|e| Error::ffmpeg(path, format!("opening the {} decoder", found.name()), e))?;
        let liveness = source.liveness(duration.is_some());
        Ok(Self {
            input,
            index,
            time_base,
            rotation,
            duration,
            decoder,
            liveness,
            unused,
            watch,
        })
    }

    fn info(&self) -> VideoInfo {
        let codec = self
            .decoder
            .codec()
            .map(|c| c.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        VideoInfo {
            codec,
            width: self.decoder.width(),
            height: self.decoder.height(),
            rotation: self.rotation,
            duration: self.duration,
            liveness: self.liveness,
        }
    }
}

/// Why MP4 cannot come through standard input, and what to do instead.
const PIPE_MP4: &str = "MP4 needs seeking, which a pipe cannot do: pipe MPEG-TS or Matroska \
                        instead, e.g. `ffmpeg -i in.mp4 -c copy -f mpegts - | pipeline run -`";

/// The error of a failed open of `source`: a timeout or a stop said as such, a file FFmpeg
/// cannot read said plainly, and a pipe that needed seeking explained.
fn open_error(source: &Source, watch: &Watch, e: ffmpeg::Error) -> Error {
    let path = &source.error_name();
    if e == ffmpeg::Error::Exit && watch.stopped() {
        return Error::ffmpeg(path, "stopped while opening", e);
    }
    if e == ffmpeg::Error::Exit && watch.timed_out() {
        let secs = watch.timeout().map_or(0.0, |t| t.as_secs_f64());
        return Error::ffmpeg(path, format!("no data within {secs} s"), e);
    }
    if source.is_stdin() {
        return Error::ffmpeg(path, format!("cannot open as media ({PIPE_MP4})"), e);
    }
    match e {
        ffmpeg::Error::InvalidData => Error::ffmpeg(path, "not a media file FFmpeg can read", e),
        ffmpeg::Error::ProtocolNotFound => Error::ffmpeg(path, "unknown protocol", e),
        other => Error::ffmpeg(path, "cannot open as media", other),
    }
}

/// What the container says about `path`'s video stream ([`VideoInfo`]), without decoding a
/// frame: the file is opened, its stream parameters read and the stream's decoder set up (so
/// a codec this FFmpeg cannot decode is an error here, as it would be for [`Video::open`]).
pub fn probe(path: &Path) -> Result<VideoInfo> {
    let closed = Arc::new(AtomicBool::new(false));
    Stream::open(
        &Source::file(path),
        &ReadOptions::default(),
        &closed,
        |_, _| options::probe_decoder(),
    )
    .map(|stream| stream.info())
}

/// What the container says about the video stream.
#[derive(Debug, Clone)]
pub struct VideoInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Display rotation in degrees clockwise (0, 90, 180, 270), applied to every frame.
    pub rotation: u32,
    /// From the container; informative only (it can lie), never used for timing.
    pub duration: Option<f64>,
    /// How the source is read.
    pub liveness: Liveness,
}

/// One sampled frame, ready for the network.
#[derive(Debug)]
pub struct Frame {
    /// Presentation time in seconds (best-effort timestamp x stream time base). On a live
    /// source, from 0 at the first packet, increasing across reconnects and restarts of the
    /// source's own clock.
    pub timestamp: f64,
    /// When the frame's packet arrived: when it was read, less, on a live source, the time it
    /// waited in the network's buffers while reading was behind (measured against the
    /// source's own pace).
    pub arrival: SystemTime,
    /// When the source says the frame was captured, where it says so: an RTSP sender's reports
    /// (RTCP) give the wall-clock time of the stream's timestamps. `None` elsewhere.
    pub captured: Option<SystemTime>,
    /// On the first frame after a reconnect: the seconds of stream lost in the gap.
    pub gap: Option<f64>,
    /// `size x size x 3` RGB bytes, row-major.
    pub rgb: Vec<u8>,
    /// The whole frame as shown, when the decode was asked for it
    /// ([`DecodeOptions::display`]).
    pub display: Option<DisplayFrame>,
    /// The motion of the interval since the previous sample, when the decode was asked for it
    /// ([`DecodeOptions::motion`]; never with key frames only, where nothing between them is
    /// decoded).
    pub motion: Option<Motion>,
}

/// A whole decoded frame for people to look at: display rotation applied (as for the model's
/// input), scaled so its longer side is at most the size asked for (never scaled up), aspect
/// kept, width and height even (what yuv420p encoders need: an odd side is made one smaller).
pub struct DisplayFrame {
    pub width: u32,
    pub height: u32,
    /// `width x height x 3` RGB bytes, row-major.
    pub rgb: Vec<u8>,
}

impl std::fmt::Debug for DisplayFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplayFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("rgb", &format_args!("[{} bytes]", self.rgb.len()))
            .finish()
    }
}

/// Counters of one decode, reported when it ends.
#[derive(Debug, Clone, Default)]
pub struct DecodeReport {
    pub decoded: u64,
    pub sampled: u64,
    /// Packets the demuxer or decoder rejected, and frames flagged corrupt.
    pub damaged: u64,
    /// Distinct problems, for the output's metadata (at most a few).
    pub warnings: Vec<String>,
    /// Live sources: sampled frames dropped before conversion because the consumer was
    /// behind, and packets skipped unseen to catch up with the source.
    pub dropped: u64,
    pub skipped: u64,
    /// Live sources: connections opened again after the stream stalled or ended.
    pub reconnects: u64,
    /// The reading was stopped by the caller ([`ReadOptions::stop`]) before the end.
    pub interrupted: bool,
    /// Why a live stream ended (it stalled or closed, and could not be reopened), when it did.
    pub ended: Option<String>,
}

impl DecodeReport {
    fn damage(&mut self, what: String) {
        self.damaged += 1;
        if self.warnings.len() < 8 && !self.warnings.contains(&what) {
            self.warnings.push(what);
        }
    }
}

/// Options for [`Video::open`].
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub sampling: Sampling,
    /// Side of the square model input.
    pub size: u32,
    /// When set, each frame also carries its [`display`](Frame::display) copy, the whole frame
    /// with its longer side at most this many pixels (at least 2), made by the same converter
    /// as the model's input. Mind the queue: each frame waiting holds its copy (2.7 MB at
    /// 1280x720).
    pub display: Option<u32>,
    /// Where each frame's [`motion`](Frame::motion) comes from, or [`MotionSource::Off`].
    /// Ignored with key frames only.
    pub motion: MotionSource,
    /// How the source is read: timeout, reconnecting, stopping.
    pub read: ReadOptions,
}

/// How a source is read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// A read that gets no data for this long gives up (an error while opening; the end of
    /// a live stream, or a reconnect, later). `None`: wait forever.
    pub timeout: Option<Duration>,
    /// Live network streams: how many times in a row to open the source again after it
    /// stalled or closed, waiting 0.5 s, then twice as long each time (at most 10 s).
    /// `u32::MAX`: forever.
    pub reconnect: u32,
    /// When raised, reading stops (a blocked read at once), what was read is decoded, and the
    /// stream ends as if it had ended ([`DecodeReport::interrupted`]).
    pub stop: Option<Arc<AtomicBool>>,
}

/// An opened video stream.
pub struct Video {
    source: Source,
    /// The source as errors and logs name it (redacted).
    path: PathBuf,
    info: VideoInfo,
    input: Input,
    stream_index: usize,
    time_base: f64,
    decoder: ffmpeg::decoder::Video,
    sampler: Sampler,
    options: DecodeOptions,
    /// Longer side of the [`DisplayFrame`]s, when asked for.
    display: Option<u32>,
    converter: Converter,
    motion: Option<Tracker>,
    decoded: frame::Video,
    report: DecodeReport,
    /// Whether the decoder is told to drop frames nothing refers to (the packets being sent
    /// are of frames the sampler will skip).
    dropping: bool,
    /// Whether packets' timestamps are their frames' (every packet has one and every frame
    /// so far came out with its packet's): what dropping frames before decoding relies on.
    /// AVI, for one, gives most packets none and times frames by decoding order.
    packet_times: bool,
    flushed: bool,
    finished: bool,
    /// Live sources: times rebased to start at 0 ([`Clock`]); `None` keeps the stream's.
    clock: Option<Clock>,
    /// Live sources: how far reading is behind, and whether it is skipping to a key frame.
    lag: Lag,
    /// Seconds the latest packet was read after it would have been, reading at the source's
    /// pace: data that waited in the network's buffers.
    behind: f64,
    catching_up: bool,
    /// `realtime`: reading at the stream's own rate.
    pace: Option<Pace>,
    /// When each packet in the decoder arrived (was read, less the time it waited in the
    /// buffers of a live source that reading had fallen behind), by its timestamp.
    arrivals: VecDeque<Sent>,
    /// When the frame being taken arrived.
    arrival: SystemTime,
    /// The Unix time of the stream's timestamp 0, once the source has told it ([`capture_clock`]),
    /// and when the frame being taken was captured by it.
    capture_clock: Option<f64>,
    captured: Option<SystemTime>,
    /// Live sources, with a consumer ([`Decoding`]): frames taken and not yet received, and
    /// how many may wait before new ones are dropped.
    gate: Option<(Arc<AtomicUsize>, usize)>,
    /// Reconnects left before giving up, and the gap to report on the next frame.
    reconnects_left: u32,
    /// Why a live stream's reading stopped, while its decoder gives its last frames.
    lost: Option<String>,
    /// Raised when the consumer of the frames has gone ([`Frames`] dropped): reading stops.
    closed: Arc<AtomicBool>,
    gap: Option<f64>,
    /// The interrupt callback's state: last, so dropped after `input` is closed.
    watch: Arc<Watch>,
}

impl std::fmt::Debug for Video {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Video")
            .field("source", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Video {
    /// Opens `path`'s best video stream. Errors name what is wrong with the file.
    pub fn open(path: &Path, options: DecodeOptions) -> Result<Self> {
        Self::open_source(&Source::file(path), options)
    }

    /// Opens the best video stream of `source`. Errors name the source (redacted) and what
    /// is wrong with it.
    pub fn open_source(source: &Source, options: DecodeOptions) -> Result<Self> {
        Self::open_source_closed(source, options, Arc::new(AtomicBool::new(false)))
    }

    /// [`Video::open_source`], reading until `closed` is raised.
    fn open_source_closed(
        source: &Source,
        options: DecodeOptions,
        closed: Arc<AtomicBool>,
    ) -> Result<Self> {
        let path = source.error_name();
        let display = options.display;
        if options.size == 0 {
            return Err(Error::invalid(&path, "frame size must be positive"));
        }
        if display.is_some_and(|d| d < 2) {
            return Err(Error::invalid(&path, "display size must be at least 2"));
        }
        let (mut stream, tracker) = open_stream(source, &options, &closed)?;
        // Said once, not again at each reconnect.
        for key in &stream.unused {
            tracing::warn!(
                "{}: neither the demuxer ({}) nor its protocol used the input option {key}",
                path.display(),
                stream.input.format().name()
            );
        }
        let info = stream.info();
        // Only a file seeks: a live source, or a pipe, starts where it is and the sampler
        // drops what precedes `start`. (Before the stream is taken apart: its input must close
        // while its watch lives.)
        let seekable = stream.liveness == Liveness::File && !source.is_stdin();
        if let Some(start) = options.sampling.start.filter(|s| *s > 0.0 && seekable) {
            let ts = (start * f64::from(ffi::AV_TIME_BASE)) as i64;
            // Lands on the key frame at or before `start`; the sampler drops what precedes it.
            stream
                .input
                .seek(ts, ..ts)
                .map_err(|e| Error::ffmpeg(&path, format!("seeking to {start} s"), e))?;
        }
        let Stream {
            input,
            index: stream_index,
            time_base,
            rotation,
            decoder,
            liveness,
            watch,
            ..
        } = stream;
        let live = liveness == Liveness::Live;
        Ok(Self {
            source: source.clone(),
            info,
            input,
            stream_index,
            time_base,
            decoder,
            sampler: Sampler::new(options.sampling.clone()),
            converter: Converter::new(&path, options.size, rotation, display),
            path,
            motion: tracker,
            reconnects_left: options.read.reconnect,
            options,
            display,
            decoded: frame::Video::empty(),
            report: DecodeReport::default(),
            dropping: false,
            packet_times: true,
            flushed: false,
            finished: false,
            clock: (live && !source.is_realtime()).then(Clock::default),
            lag: Lag::default(),
            behind: 0.0,
            catching_up: false,
            pace: source.is_paced().then(Pace::default),
            arrivals: VecDeque::new(),
            arrival: SystemTime::now(),
            capture_clock: None,
            captured: None,
            gate: None,
            gap: None,
            lost: None,
            closed,
            watch,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The report, logged (at debug level).
    fn finish(&self) -> DecodeReport {
        let r = &self.report;
        tracing::debug!(
            "{}: {} frames decoded, {} sampled, {} damaged, {} dropped, {} skipped, {} reconnects",
            self.path.display(),
            r.decoded,
            r.sampled,
            r.damaged,
            r.dropped,
            r.skipped,
            r.reconnects
        );
        r.clone()
    }

    /// The next sampled frame, or `None` at the end of the stream (or of the `--end` window).
    /// Damaged packets and frames are skipped and counted; only a failure to convert a good
    /// frame is an error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        match self.next_decoded() {
            Some(decoded) => self.converter.convert(decoded).map(Some),
            None => Ok(None),
        }
    }

    /// The next sampled frame as decoded, before conversion.
    fn next_decoded(&mut self) -> Option<Decoded> {
        while !self.finished {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    if let Some(timestamp) = self.take_decoded() {
                        let arrival = self.arrival;
                        let captured = self.captured;
                        let frame = std::mem::replace(&mut self.decoded, frame::Video::empty());
                        let motion = self.motion.as_mut().and_then(|m| m.take(timestamp));
                        return Some(Decoded {
                            timestamp,
                            arrival,
                            captured,
                            gap: self.gap.take(),
                            frame,
                            motion,
                        });
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    self.feed();
                }
                Err(ffmpeg::Error::Eof) => match self.lost.take() {
                    // The old connection's frames are out: on to a new one.
                    Some(why) if self.reconnect(&why) => self.flushed = false,
                    Some(why) => {
                        self.report.ended = Some(why);
                        self.finished = true;
                    }
                    None => self.finished = true,
                },
                Err(e) => self.report.damage(format!("damaged frame: {e}")),
            }
        }
        None
    }

    /// Sends the next packet of our stream to the decoder, or end-of-stream.
    fn feed(&mut self) {
        if self.flushed {
            // The decoder has everything and asks for more: it is drained.
            self.finished = true;
            return;
        }
        let mut packet = ffmpeg::Packet::empty();
        // Unreadable stretches in a row: a demuxer that can make no progress (an MP4 through a
        // pipe, its index pointing back where a pipe cannot go) says so forever.
        let mut unreadable = 0u32;
        loop {
            if self.watch.stopped() {
                self.report.interrupted = true;
                break;
            }
            // The timeout counts from here: not the time spent handing frames on or pacing.
            self.watch.alive();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    unreadable = 0;
                    self.watch.alive();
                    if self.capture_clock.is_none() {
                        self.capture_clock = capture_clock(&self.input);
                    }
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    if self.options.sampling.keyframes && !packet.is_key() {
                        continue;
                    }
                    if self.skip_to_catch_up(&packet) {
                        self.report.skipped += 1;
                        continue;
                    }
                    self.wait_for_its_time(&packet);
                    let decoded_whatever = self.drop_unseen(&packet);
                    if packet.is_corrupt() {
                        self.report
                            .damage("packet flagged corrupt by the demuxer".into());
                    }
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {
                            if let Some(pts) = packet.pts() {
                                if self.arrivals.len() >= 256 {
                                    self.arrivals.pop_front();
                                }
                                // A live packet that waited in the buffers arrived that much
                                // earlier than it was read.
                                let waited = Duration::from_secs_f64(self.behind.max(0.0));
                                let arrival = SystemTime::now() - waited;
                                // A live source's time for it now: a later jump of the source's
                                // clock must not move the frames still in the decoder.
                                let time = self
                                    .clock
                                    .as_mut()
                                    .map(|clock| clock.at(pts as f64 * self.time_base, false));
                                self.arrivals.push_back(Sent { pts, arrival, time });
                            }
                            if let Some(t) = decoded_whatever {
                                self.sampler.will_see(t);
                            }
                            return;
                        }
                        Err(e) => {
                            self.report.damage(format!("damaged packet: {e}"));
                            continue;
                        }
                    }
                }
                Err(ffmpeg::Error::Eof) => {
                    if self.info.liveness == Liveness::Live {
                        self.lost = Some("the stream ended".into());
                    }
                    break;
                }
                Err(ffmpeg::Error::InvalidData) => {
                    self.report
                        .damage("unreadable data in the container".into());
                    unreadable += 1;
                    if unreadable >= MAX_UNREADABLE {
                        self.report
                            .damage("reading stopped: the container makes no progress".into());
                        break;
                    }
                }
                Err(e) => {
                    if self.watch.stopped() {
                        self.report.interrupted = true;
                        break;
                    }
                    if self.info.liveness == Liveness::File {
                        // I/O errors are sticky in FFmpeg: retrying would spin. Finish what
                        // we have.
                        self.report.damage(format!("reading stopped early: {e}"));
                    } else if self.watch.timed_out() {
                        let secs = self.watch.timeout().map_or(0.0, |t| t.as_secs_f64());
                        self.lost = Some(format!("no data for {secs} s"));
                    } else {
                        self.lost = Some(format!("reading failed: {e}"));
                    }
                    break;
                }
            }
        }
        self.flushed = true;
        if let Err(e) = self.decoder.send_eof() {
            self.report.damage(format!("flushing decoder: {e}"));
            self.finished = true;
        }
    }

    /// A live source's time of `packet` (rebased), if it has one.
    fn packet_time(&mut self, packet: &ffmpeg::Packet) -> Option<f64> {
        let raw = packet.dts().or(packet.pts())? as f64 * self.time_base;
        Some(match &mut self.clock {
            Some(clock) => clock.at(raw, true),
            None => raw,
        })
    }

    /// Live sources: whether `packet` is skipped unseen because reading has fallen more than
    /// [`CATCH_UP`] behind the source (the decoder could not keep up): every packet up to the
    /// next key frame that finds reading still behind.
    fn skip_to_catch_up(&mut self, packet: &ffmpeg::Packet) -> bool {
        if self.info.liveness != Liveness::Live {
            return false;
        }
        let Some(t) = self.packet_time(packet) else {
            return false;
        };
        let behind = self.lag.behind(t);
        self.behind = behind;
        if packet.is_key() {
            if self.catching_up {
                tracing::debug!("{}: caught up at a key frame", self.path.display());
            }
            self.catching_up = false;
            return false;
        }
        if !self.catching_up && behind > CATCH_UP {
            tracing::debug!(
                "{}: decoding is {behind:.1} s behind the source: skipping to the next key frame",
                self.path.display()
            );
            self.catching_up = true;
        }
        self.catching_up
    }

    /// `realtime`: waits until `packet` is due, as much wall-clock time after the first as
    /// stream time; in short naps, so that a stop is seen.
    fn wait_for_its_time(&mut self, packet: &ffmpeg::Packet) {
        let Some(t) = packet.dts().or(packet.pts()) else {
            return;
        };
        let t = t as f64 * self.time_base;
        let Some(pace) = self.pace.as_mut() else {
            return;
        };
        let mut wait = pace.wait(t);
        while !wait.is_zero() && !self.watch.stopped() {
            let nap = wait.min(Duration::from_millis(100));
            std::thread::sleep(nap);
            wait -= nap;
        }
    }

    /// After a live network stream stalled or closed (`why`) and its decoder gave its last
    /// frames: opens it again, waiting longer each time, while reconnects are left. The next
    /// frame carries the gap. Returns whether it is open again.
    fn reconnect(&mut self, why: &str) -> bool {
        if self.info.liveness != Liveness::Live || !self.source.reconnectable() {
            return false;
        }
        let mut delay = Duration::from_millis(500);
        while self.reconnects_left > 0 && !self.watch.stopped() {
            if self.reconnects_left != u32::MAX {
                self.reconnects_left -= 1;
            }
            tracing::warn!(
                "{}: {why}; reconnecting in {:.1} s",
                self.path.display(),
                delay.as_secs_f64()
            );
            let until = Instant::now() + delay;
            while Instant::now() < until && !self.watch.stopped() {
                std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
            }
            if self.watch.stopped() {
                break;
            }
            match open_stream(&self.source, &self.options, &self.closed) {
                Ok((stream, tracker)) => {
                    self.input = stream.input;
                    self.stream_index = stream.index;
                    self.time_base = stream.time_base;
                    self.decoder = stream.decoder;
                    self.watch = stream.watch;
                    self.motion = match (self.motion.take(), tracker) {
                        (Some(mut old), Some(fresh)) => {
                            old.restart(fresh);
                            Some(old)
                        }
                        (_, fresh) => fresh,
                    };
                    self.dropping = false;
                    self.packet_times = true;
                    self.catching_up = false;
                    self.behind = 0.0;
                    self.lag.reset();
                    self.arrivals.clear();
                    self.capture_clock = None;
                    if let Some(clock) = &mut self.clock {
                        self.gap = Some(clock.reconnected());
                    }
                    self.reconnects_left = self.options.read.reconnect;
                    self.report.reconnects += 1;
                    tracing::info!("{}: reconnected", self.path.display());
                    return true;
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        if self.watch.stopped() {
            self.report.interrupted = true;
        }
        false
    }

    /// What was noted when the packet of the frame in `self.decoded` was sent, if it is known.
    fn sent(&mut self) -> Option<Sent> {
        let pts = self.decoded.pts()?;
        let found = self.arrivals.iter().position(|s| s.pts == pts);
        let sent = found.and_then(|i| self.arrivals.remove(i));
        // Frames come out in presentation order (packets go in in decoding order): those of
        // earlier packets that are still here never came out, and never will.
        self.arrivals.retain(|s| s.pts > pts);
        sent
    }

    /// Sparse sampling (`--fps`, `--start`) skips most frames, but each must still be decoded
    /// for the frames predicted from it. A frame that no other frame refers to (in H.264 with
    /// B-frames, about half of them) and that the sampler will skip
    /// ([`Sampler::skips_unseen`]) is dropped by the decoder before decoding: a packet's
    /// timestamp is its frame's, known before decoding. The setting goes with each packet
    /// (FFmpeg's frame threads copy it from the codec context as each packet is submitted).
    /// Returns the packet's time when its frame will be decoded whatever it is.
    ///
    /// The cost of being wrong is bounded: a frame whose packet timestamp is not its output
    /// timestamp (a broken stream), or a frame counted on that then fails to decode, can move
    /// or cost one sample of its interval.
    fn drop_unseen(&mut self, packet: &ffmpeg::Packet) -> Option<f64> {
        if self.options.sampling.keyframes {
            return None; // the decoder already drops every non-key frame
        }
        if self.motion.as_ref().is_some_and(Tracker::needs_every_frame) {
            if self.dropping {
                self.decoder.skip_frame(ffmpeg::Discard::Default);
                self.dropping = false;
            }
            return None;
        }
        self.packet_times &= packet.pts().is_some();
        let raw = packet
            .pts()
            .filter(|_| self.packet_times)
            .map(|pts| pts as f64 * self.time_base);
        let t = match (raw, &mut self.clock) {
            (Some(raw), Some(clock)) => Some(clock.at(raw, false)),
            (raw, _) => raw,
        };
        let drop = t.is_some_and(|t| self.sampler.skips_unseen(t));
        if drop != self.dropping {
            self.decoder.skip_frame(if drop {
                ffmpeg::Discard::NonReference
            } else {
                ffmpeg::Discard::Default
            });
            self.dropping = drop;
        }
        t.filter(|_| !drop)
    }

    /// Whether the sampler takes the frame in `self.decoded`: its timestamp, or `None` to skip
    /// it. On a live source whose consumer is behind, a frame the sampler takes is dropped
    /// (counted), and the next sample's motion spans its interval too.
    fn take_decoded(&mut self) -> Option<f64> {
        self.report.decoded += 1;
        if self.decoded.is_corrupt() || self.decoded.has_decode_errors() {
            self.report.damage("frame decoded with errors".into());
            return None;
        }
        let Some(pts) = self.decoded.timestamp() else {
            self.report.damage("frame without a timestamp".into());
            return None;
        };
        // FFmpeg's best-effort timestamp falls back on decoding times where presentation
        // times are missing or out of order.
        self.packet_times &= self.decoded.pts() == Some(pts);
        let raw = pts as f64 * self.time_base;
        let sent = self.sent();
        self.arrival = sent.as_ref().map_or_else(SystemTime::now, |s| s.arrival);
        self.captured = self
            .capture_clock
            .and_then(|zero| Duration::try_from_secs_f64(zero + raw).ok())
            .map(|since| UNIX_EPOCH + since);
        let timestamp = match (&mut self.clock, sent.and_then(|s| s.time)) {
            (Some(_), Some(time)) if self.decoded.pts() == Some(pts) => time,
            (Some(clock), _) => clock.at(raw, false),
            (None, _) => raw,
        };
        if let Some(motion) = &mut self.motion {
            motion.observe(&self.decoded, timestamp);
        }
        match self.sampler.decide(timestamp) {
            Decision::Skip => None,
            Decision::Stop => {
                self.finished = true;
                None
            }
            Decision::Take => {
                if let Some((pending, limit)) = &self.gate {
                    if pending.load(Ordering::Acquire) >= *limit {
                        self.report.dropped += 1;
                        return None;
                    }
                    pending.fetch_add(1, Ordering::AcqRel);
                }
                self.report.sampled += 1;
                Some(timestamp)
            }
        }
    }
}

/// How far behind a live source decoding may fall before it skips to the next key frame.
const CATCH_UP: f64 = 1.0;
/// Unreadable reads in a row after which the container is given up on.
const MAX_UNREADABLE: u32 = 10_000;

/// Opens `source` for `options`: the stream, and the motion tracker its codec allows.
/// Its reads end when `closed` is raised.
fn open_stream(
    source: &Source,
    options: &DecodeOptions,
    closed: &Arc<AtomicBool>,
) -> Result<(Stream, Option<Tracker>)> {
    let keyframes = options.sampling.keyframes;
    let motion = if keyframes {
        MotionSource::Off
    } else {
        options.motion
    };
    let mut tracker = None;
    let stream = Stream::open(source, &options.read, closed, |codec, rotation| {
        tracker = Tracker::new(codec, motion, rotation, options.sampling.start);
        let vectors = tracker.as_ref().is_some_and(Tracker::wants_vectors);
        options::decoder(keyframes, vectors)
    })?;
    Ok((stream, tracker))
}

/// What is noted of a packet sent to the decoder, for its frame: its presentation timestamp,
/// when it arrived, and a live source's time for it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    pts: i64,
    arrival: SystemTime,
    time: Option<f64>,
}

/// A sampled frame as the decoder gave it.
struct Decoded {
    timestamp: f64,
    arrival: SystemTime,
    captured: Option<SystemTime>,
    gap: Option<f64>,
    frame: frame::Video,
    motion: Option<Motion>,
}

/// Turns decoded frames into the model's input (and a [`DisplayFrame`] when asked), reusing
/// its swscale contexts from frame to frame (while the format and size stay the same).
struct Converter {
    /// The file, for errors.
    path: PathBuf,
    size: u32,
    rotation: u32,
    scaler: RgbScaler,
    /// Longer side of the display copy, and its scaler, when asked for.
    display: Option<(u32, RgbScaler)>,
}

impl Converter {
    fn new(path: &Path, size: u32, rotation: u32, display: Option<u32>) -> Self {
        Self {
            path: path.to_path_buf(),
            size,
            rotation,
            scaler: RgbScaler::default(),
            display: display.map(|d| (d, RgbScaler::default())),
        }
    }

    /// One swscale pass: the decoded frame, shorter side to `size` (bilinear), as RGB24; then
    /// the centre `size x size` square copied row by row, rotated for display if needed. With
    /// a display size, a second pass from the same decoded frame to the whole frame at
    /// [`display_size`], rotated likewise.
    fn convert(&mut self, decoded: Decoded) -> Result<Frame> {
        let Decoded {
            timestamp,
            arrival,
            captured,
            gap,
            frame,
            motion,
        } = decoded;
        let (w, h) = (frame.width(), frame.height());
        let path = self.path.as_path();
        if w == 0 || h == 0 {
            return Err(Error::invalid(path, "decoded frame has no pixels"));
        }
        let size = self.size;
        let (sw, sh) = scaled_size(w, h, size);
        let scaled = self.scaler.scale(path, &frame, (sw, sh))?;
        let (left, top) = ((sw - size) / 2, (sh - size) / 2);
        let rgb = copy_rgb(scaled, (left, top), (size, size));
        let (rgb, _) = rotate(rgb, (size as usize, size as usize), self.rotation);
        let display = match &mut self.display {
            None => None,
            Some((longest, scaler)) => {
                let (dw, dh) = display_size(w, h, *longest);
                let shown = scaler.scale(path, &frame, (dw, dh))?;
                let rgb = copy_rgb(shown, (0, 0), (dw, dh));
                let (rgb, (width, height)) = rotate(rgb, (dw as usize, dh as usize), self.rotation);
                Some(DisplayFrame {
                    width: width as u32,
                    height: height as u32,
                    rgb,
                })
            }
        };
        Ok(Frame {
            timestamp,
            arrival,
            captured,
            gap,
            rgb,
            display,
            motion,
        })
    }
}

/// A swscale context to RGB24 (bilinear), rebuilt when the input's format or size changes
/// (the output size follows from the input's), and the frame it writes.
struct RgbScaler {
    context: Option<(scaling::Context, (Pixel, u32, u32))>,
    out: frame::Video,
}

impl Default for RgbScaler {
    fn default() -> Self {
        Self {
            context: None,
            out: frame::Video::empty(),
        }
    }
}

impl RgbScaler {
    /// `frame` scaled to `out_w x out_h` RGB24.
    fn scale(
        &mut self,
        path: &Path,
        frame: &frame::Video,
        (out_w, out_h): (u32, u32),
    ) -> Result<&frame::Video> {
        let (format, w, h) = (frame.format(), frame.width(), frame.height());
        let key = (format, w, h);
        let context = match &mut self.context {
            Some((context, k)) if *k == key => context,
            slot => {
                let context = scaling::Context::get(
                    format,
                    w,
                    h,
                    Pixel::RGB24,
                    out_w,
                    out_h,
                    scaling::Flags::BILINEAR,
                )
                .map_err(|e| {
                    Error::ffmpeg(path, format!("no scaler from {format:?} {w}x{h}"), e)
                })?;
                &mut slot.insert((context, key)).0
            }
        };
        context
            .run(frame, &mut self.out)
            .map_err(|e| Error::ffmpeg(path, "scaling frame", e))?;
        Ok(&self.out)
    }
}

/// The `w x h` rectangle at (`left`, `top`) of an RGB24 frame, row by row (rows are
/// `stride(0)` bytes apart, padding included).
fn copy_rgb(frame: &frame::Video, (left, top): (u32, u32), (w, h): (u32, u32)) -> Vec<u8> {
    let (left, top, w, h) = (left as usize, top as usize, w as usize, h as usize);
    let stride = frame.stride(0);
    let data = frame.data(0);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in top..top + h {
        let start = row * stride + left * 3;
        rgb.extend_from_slice(&data[start..start + w * 3]);
    }
    rgb
}

/// Size of the display copy of a `w x h` frame: longer side at most `longest` (never scaled
/// up), aspect kept, each side rounded then made even (down one where odd), at least 2.
fn display_size(w: u32, h: u32, longest: u32) -> (u32, u32) {
    let k = (f64::from(longest) / f64::from(w.max(h))).min(1.0);
    let even = |v: u32| (((f64::from(v) * k).round() as u32) & !1).max(2);
    (even(w), even(h))
}

/// Output size of the scale step: shorter side `size`, aspect kept (rounded), never below `size`.
fn scaled_size(w: u32, h: u32, size: u32) -> (u32, u32) {
    let k = f64::from(size) / f64::from(w.min(h));
    let scale = |v: u32| ((f64::from(v) * k).round() as u32).max(size);
    (scale(w), scale(h))
}

/// Clockwise display rotation of a stream, from its display matrix (0 when absent), as the
/// ffmpeg CLI's autorotate reads it: `theta = -av_display_rotation_get(m) = atan2(m[1], m[0])`,
/// 90 meaning `transpose=clock`.
fn display_rotation(stream: &ffmpeg::format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() != ffmpeg::codec::packet::side_data::Type::DisplayMatrix {
            continue;
        }
        let m: Vec<f64> = side
            .data()
            .chunks_exact(4)
            .take(9)
            .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect();
        if m.len() < 9 {
            return 0;
        }
        let clockwise = m[1].atan2(m[0]).to_degrees().rem_euclid(360.0);
        return ((clockwise / 90.0).round() as u32 % 4) * 90;
    }
    0
}

/// Rotates a `w x h` RGB image clockwise by 0, 90, 180 or 270 degrees; returns it with its
/// new width and height (swapped by a quarter turn).
fn rotate(rgb: Vec<u8>, (w, h): (usize, usize), degrees: u32) -> (Vec<u8>, (usize, usize)) {
    if degrees == 0 {
        return (rgb, (w, h));
    }
    let (ow, oh) = if degrees == 180 { (w, h) } else { (h, w) };
    let mut out = vec![0u8; rgb.len()];
    for r in 0..oh {
        for c in 0..ow {
            // The source pixel (row, column) that lands at (r, c).
            let (sr, sc) = match degrees {
                90 => (h - 1 - c, r),
                180 => (h - 1 - r, w - 1 - c),
                _ => (c, w - 1 - r),
            };
            let (d, s) = ((r * ow + c) * 3, (sr * w + sc) * 3);
            out[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
        }
    }
    (out, (ow, oh))
}

/// A decode running on its own thread, handing frames over through a bounded queue, so memory
/// stays flat however long the video is.
///
/// FFmpeg decodes on several threads of its own, but the swscale pass per frame, on the decoding
/// thread, capped the rate (at about 500 frames/s for 720p on a 16-core machine, where it took
/// a third of the work); so the passes run on [`converters`] threads of their own, frame `i` on
/// thread `i % n`, and the frames are handed on in order. Motion is measured on a thread of its
/// own as well (the decoding thread only reads each frame's vectors or grayscale copy): with
/// the vectors exported, FFmpeg decodes on slice threads, one thread on most files, and the fits
/// on it cost 720p H.264 an eighth of its rate.
///
/// On a live source the decode never waits for the consumer: a sampled frame that finds
/// `queue` frames waiting is dropped before conversion ([`DecodeReport::dropped`]), so the
/// frames handed over stay within `queue` frames of the source.
#[derive(Debug)]
pub struct Decoding {
    pub info: VideoInfo,
    pub frames: Frames,
    path: PathBuf,
    handle: JoinHandle<Result<DecodeReport>>,
}

/// The frames of a [`Decoding`], in order.
#[derive(Debug)]
pub struct Frames {
    rx: Receiver<Frame>,
    /// Frames taken by the decoder and not yet received (live sources).
    pending: Arc<AtomicUsize>,
    /// Raised when dropped: the decoder stops reading (a live source would not otherwise
    /// notice, its frames dropped before they reach the closed queue).
    closed: Arc<AtomicBool>,
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl Frames {
    /// The next frame, waiting for it; an error when the decode has ended.
    pub fn recv(&self) -> std::result::Result<Frame, RecvError> {
        self.rx.recv().inspect(|_| self.received())
    }

    /// The next frame if one is ready.
    pub fn try_recv(&self) -> std::result::Result<Frame, TryRecvError> {
        self.rx.try_recv().inspect(|_| self.received())
    }

    /// Every frame, until the decode ends.
    pub fn iter(&self) -> impl Iterator<Item = Frame> + '_ {
        std::iter::from_fn(|| self.recv().ok())
    }

    fn received(&self) {
        // Saturating: only live decodes count what they send.
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// Threads converting frames for one [`Decoding`]: a quarter of the cores, at least 1 and at
/// most 4; none on a single core (the decoding thread converts).
pub fn converters() -> usize {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => 0,
        cores => (cores / 4).clamp(1, 4),
    }
}

impl Decoding {
    /// Opens `path` (errors come back here, before any frame) and starts decoding, with
    /// [`converters`] threads converting.
    pub fn start(path: &Path, options: DecodeOptions, queue: usize) -> Result<Self> {
        Self::open(&Source::file(path), options, queue)
    }

    /// [`Decoding::start`] for any source.
    pub fn open(source: &Source, options: DecodeOptions, queue: usize) -> Result<Self> {
        Self::with_converters(source, options, queue, converters())
    }

    pub(crate) fn with_converters(
        source: &Source,
        options: DecodeOptions,
        queue: usize,
        converters: usize,
    ) -> Result<Self> {
        let (info_tx, info_rx) = sync_channel(1);
        let (tx, rx) = sync_channel(queue);
        let pending = Arc::new(AtomicUsize::new(0));
        let gate = (Arc::clone(&pending), queue.max(1));
        let path = source.error_name();
        let source = source.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let closing = Arc::clone(&closed);
        let handle = std::thread::Builder::new()
            .name("decode".into())
            .spawn(move || {
                let decode = Decode {
                    converters,
                    gate,
                    closed: closing,
                };
                decode_thread(&source, options, decode, info_tx, tx)
            })
            .map_err(|e| Error::io(&path, "starting the decoder thread", e))?;
        match info_rx.recv() {
            Ok(Ok(info)) => Ok(Self {
                info,
                frames: Frames {
                    rx,
                    pending,
                    closed,
                },
                path,
                handle,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(match handle.join() {
                Ok(Err(e)) => e,
                _ => Error::panicked(&path, "decoder"),
            }),
        }
    }

    /// Waits for the decoder to finish and returns its counters.
    pub fn finish(self) -> Result<DecodeReport> {
        drop(self.frames);
        self.handle
            .join()
            .map_err(|_| Error::panicked(&self.path, "decoder"))?
    }
}

/// How a [`Decoding`]'s thread decodes: its converter threads, the gate of a live source (frames
/// waiting, and how many may), and the flag its [`Frames`] raise when dropped.
struct Decode {
    converters: usize,
    gate: (Arc<AtomicUsize>, usize),
    closed: Arc<AtomicBool>,
}

fn decode_thread(
    source: &Source,
    options: DecodeOptions,
    decode: Decode,
    info_tx: SyncSender<Result<VideoInfo>>,
    tx: SyncSender<Frame>,
) -> Result<DecodeReport> {
    let Decode {
        converters,
        gate,
        closed,
    } = decode;
    let mut video = match Video::open_source_closed(source, options, closed) {
        Ok(video) => video,
        Err(e) => {
            let _ = info_tx.send(Err(e));
            return Ok(DecodeReport::default());
        }
    };
    if video.info.liveness == Liveness::Live {
        video.gate = Some(gate);
    }
    let path = &video.path.clone();
    let _ = info_tx.send(Ok(video.info().clone()));
    if converters == 0 {
        while let Some(frame) = video.next_frame()? {
            if tx.send(frame).is_err() {
                break; // the consumer stopped early
            }
        }
        return Ok(video.finish());
    }
    let (size, rotation, display) = (video.options.size, video.info.rotation, video.display);
    let mut jobs = Vec::new();
    let mut converted = Vec::new();
    let mut threads = Vec::new();
    for i in 0..converters {
        let (job_tx, job_rx) = sync_channel::<Decoded>(2);
        let (frame_tx, frame_rx) = sync_channel(2);
        let path_owned = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name(format!("convert-{i}"))
            .spawn(move || {
                let mut converter = Converter::new(&path_owned, size, rotation, display);
                for decoded in job_rx {
                    if frame_tx.send(converter.convert(decoded)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io(path, "starting a converter thread", e))?;
        threads.push(thread);
        jobs.push(job_tx);
        converted.push(frame_rx);
    }
    // The motion's fits off the decoding thread too: they took an eighth of its time on 720p
    // H.264, where slice threads leave the decoding on that thread alone.
    let (motions, measuring) = match video.motion.as_mut().map(Tracker::measure_apart) {
        Some(apart) => {
            let (motions, handle) =
                apart.map_err(|e| Error::io(path, "starting the motion thread", e))?;
            (Some(motions), Some(handle))
        }
        None => (None, None),
    };
    // Hands the frames on in order: frame `i` from converter `i % n`, with its motion. A
    // converter that has nothing more when its turn comes means the end (every later frame
    // would follow it).
    let path_owned = path.to_path_buf();
    let merge = std::thread::Builder::new()
        .name("merge".into())
        .spawn(move || -> Result<()> {
            for turn in converted.iter().cycle() {
                let Ok(frame) = turn.recv() else { break };
                let mut frame = frame?;
                if let Some(motions) = &motions {
                    let motion = motions
                        .recv()
                        .map_err(|_| Error::panicked(&path_owned, "motion"))?;
                    frame.motion = Some(motion);
                }
                if tx.send(frame).is_err() {
                    break; // the consumer stopped early
                }
            }
            Ok(())
        })
        .map_err(|e| Error::io(path, "starting the merging thread", e))?;
    for (decoded, job) in std::iter::from_fn(|| video.next_decoded()).zip(jobs.iter().cycle()) {
        if job.send(decoded).is_err() {
            break; // the consumer stopped early, or a conversion failed
        }
    }
    drop(jobs);
    let merged = merge.join();
    for thread in threads {
        thread
            .join()
            .map_err(|_| Error::panicked(path, "converter"))?;
    }
    merged.map_err(|_| Error::panicked(path, "frame merging"))??;
    let report = video.finish();
    drop(video); // the motion thread's queue: it ends
    if let Some(measuring) = measuring {
        measuring
            .join()
            .map_err(|_| Error::panicked(path, "motion"))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VideoCodec;
    use crate::testing::{TestResult, chain, quadrant_colour, temp_dir, write_clip};

    #[test]
    fn shorter_side_goes_to_size() {
        assert_eq!(scaled_size(640, 272, 224), (527, 224));
        assert_eq!(scaled_size(720, 1280, 224), (224, 398));
        assert_eq!(scaled_size(100, 100, 224), (224, 224));
    }

    /// A 200-frame clip (B-frames where libx264 is available) and options taking every other
    /// frame at size 96.
    fn clip(dir: &Path) -> TestResult<(PathBuf, DecodeOptions)> {
        let codec = VideoCodec::best_available()?;
        let path = write_clip(dir, "clip.mp4", (64, 48), 25, 200, codec)?;
        let options = DecodeOptions {
            sampling: Sampling {
                every: Every::Stride(2),
                ..Sampling::default()
            },
            size: 96,
            display: None,
            motion: MotionSource::Off,
            read: crate::ReadOptions::default(),
        };
        Ok((path, options))
    }

    /// With converter threads (and motion measured on a thread of its own), the same frames
    /// in the same order as converting on the decoding thread, with the same motion, and the
    /// same counters.
    #[test]
    fn converter_threads_keep_the_frames_their_order_and_motion() -> TestResult {
        let dir = temp_dir()?;
        let (path, options) = clip(dir.path())?;
        for motion in [
            MotionSource::Off,
            MotionSource::Auto,
            MotionSource::Estimated,
        ] {
            let options = DecodeOptions {
                motion,
                ..options.clone()
            };
            let mut video = Video::open(&path, options.clone())?;
            let want: Vec<Frame> =
                std::iter::from_fn(|| video.next_frame().transpose()).collect::<Result<_>>()?;
            assert!(want.len() > 40);
            assert!(
                want.iter()
                    .all(|f| f.motion.is_some() == (motion != MotionSource::Off))
            );
            for converters in [0, 1, 3] {
                let decoding = Decoding::with_converters(
                    &Source::file(&path),
                    options.clone(),
                    4,
                    converters,
                )?;
                let got: Vec<Frame> = decoding.frames.iter().collect();
                let report = decoding.finish()?;
                let case = format!("{converters} converters, motion {motion:?}");
                assert_eq!(got.len(), want.len(), "{case}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.timestamp, w.timestamp, "{case}");
                    assert!(g.rgb == w.rgb, "{case}: frame at {}", w.timestamp);
                    assert_eq!(g.motion, w.motion, "{case}: frame at {}", w.timestamp);
                }
                assert_eq!(report.sampled, video.report.sampled);
                assert_eq!(report.decoded, video.report.decoded);
            }
        }
        Ok(())
    }

    /// A consumer that stops early ends the decoder and its converters.
    #[test]
    fn stopping_early_ends_every_thread() -> TestResult {
        let dir = temp_dir()?;
        let (path, options) = clip(dir.path())?;
        let decoding = Decoding::with_converters(&Source::file(&path), options, 2, 3)?;
        let first: Vec<Frame> = decoding.frames.iter().take(5).collect();
        assert_eq!(first.len(), 5);
        let report = decoding.finish()?;
        assert!(report.sampled < 40, "stopped early: {report:?}");
        Ok(())
    }

    #[test]
    fn rotation_moves_corners_clockwise() {
        // 2x2 image, one byte triple per pixel: a b / c d.
        let img: Vec<u8> = [1u8, 2, 3, 4].iter().flat_map(|&v| [v, v, v]).collect();
        let pixels =
            |(v, size): (Vec<u8>, _)| (v.chunks(3).map(|p| p[0]).collect::<Vec<_>>(), size);
        // Clockwise 90: c a / d b.
        assert_eq!(
            pixels(rotate(img.clone(), (2, 2), 90)),
            (vec![3, 1, 4, 2], (2, 2))
        );
        assert_eq!(
            pixels(rotate(img.clone(), (2, 2), 180)),
            (vec![4, 3, 2, 1], (2, 2))
        );
        assert_eq!(pixels(rotate(img, (2, 2), 270)), (vec![2, 4, 1, 3], (2, 2)));
        // 3x2: a b c / d e f. Clockwise 90, 2x3: d a / e b / f c; 270: c f / b e / a d.
        let img: Vec<u8> = (1u8..=6).flat_map(|v| [v, v, v]).collect();
        assert_eq!(
            pixels(rotate(img.clone(), (3, 2), 0)),
            (vec![1, 2, 3, 4, 5, 6], (3, 2))
        );
        assert_eq!(
            pixels(rotate(img.clone(), (3, 2), 90)),
            (vec![4, 1, 5, 2, 6, 3], (2, 3))
        );
        assert_eq!(
            pixels(rotate(img.clone(), (3, 2), 180)),
            (vec![6, 5, 4, 3, 2, 1], (3, 2))
        );
        assert_eq!(
            pixels(rotate(img, (3, 2), 270)),
            (vec![3, 6, 2, 5, 1, 4], (2, 3))
        );
    }

    #[test]
    fn display_size_caps_the_longer_side_keeps_aspect_and_evens() {
        assert_eq!(display_size(1280, 720, 1280), (1280, 720));
        assert_eq!(display_size(1280, 720, 640), (640, 360));
        assert_eq!(display_size(1920, 1080, 1280), (1280, 720));
        assert_eq!(display_size(720, 1280, 1280), (720, 1280));
        // Never scaled up; an odd side loses a pixel. 853 x 480 at 1000 stays 852 x 480.
        assert_eq!(display_size(64, 48, 4096), (64, 48));
        assert_eq!(display_size(853, 480, 1000), (852, 480));
        // 1280 x 536 at 500: 500 x 209.4, rounded 209, even 208.
        assert_eq!(display_size(1280, 536, 500), (500, 208));
        assert_eq!(display_size(1000, 10, 2), (2, 2));
    }

    /// Mean colour of the `2r`-pixel square centred at (cx, cy) of a `w`-wide RGB image.
    fn mean_at(rgb: &[u8], w: usize, (cx, cy): (usize, usize), r: usize) -> [f64; 3] {
        let mut sum = [0.0; 3];
        for y in cy - r..cy + r {
            for x in cx - r..cx + r {
                for (c, s) in sum.iter_mut().enumerate() {
                    *s += f64::from(rgb[(y * w + x) * 3 + c]);
                }
            }
        }
        sum.map(|s| s / (4 * r * r) as f64)
    }

    /// Checks that the display copy shows the whole 64x48 test pattern of the frame at `t` (25
    /// frames/s), at `want` (width, height), quadrant `(qx, qy)` where `source` says it came
    /// from, within 12 levels (the clip went through a lossy codec and yuv420p).
    fn shows_the_pattern(
        frame: &Frame,
        want: (u32, u32),
        source: impl Fn(usize, usize) -> (usize, usize),
    ) {
        let shown = frame.display.as_ref().expect("a display copy");
        assert_eq!((shown.width, shown.height), want);
        assert_eq!(shown.rgb.len(), (want.0 * want.1 * 3) as usize);
        let (w, h) = (want.0 as usize, want.1 as usize);
        let i = (frame.timestamp * 25.0).round() as usize;
        for (qx, qy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let centre = ((2 * qx + 1) * w / 4, (2 * qy + 1) * h / 4);
            let got = mean_at(&shown.rgb, w, centre, 4);
            let (sx, sy) = source(qx, qy);
            let want = quadrant_colour(sx, sy, i);
            for c in 0..3 {
                assert!(
                    (got[c] - f64::from(want[c])).abs() < 12.0,
                    "frame {i} quadrant ({qx},{qy}): got {got:?}, want {want:?} of ({sx},{sy})"
                );
            }
        }
    }

    /// The display copy is the whole frame, longer side to the display size (64x48 at 48:
    /// 48x36), never scaled up; the model's input is as without it; with converter threads
    /// too.
    #[test]
    fn display_frames_show_the_whole_frame_at_the_display_size() -> TestResult {
        let dir = temp_dir()?;
        let (path, options) = clip(dir.path())?;
        let mut plain = Video::open(&path, options.clone())?;
        let want: Vec<Frame> =
            std::iter::from_fn(|| plain.next_frame().transpose()).collect::<Result<_>>()?;
        assert!(want.iter().all(|f| f.display.is_none()));
        for (display, size) in [(48, (48, 36)), (4096, (64, 48))] {
            for converters in [0, 2] {
                let with_display = DecodeOptions {
                    display: Some(display),
                    ..options.clone()
                };
                let decoding =
                    Decoding::with_converters(&Source::file(&path), with_display, 4, converters)?;
                let got: Vec<Frame> = decoding.frames.iter().collect();
                decoding.finish()?;
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.timestamp, w.timestamp);
                    assert!(
                        g.rgb == w.rgb,
                        "the model's input changed at {}",
                        w.timestamp
                    );
                    shows_the_pattern(g, size, |qx, qy| (qx, qy));
                }
            }
        }
        let tiny = DecodeOptions {
            display: Some(1),
            ..options
        };
        let err = Video::open(&path, tiny).expect_err("too small");
        assert!(
            err.to_string().ends_with("display size must be at least 2"),
            "{err}"
        );
        Ok(())
    }

    /// With a display rotation, the display copy is turned as the model's input is: a quarter
    /// turn clockwise makes the 64x48 pattern 36x48 at display size 48, its top-left quadrant
    /// the source's bottom-left. (The rotation goes straight to the converter: reading it from
    /// a display matrix is `display_rotation`'s job, tested end to end in the pipeline.)
    #[test]
    fn display_frames_are_rotated_for_display() -> TestResult {
        let dir = temp_dir()?;
        let (path, options) = clip(dir.path())?;
        for (degrees, size) in [(90, (36, 48)), (180, (48, 36)), (270, (36, 48))] {
            let with_display = DecodeOptions {
                display: Some(48),
                ..options.clone()
            };
            let mut video = Video::open(&path, with_display)?;
            video.converter = Converter::new(&path, options.size, degrees, Some(48));
            let mut n = 0;
            while let Some(frame) = video.next_frame()? {
                // Where displayed quadrant (qx, qy) comes from in the source.
                shows_the_pattern(&frame, size, |qx, qy| match degrees {
                    90 => (qy, 1 - qx),
                    180 => (1 - qx, 1 - qy),
                    _ => (1 - qy, qx),
                });
                n += 1;
            }
            assert!(n > 40, "{n} frames");
        }
        Ok(())
    }

    fn every_frame(size: u32) -> DecodeOptions {
        DecodeOptions {
            sampling: Sampling::default(),
            size,
            display: None,
            motion: MotionSource::Off,
            read: ReadOptions::default(),
        }
    }

    /// ffmpeg-next's `format::input` panics on a file name that is not UTF-8.
    #[cfg(unix)]
    #[test]
    fn non_utf8_file_name_is_written_probed_and_decoded() -> TestResult {
        use std::os::unix::ffi::OsStrExt as _;
        let dir = temp_dir()?;
        let name = std::ffi::OsStr::from_bytes(b"clip-\xff.mp4");
        let path = write_clip(dir.path(), name, (32, 32), 10, 5, VideoCodec::Mpeg4)?;
        assert!(path.is_file());
        let info = probe(&path)?;
        assert_eq!((info.width, info.height), (32, 32));
        let decoding = Decoding::start(&path, every_frame(32), 2)?;
        assert_eq!(decoding.frames.iter().count(), 5);
        assert_eq!(decoding.finish()?.decoded, 5);
        // And an error about it names it, lossily.
        let missing = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"missing-\xff.mp4"));
        let err = probe(&missing).expect_err("no such file");
        assert!(err.to_string().contains("missing-\u{fffd}.mp4"), "{err}");
        Ok(())
    }

    #[test]
    fn probe_reads_the_stream_without_decoding() -> TestResult {
        let dir = temp_dir()?;
        let path = write_clip(dir.path(), "p.mkv", (64, 48), 10, 10, VideoCodec::Mpeg4)?;
        let info = probe(&path)?;
        assert_eq!(info.codec, "mpeg4");
        assert_eq!((info.width, info.height, info.rotation), (64, 48, 0));
        let duration = info.duration.ok_or("a duration")?;
        assert!((duration - 1.0).abs() < 0.15, "{duration}");
        let opened = Video::open(&path, every_frame(48))?;
        assert_eq!(format!("{info:?}"), format!("{:?}", opened.info()));
        Ok(())
    }

    #[test]
    fn unusable_inputs_are_errors_naming_the_file_and_why() -> TestResult {
        let dir = temp_dir()?;
        let empty = dir.path().join("empty.mp4");
        std::fs::write(&empty, b"")?;
        let text = dir.path().join("notes.mp4");
        std::fs::write(&text, b"not a video, just some words")?;
        let cases = [
            (
                dir.path().join("missing.mp4"),
                "missing.mp4: cannot read file: ",
            ),
            (dir.path().to_path_buf(), "is a directory"),
            (empty, "empty.mp4: empty file"),
            (text, "notes.mp4: not a media file FFmpeg can read: "),
        ];
        for (path, want) in cases {
            let err = probe(&path).expect_err("probe refuses it");
            assert_eq!(err.path(), path);
            assert!(chain(&err).contains(want), "{}", chain(&err));
            let err = Decoding::start(&path, every_frame(32), 2).expect_err("decode refuses it");
            assert!(chain(&err).contains(want), "{}", chain(&err));
        }
        let good = write_clip(dir.path(), "good.mp4", (16, 16), 5, 2, VideoCodec::Mpeg4)?;
        let err = Video::open(&good, every_frame(0)).expect_err("size 0");
        assert_eq!(
            err.to_string(),
            format!("{}: frame size must be positive", good.display())
        );
        Ok(())
    }

    /// The options of `options::decoder` are the decoder's: frame threads where there is more
    /// than one core. And key frames only, when asked: MPEG-4 part 2 puts one every 12 frames.
    #[test]
    fn decoder_options_reach_the_decoder() -> TestResult {
        let dir = temp_dir()?;
        let path = write_clip(dir.path(), "gop.mp4", (32, 32), 10, 30, VideoCodec::Mpeg4)?;
        let video = Video::open(&path, every_frame(32))?;
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            let threading = video.decoder.threading();
            assert_eq!(threading.kind, codec::threading::Type::Frame);
            assert!(threading.count > 1, "{} threads", threading.count);
        }
        let mut options = every_frame(32);
        options.sampling.keyframes = true;
        let decoding = Decoding::start(&path, options, 4)?;
        // Milliseconds: the times are multiples of the muxer's time base, not exact.
        let times: Vec<i64> = decoding
            .frames
            .iter()
            .map(|f| (f.timestamp * 1000.0).round() as i64)
            .collect();
        let report = decoding.finish()?;
        assert_eq!(times, [0, 1200, 2400], "{report:?}");
        assert_eq!(report.decoded, 3, "non-key frames never decoded");
        Ok(())
    }
}
