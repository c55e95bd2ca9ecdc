//! Follows one stream's motion frame by frame (every decoded frame, sampled or not) and hands
//! each sample the motion of its interval: from [`Tracker::take`], or when measured on a thread
//! of its own, in order from [`Tracker::measure_apart`]'s receiver.

use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use ffmpeg::codec::Id;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::frame;
use ffmpeg::util::frame::side_data::Type as SideData;
use ffmpeg::util::picture;
use ffmpeg_next as ffmpeg;

use super::estimate::{self, Gray};
use super::fit::{self, Fitted, Sample};
use super::vectors::{self, BlockVector};
use super::{GRID, Motion, MotionSource, Source};

/// Frames further apart than this are not compared (a gap in the stream, damage): their
/// motion is unknown, not spread over the gap.
const MAX_GAP: f64 = 1.0;
/// How long the latest measurement stands for samples that have none of their own (B frames).
const HOLD: f64 = 1.0;
/// A codec that has exported no vectors for this long is given up on for estimation.
const GIVE_UP: f64 = 2.0;
/// Most codec vectors one frame's measurement reads.
const MAX_VECTORS: usize = 2048;
/// Timestamps are rationals turned into f64.
const EPS: f64 = 1e-6;
/// Whether `format` keeps 8-bit luma in its first plane, and if so whether its range is full
/// (0-255: the JPEG formats, grayscale, or a frame that says so) rather than 16-235.
fn luma_range(format: Pixel, range: ffmpeg::util::color::Range) -> Option<bool> {
    let full = range == ffmpeg::util::color::Range::JPEG;
    match format {
        Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P | Pixel::YUVJ440P | Pixel::GRAY8 => {
            Some(true)
        }
        Pixel::YUV420P
        | Pixel::YUV422P
        | Pixel::YUV444P
        | Pixel::YUV440P
        | Pixel::YUV411P
        | Pixel::YUV410P
        | Pixel::YUVA420P
        | Pixel::NV12
        | Pixel::NV21 => Some(full),
        _ => None,
    }
}

/// Values of a [`Fitted`] that are averaged over an interval.
const VALUES: usize = 6 + GRID * GRID * 3;

/// Decoders that export motion vectors (`export_side_data=+mvs`): H.264's and the MPEG video
/// family's.
fn exports_vectors(codec: Id) -> bool {
    matches!(
        codec,
        Id::H264
            | Id::MPEG1VIDEO
            | Id::MPEG2VIDEO
            | Id::MPEG4
            | Id::H263
            | Id::H263P
            | Id::FLV1
            | Id::MSMPEG4V2
            | Id::MSMPEG4V3
            | Id::WMV1
            | Id::WMV2
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Codec,
    Estimated,
}

/// The measurements of one interval between samples.
#[derive(Debug, Default)]
struct Interval {
    /// Seconds measured from the codec's vectors and by estimation.
    time: [f64; 2],
    /// Time-weighted sums of the measurements' values.
    sums: Vec<f64>,
    /// Lowest coverage of its inter frames.
    coverage: Option<f64>,
    key: bool,
}

/// One stream's motion, frame by frame. The decoding thread keeps what decides its own work
/// (which frames the motion needs decoded, when to give up on the codec's vectors) and reads
/// each frame's vectors or grayscale copy; the fits and the intervals ([`Measure`]) run here or,
/// after [`Tracker::measure_apart`], on a thread of their own, with the same results.
pub(crate) struct Tracker {
    mode: Mode,
    /// Codec: the previous I or P frame's time, the reference of the next P frame's vectors.
    anchor: Option<f64>,
    /// Codec: the latest frame with vectors enough for a fit, or the first frame, for giving
    /// up on them.
    heard: Option<f64>,
    /// Estimated: the swscale context to the grayscale copy, and the frame it writes.
    gray: Option<(scaling::Context, (Pixel, u32, u32))>,
    gray_out: frame::Video,
    measuring: Measuring,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("mode", &self.mode)
            .field("apart", &matches!(self.measuring, Measuring::There(_)))
            .finish_non_exhaustive()
    }
}

/// Where a [`Tracker`]'s measuring runs.
enum Measuring {
    Here(Box<Measure>),
    /// On a thread of its own, fed through this queue.
    There(SyncSender<Step>),
}

/// Steps a measuring thread may fall behind the decoding thread.
const STEPS_AHEAD: usize = 16;

/// What the decoding thread hands the measuring, in decoding order.
enum Step {
    /// A frame whose vectors the decoder exported: whether it is a key frame, intra or
    /// predicted (a P frame), its size, its vectors (none for intra frames), and for a P frame
    /// its anchor's distance when a fit may use it.
    Vectors {
        t: f64,
        key: bool,
        intra: bool,
        predicted: bool,
        size: (u32, u32),
        blocks: Vec<BlockVector>,
        since_anchor: Option<f64>,
    },
    /// A frame to estimate from: whether it is a key frame, and its grayscale copy.
    Pixels {
        t: f64,
        key: bool,
        gray: Option<Gray>,
    },
    /// A sample taken at this time: the measuring answers with its [`Motion`].
    Take(f64),
    /// A reconnected stream's measuring, from scratch.
    Restart(Box<Measure>),
}

/// The measuring of one stream: each frame's fit, and the interval each sample is handed.
#[derive(Default)]
struct Measure {
    rotation: u32,
    /// The previous sample's time (or the sampling's start): the current interval opens after it.
    since: Option<f64>,
    interval: Interval,
    /// The latest measurement: when it ended, what it found, where from.
    last: Option<(f64, Fitted, Source)>,
    last_coverage: f64,
    /// Estimated: the previous frame's copy.
    previous: Option<(f64, Gray)>,
}

impl Tracker {
    /// A tracker for a stream of `codec` shown turned `rotation` degrees clockwise, whose
    /// samples start at `start`; `None` when motion is off.
    pub fn new(codec: Id, asked: MotionSource, rotation: u32, start: Option<f64>) -> Option<Self> {
        let mode = match asked {
            MotionSource::Off => return None,
            MotionSource::Auto if exports_vectors(codec) => Mode::Codec,
            MotionSource::Auto | MotionSource::Estimated => Mode::Estimated,
        };
        Some(Self {
            mode,
            anchor: None,
            heard: None,
            gray: None,
            gray_out: frame::Video::empty(),
            measuring: Measuring::Here(Box::new(Measure {
                rotation,
                since: start,
                ..Measure::default()
            })),
        })
    }

    /// Moves the measuring to a thread of its own (called once, before the first frame): the
    /// decoding thread then only reads each frame's vectors or makes its grayscale copy, and
    /// [`Tracker::take`] answers `None`; each sample's [`Motion`] comes, in order, from the
    /// receiver returned. The thread ends once the tracker is dropped.
    pub fn measure_apart(&mut self) -> std::io::Result<(Receiver<Motion>, JoinHandle<()>)> {
        if matches!(self.measuring, Measuring::There(_)) {
            return Err(std::io::Error::other("motion is measured apart already"));
        }
        let (steps, rx) = sync_channel(STEPS_AHEAD);
        let (motions, received) = channel();
        let handle = std::thread::Builder::new()
            .name("motion".into())
            .spawn(move || {
                let mut measure = Measure::default();
                for step in rx {
                    if let Some(motion) = measure.step(step)
                        && motions.send(motion).is_err()
                    {
                        break; // nobody reads the motion any more
                    }
                }
            })?;
        if let Measuring::Here(measure) =
            std::mem::replace(&mut self.measuring, Measuring::There(steps))
        {
            self.measure(Step::Restart(measure));
        }
        Ok((received, handle))
    }

    /// Starts afresh as `fresh` (the stream reconnected), measuring where this one does.
    pub fn restart(&mut self, mut fresh: Tracker) {
        if let Measuring::There(steps) = &self.measuring
            && let Measuring::Here(measure) =
                std::mem::replace(&mut fresh.measuring, Measuring::There(steps.clone()))
        {
            fresh.measure(Step::Restart(measure));
        }
        *self = fresh;
    }

    fn measure(&mut self, step: Step) -> Option<Motion> {
        match &mut self.measuring {
            Measuring::Here(measure) => measure.step(step),
            Measuring::There(steps) => {
                // A measuring thread that has ended has no reader left: nothing is lost.
                let _ = steps.send(step);
                None
            }
        }
    }

    /// The motion of the interval since the previous sample, for a sample at `t`; `None` when
    /// measuring apart (it comes from [`Tracker::measure_apart`]'s receiver).
    pub fn take(&mut self, t: f64) -> Option<Motion> {
        self.measure(Step::Take(t))
    }

    /// Whether the decoder is to export its motion vectors.
    pub fn wants_vectors(&self) -> bool {
        self.mode == Mode::Codec
    }

    /// Whether every frame must be decoded (estimation compares consecutive frames).
    pub fn needs_every_frame(&self) -> bool {
        self.mode == Mode::Estimated
    }

    /// Takes in a decoded frame (not flagged damaged) shown at `t`.
    pub fn observe(&mut self, frame: &frame::Video, t: f64) {
        match self.mode {
            Mode::Codec => self.observe_vectors(frame, t),
            Mode::Estimated => self.observe_pixels(frame, t),
        }
    }

    fn observe_vectors(&mut self, frame: &frame::Video, t: f64) {
        use picture::Type::{BI, I, P, S, SI, SP};
        let kind = frame.kind();
        let intra = matches!(kind, I | SI | BI);
        let predicted = matches!(kind, P | S | SP);
        let blocks = if intra {
            Vec::new()
        } else {
            frame
                .side_data(SideData::MotionVectors)
                .map(|data| vectors::parse(data.data()))
                .unwrap_or_default()
        };
        let since_anchor = self
            .anchor
            .map(|a| t - a)
            .filter(|d| predicted && *d > EPS && *d <= MAX_GAP);
        // What the fit will find a measurement in (it fits every field of that many vectors).
        if since_anchor.is_some()
            && blocks
                .iter()
                .filter(|b| b.source < 0 && b.area() > 0.0)
                .count()
                >= fit::MIN_SAMPLES
        {
            self.heard = Some(t);
        }
        if intra || predicted {
            self.anchor = Some(t);
        }
        self.measure(Step::Vectors {
            t,
            key: intra || frame.is_key(),
            intra,
            predicted,
            size: (frame.width(), frame.height()),
            blocks,
            since_anchor,
        });
        let heard = *self.heard.get_or_insert(t);
        if t - heard > GIVE_UP {
            tracing::info!(
                "no motion vectors from the codec for {GIVE_UP} s: estimating motion from the pixels (every frame decoded from here on)"
            );
            self.mode = Mode::Estimated;
        }
    }

    fn observe_pixels(&mut self, frame: &frame::Video, t: f64) {
        let gray = self.gray(frame);
        self.measure(Step::Pixels {
            t,
            key: frame.is_key(),
            gray,
        });
    }

    /// The grayscale copy of `frame`, boxed down by [`estimate::factor`]; `None` (logged) where
    /// swscale cannot make it.
    fn gray(&mut self, frame: &frame::Video) -> Option<Gray> {
        let (format, w, h) = (frame.format(), frame.width(), frame.height());
        if w == 0 || h == 0 {
            return None;
        }
        // Straight from an 8-bit luma plane where there is one: swscale's area filter to the
        // same size cost as much as decoding the frame.
        if let Some(full) = luma_range(format, frame.color_range())
            && let Some(gray) = Gray::from_luma(
                frame.data(0),
                frame.stride(0),
                (w as usize, h as usize),
                full,
            )
        {
            return Some(gray);
        }
        // The size `Gray::from_luma` gives, so motion does not depend on the pixel format.
        let k = estimate::factor(w as usize, h as usize) as u32;
        let (gw, gh) = (w / k, h / k);
        if gw < 16 || gh < 16 {
            return None;
        }
        let key = (format, w, h);
        let context = match &mut self.gray {
            Some((context, k)) if *k == key => context,
            slot => {
                match scaling::Context::get(
                    format,
                    w,
                    h,
                    Pixel::GRAY8,
                    gw,
                    gh,
                    scaling::Flags::AREA,
                ) {
                    Ok(context) => &mut slot.insert((context, key)).0,
                    Err(e) => {
                        tracing::debug!("no grayscale scaler from {format:?} {w}x{h}: {e}");
                        return None;
                    }
                }
            }
        };
        if let Err(e) = context.run(frame, &mut self.gray_out) {
            tracing::debug!("grayscale copy failed: {e}");
            return None;
        }
        let stride = self.gray_out.stride(0);
        let plane = self.gray_out.data(0);
        let (gw, gh) = (gw as usize, gh as usize);
        let mut data = Vec::with_capacity(gw * gh);
        for row in 0..gh {
            data.extend_from_slice(&plane[row * stride..][..gw]);
        }
        Some(Gray {
            width: gw,
            height: gh,
            data,
        })
    }
}

impl Measure {
    /// Takes in one step; a [`Step::Take`] answers with the sample's motion.
    fn step(&mut self, step: Step) -> Option<Motion> {
        match step {
            Step::Vectors {
                t,
                key,
                intra,
                predicted,
                size: (w, h),
                blocks,
                since_anchor,
            } => {
                self.interval.key |= key;
                if !intra {
                    self.covered(coverage(&blocks, w, h, predicted));
                }
                if let Some(d) = since_anchor {
                    self.fit_vectors(&blocks, (f64::from(w), f64::from(h)), t, d);
                }
            }
            Step::Pixels { t, key, gray } => {
                self.interval.key |= key;
                if let Some(now) = gray {
                    if let Some((before, prev)) = self.previous.take() {
                        let d = t - before;
                        if d > EPS
                            && d <= MAX_GAP
                            && (prev.width, prev.height) == (now.width, now.height)
                        {
                            self.compare(&prev, &now, t, d);
                        }
                    }
                    self.previous = Some((t, now));
                }
            }
            Step::Take(t) => return Some(self.take(t)),
            Step::Restart(fresh) => *self = *fresh,
        }
        None
    }

    /// Fits a P frame's `blocks` (of a `size` frame), whose anchor was `d` seconds before `t`.
    fn fit_vectors(&mut self, blocks: &[BlockVector], size: (f64, f64), t: f64, d: f64) {
        // An even spread of at most MAX_VECTORS of them (a 720p frame has thousands): the
        // camera's fit and the objects' averages come out the same, for less work.
        let past = blocks.iter().filter(|b| b.source < 0).count();
        let step = past.div_ceil(MAX_VECTORS).max(1);
        let samples: Vec<Sample> = blocks
            .iter()
            .filter(|b| b.source < 0)
            .step_by(step)
            .map(|b| {
                let centre = (f64::from(b.dst.0), f64::from(b.dst.1));
                let ahead = (-f64::from(b.offset.0), -f64::from(b.offset.1));
                self.sample(centre, ahead, size, d, b.area(), b.area())
            })
            .collect();
        // Quarter-pixel vectors, and the encoder's own noise: half a pixel.
        let floor = 0.5 / self.display_width(size) / d;
        if let Some(fitted) = fit::fit(&samples, self.aspect(size), floor) {
            self.measured(t, d, fitted, Source::Codec);
        }
    }

    /// Measures the motion from `prev` to `now`, `d` seconds up to `t`.
    fn compare(&mut self, prev: &Gray, now: &Gray, t: f64, d: f64) {
        let matched = estimate::match_blocks(prev, now);
        if matched.is_empty() {
            return;
        }
        let size = (now.width as f64, now.height as f64);
        let traced = matched.iter().filter(|m| m.traced).count();
        self.covered(traced as f64 / matched.len() as f64);
        let samples: Vec<Sample> = matched
            .iter()
            .filter(|m| m.traced)
            .map(|m| {
                let trust = if m.textured { 1.0 } else { 0.0 };
                self.sample(m.centre, (-m.offset.0, -m.offset.1), size, d, trust, 1.0)
            })
            .collect();
        // Sub-pixel matches on the small copy: a third of its pixel.
        let floor = 0.3 / self.display_width(size) / d;
        if let Some(fitted) = fit::fit(&samples, self.aspect(size), floor) {
            self.measured(t, d, fitted, Source::Estimated);
        }
    }

    /// A vector at `centre` of a `size` frame whose content moved `ahead` pixels in `d`
    /// seconds, in the displayed frame's widths per second.
    fn sample(
        &self,
        centre: (f64, f64),
        ahead: (f64, f64),
        size: (f64, f64),
        d: f64,
        weight: f64,
        area: f64,
    ) -> Sample {
        let turn = |(x, y): (f64, f64)| match self.rotation {
            90 => (-y, x),
            180 => (-x, -y),
            270 => (y, -x),
            _ => (x, y),
        };
        let s = 1.0 / self.display_width(size);
        let (x, y) = turn((centre.0 - size.0 / 2.0, centre.1 - size.1 / 2.0));
        let (u, v) = turn(ahead);
        Sample {
            x: x * s,
            y: y * s,
            u: u * s / d,
            v: v * s / d,
            weight: weight * s * s,
            area: area * s * s,
        }
    }

    fn display_width(&self, (w, h): (f64, f64)) -> f64 {
        if self.rotation % 180 == 90 { h } else { w }
    }

    /// Height over width, as displayed.
    fn aspect(&self, (w, h): (f64, f64)) -> f64 {
        let width = self.display_width((w, h));
        w * h / width / width
    }

    fn covered(&mut self, share: f64) {
        let c = self.interval.coverage.get_or_insert(share);
        *c = c.min(share);
    }

    /// A measurement over the `d` seconds up to `end`.
    fn measured(&mut self, end: f64, d: f64, fitted: Fitted, source: Source) {
        self.last = Some((end, fitted, source));
        if self.since.is_some_and(|since| end <= since + EPS) {
            return; // before the samples start
        }
        let i = usize::from(source == Source::Estimated);
        self.interval.time[i] += d;
        let sums = &mut self.interval.sums;
        sums.resize(VALUES, 0.0);
        for (s, v) in sums.iter_mut().zip(values(&fitted)) {
            *s += d * v;
        }
    }

    /// The motion of the interval since the previous sample, for a sample at `t`.
    fn take(&mut self, t: f64) -> Motion {
        let interval = std::mem::take(&mut self.interval);
        let span = self.since.map(|since| t - since);
        self.since = Some(t);
        let measured = interval.time[0] + interval.time[1];
        let (mean, shares) = if measured > 0.0 {
            let whole = span.map_or(measured, |s| s.max(measured));
            let mean: Vec<f64> = interval.sums.iter().map(|s| s / measured).collect();
            (mean, interval.time.map(|t| t / whole))
        } else if let Some((_, fitted, source)) = self.last.filter(|(end, ..)| t - end <= HOLD) {
            let shares = match source {
                Source::Estimated => [0.0, 1.0],
                _ => [1.0, 0.0],
            };
            (values(&fitted).to_vec(), shares)
        } else {
            (vec![0.0; VALUES], [0.0, 0.0])
        };
        let coverage = interval.coverage.unwrap_or(self.last_coverage);
        self.last_coverage = coverage;
        let f = |i: usize| mean[i] as f32;
        let mut grid = [[0.0f32; 3]; GRID * GRID];
        for (c, cell) in grid.iter_mut().enumerate() {
            for (k, v) in cell.iter_mut().enumerate() {
                *v = f(6 + 3 * c + k);
            }
        }
        Motion {
            pan: [f(0), f(1)],
            zoom: f(2),
            roll: f(3),
            objects: f(4),
            camera_share: f(5),
            coverage: coverage as f32,
            key: interval.key,
            codec: shares[0] as f32,
            estimated: shares[1] as f32,
            grid,
        }
    }
}

/// Share of a `w x h` frame its `blocks` cover. In P frames every vector is a block of its own;
/// B frames may give a block two (one each way), so their blocks are marked on a map of 4 x 4
/// pixel cells (the smallest partition) and each cell counted once.
fn coverage(blocks: &[vectors::BlockVector], w: u32, h: u32, predicted: bool) -> f64 {
    let area = f64::from(w) * f64::from(h);
    if predicted {
        let covered: f64 = blocks.iter().map(vectors::BlockVector::area).sum();
        return (covered / area).min(1.0);
    }
    let (cw, ch) = (w.div_ceil(4) as usize, h.div_ceil(4) as usize);
    let mut map = vec![false; cw * ch];
    for b in blocks {
        let (bw, bh) = (i32::from(b.w), i32::from(b.h));
        let (left, top) = (i32::from(b.dst.0) - bw / 2, i32::from(b.dst.1) - bh / 2);
        let cells = |from: i32, len: i32, max: usize| {
            let first = (from.max(0) / 4) as usize;
            let last = (((from + len).max(0) + 3) / 4) as usize;
            first.min(max)..last.min(max)
        };
        for y in cells(top, bh, ch) {
            for x in cells(left, bw, cw) {
                map[y * cw + x] = true;
            }
        }
    }
    map.iter().filter(|c| **c).count() as f64 / (cw * ch) as f64
}

/// The values of `fitted` that are averaged over an interval, in [`super::layout`]'s order
/// (without coverage, key and source).
fn values(fitted: &Fitted) -> [f64; VALUES] {
    let mut out = [0.0; VALUES];
    // The fit describes the picture's motion; pan and roll are the camera's, the other way.
    out[..6].copy_from_slice(&[
        -fitted.pan[0],
        -fitted.pan[1],
        fitted.zoom,
        -fitted.roll,
        fitted.objects,
        fitted.camera_share,
    ]);
    for (o, v) in out[6..].iter_mut().zip(fitted.grid.iter().flatten()) {
        *o = *v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vectors::BlockVector;

    fn block(source: i32, (x, y): (i16, i16), side: u8) -> BlockVector {
        BlockVector {
            source,
            w: side,
            h: side,
            dst: (x, y),
            offset: (0.0, 0.0),
        }
    }

    /// A bi-predicted block (one vector each way) counts once; a block over the frame's edge
    /// counts only inside it.
    #[test]
    fn coverage_counts_each_pixel_once() {
        let both = [block(-1, (8, 8), 16), block(1, (8, 8), 16)];
        assert_eq!(coverage(&both, 32, 16, false), 0.5);
        let edge = [block(-1, (0, 8), 16)];
        assert_eq!(coverage(&edge, 32, 16, false), 0.25);
        // P frames: every vector its own block.
        assert_eq!(coverage(&both[..1], 32, 16, true), 0.5);
        assert_eq!(coverage(&[], 32, 16, true), 0.0);
    }
}
