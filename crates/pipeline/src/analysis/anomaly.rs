//! Anomaly detection on a stream, relative to the stream's own normal: named detectors that
//! are cheap and exact, as surveillance tools ship them, beside the learned surprise score.
//!
//! - **frozen**: a stream that had been changing stops changing. The change between
//!   consecutive samples is `1 - cosine` of their CNN features; a sample whose change is below
//!   a small fraction of the stream's typical change ([`FROZEN_SHARE`] of it, times the
//!   sensitivity) is still, and a run of still samples longer than `freeze_after` is a frozen
//!   feed. The typical change is learnt on the stream itself (a running mean of the log
//!   change over samples that were not still), and the detector is armed only once it has
//!   seen [`WARM_UP`] samples of real change: a scene that was still from its first frame (a
//!   test pattern, a parked camera with nothing moving) is its own normal, not a freeze. A
//!   quiet scene still changes: sensor noise and compression move the features by a share of
//!   their usual change; a frozen feed repeats the same decoded picture, whose features do not
//!   move at all.
//! - **black** / **uniform**: the picture is one flat colour (the luma's standard deviation
//!   below [`FLAT_SD`] grey levels, whatever the sensitivity), dark (black, mean luma below
//!   [`BLACK_MEAN`]) or not, for two samples in a row (a single black frame, a fade, is not).
//! - **cut**: a sudden change of the whole view (a cut, a splice, a bumped or covered camera):
//!   the change between two samples more than [`CUT_SIGMAS`] standard deviations (divided by the
//!   sensitivity) above the stream's running mean of log change, or, with motion, the frame's
//!   coverage collapsing (below [`CUT_COVERAGE`]) on an inter frame; either way a change of at
//!   least [`CUT_FLOOR`], and not into or out of a black or flat picture (that is reported as
//!   such).
//!   A jump (or two in a row: a transition that straddles a sample) is a cut when the sample
//!   after it is calm again (reported there, one sample late); a longer run of jumps (a swinging
//!   camera, fast action) is the stream's own business. With motion measured, a jump is a cut
//!   only where the motion lost the view (coverage collapsed, or a key or intra frame): a view
//!   the motion followed across the jump is motion, not a cut.
//! - **surprise**: the forecaster's surprise more than [`SURPRISE_SIGMAS`] standard deviations
//!   (divided by the sensitivity) above its running mean of log surprise; an episode lasts
//!   while it stays there, and the running mean follows, so a lasting new level ends it. Within
//!   the forecaster's horizon of another anomaly it is that anomaly's, not one of its own.
//!
//! - **motion**: objects move in a scene that had no object motion: the object motion
//!   (averaged over the last [`SMOOTH`] seconds: one sample's measure is noisy) at least
//!   [`MOVING`] frame widths a second (divided by the sensitivity) where the median of the
//!   [`QUIET_FOR`] seconds before was under [`QUIET`]. Someone walks into an empty room; leaves
//!   in a still garden start to thrash. It ends when the motion falls under half that.
//! - **stopped**: motion stops in a scene that had it (the median of the last [`QUIET_FOR`]
//!   seconds at least [`STEADY`]): the averaged object motion under [`STOPPED_SHARE`] (times the
//!   sensitivity) of that median and under [`QUIET`] for longer than `freeze_after`, while the
//!   picture still changes (a stalled conveyor, traffic that stopped; a picture that stops
//!   changing altogether is frozen). The line is drawn when the calm begins; still and flat
//!   samples say nothing of the scene's motion, and a cut starts the scene afresh.
//!
//! - **reversed**: the camera's pan turns back on itself within [`REVERSED_WITHIN`] seconds, at
//!   least [`PAN_FAST`] (divided by the sensitivity) either side: a camera slows through zero,
//!   footage played backwards turns at once. Reversed playback of a still camera's scene is not
//!   found.
//!
//! Each anomaly is an interval: it starts, and ends once the stream is normal again (a cut and
//! a reversal span the two samples they lie between).

use serde::Serialize;

/// What the detectors are told of one sample.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub t: f64,
    /// The CNN's features of the frame.
    pub features: &'a [f32],
    /// Mean and standard deviation of the model input's luma (BT.601, 0-255).
    pub luma: (f32, f32),
    /// Coverage of the frame's motion, when measured on an inter frame.
    pub coverage: Option<f32>,
    /// With motion measured: whether the interval since the previous sample holds a key or
    /// intra frame.
    pub key: Option<bool>,
    /// With motion measured on inter frames: the objects' motion (root mean square, frame
    /// widths a second, the camera's taken out).
    pub objects: Option<f32>,
    /// With motion measured on inter frames: the camera's pan (frame widths a second, x right,
    /// y down).
    pub pan: Option<[f32; 2]>,
    pub surprise: Option<f64>,
}

/// The settings `run --sensitivity` and `--freeze-after` give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalySettings {
    /// 1 by default; higher finds more (and more false alarms), lower fewer. Thresholds in
    /// standard deviations are divided by it, shares multiplied.
    pub sensitivity: f64,
    /// Seconds a stream must stay still to count as frozen.
    pub freeze_after: f64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            sensitivity: 1.0,
            freeze_after: 1.0,
        }
    }
}

/// Kinds of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Frozen,
    Black,
    Uniform,
    Cut,
    Surprise,
    Motion,
    Stopped,
    Reversed,
}

impl Kind {
    /// Whether it breaks the view (a cut, a freeze, a flat picture): the surprise during it and
    /// for a horizon after is its own.
    fn breaks_view(self) -> bool {
        matches!(self, Self::Cut | Self::Frozen | Self::Black | Self::Uniform)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Frozen => "frozen",
            Self::Black => "black",
            Self::Uniform => "uniform",
            Self::Cut => "cut",
            Self::Surprise => "surprise",
            Self::Motion => "motion",
            Self::Stopped => "stopped",
            Self::Reversed => "reversed",
        }
    }
}

/// One anomaly: from `start`, until `end` once known, with a score (frozen, stopped: seconds;
/// black, uniform: the luma's standard deviation; cut, surprise: standard deviations above the
/// stream's mean; motion: the most object motion, reversed: the slower of the two pans, frame
/// widths a second).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Anomaly {
    pub kind: Kind,
    pub start: f64,
    pub end: Option<f64>,
    pub score: f64,
}

/// Samples of real change before the frozen and cut detectors are armed.
pub const WARM_UP: u64 = 8;
/// Change below this share of the typical change is stillness.
pub const FROZEN_SHARE: f64 = 0.02;
/// Change (1 - cosine) below which nothing moved at all (the same decoded picture, up to float
/// rounding); only samples above it teach the detector the stream's normal.
pub const MIN_CHANGE: f64 = 1e-5;
/// Luma standard deviation (grey levels) below which a frame is flat.
pub const FLAT_SD: f32 = 5.0;
/// Mean luma below which a flat frame is black.
pub const BLACK_MEAN: f32 = 24.0;
pub const CUT_SIGMAS: f64 = 4.0;
/// Smallest change (1 - cosine) that can be a cut.
pub const CUT_FLOOR: f64 = 0.05;
pub const CUT_COVERAGE: f32 = 0.3;
pub const SURPRISE_SIGMAS: f64 = 6.0;
/// Surprise values before an episode can start (5 s of forecasts at the built-in
/// forecaster's 4 a second, after its first second).
pub const SURPRISE_WARM_UP: u64 = 20;
/// Object motion (frame widths a second) under which a scene has none.
pub const QUIET: f64 = 0.005;
/// Seconds of object motion a scene's median is taken over.
pub const QUIET_FOR: f64 = 5.0;
/// Object motion that is motion in a scene that had none (divided by the sensitivity).
pub const MOVING: f64 = 0.03;
/// Median object motion of a scene that has motion that can stop.
pub const STEADY: f64 = 0.01;
/// Object motion under this share of the scene's median has stopped.
pub const STOPPED_SHARE: f64 = 0.25;
/// Seconds object motion is averaged over.
pub const SMOOTH: f64 = 1.0;
/// Pan speed (frame widths a second; divided by the sensitivity) on both sides of a reversal.
pub const PAN_FAST: f64 = 0.1;
/// Cosine between two pans under which the second goes back the way the first came.
pub const REVERSED_COSINE: f64 = -0.5;
/// Seconds within which a pan must turn back to be reversed: two samples at 4 a second (a
/// sample whose interval holds the turn averages both ways and reads slow).
pub const REVERSED_WITHIN: f64 = 0.6;
/// Weight of each new sample in the running statistics (about the last 50 samples).
const RATE: f64 = 0.02;

/// A running mean and variance, weighted towards recent samples.
#[derive(Debug, Default, Clone, Copy)]
struct Running {
    n: u64,
    mean: f64,
    var: f64,
}

impl Running {
    fn push(&mut self, v: f64) {
        self.n += 1;
        let rate = (1.0 / self.n as f64).max(RATE);
        let delta = v - self.mean;
        self.mean += rate * delta;
        self.var = (1.0 - rate) * (self.var + rate * delta * delta);
    }

    /// `v`, at most 2 standard deviations above the mean once there is a mean to speak of.
    fn clipped(&self, v: f64) -> f64 {
        if self.n < WARM_UP {
            v
        } else {
            v.min(self.mean + 2.0 * self.var.sqrt())
        }
    }

    /// How many standard deviations `v` is above the mean (sd at least `floor`).
    fn z(&self, v: f64, floor: f64) -> f64 {
        (v - self.mean) / self.var.sqrt().max(floor)
    }
}

/// The detectors' state over one stream.
#[derive(Debug)]
pub struct Detector {
    settings: AnomalySettings,
    previous: Option<(f64, Vec<f32>)>,
    /// Log change over samples that were not still.
    change: Running,
    /// Since when the stream has been still, and whether that was called.
    still: Option<(f64, Option<usize>)>,
    flat: Option<usize>,
    /// A flat picture's first sample, not yet called: its kind and time.
    flat_since: Option<(Kind, f64)>,
    /// The open surprise episode.
    peak: Option<usize>,
    /// A jump waiting for the next sample to be calm.
    pending_cut: Option<Jump>,
    /// Inside a stretch of jumps.
    busy: bool,
    surprise: Running,
    /// Seconds after another anomaly in which surprise is that anomaly's (the forecaster's
    /// horizon: forecasts made during it come due up to a horizon after).
    holdoff: f64,
    /// Object motion of the last [`SMOOTH`] seconds, as measured.
    recent: std::collections::VecDeque<(f64, f64)>,
    /// Averaged object motion over the last [`QUIET_FOR`] seconds before the sample.
    objects: std::collections::VecDeque<(f64, f64)>,
    /// The open motion anomaly.
    moving: Option<usize>,
    /// Object motion under the stopped line while the picture changes.
    calm: Option<Calm>,
    /// The measured pans of the last [`REVERSED_WITHIN`] seconds before the sample, and when.
    pans: std::collections::VecDeque<(f64, [f64; 2])>,
    /// Every anomaly so far, open ones with no end.
    pub found: Vec<Anomaly>,
    /// Of the anomalies that break the view ([`Kind::breaks_view`]): how many are open, and
    /// the latest end of those closed (so a sample need not scan every anomaly so far).
    broken_open: usize,
    broken_end: f64,
}

/// A stretch of object motion under the line a busy scene drew.
#[derive(Debug, Clone, Copy)]
struct Calm {
    since: f64,
    /// The scene had motion (its median at least [`STEADY`]) when the calm began.
    had_motion: bool,
    /// [`QUIET`], or [`STOPPED_SHARE`] (times the sensitivity) of the scene's median, if less.
    line: f64,
    /// The stopped anomaly, once called.
    called: Option<usize>,
}

/// A jump of the view not called yet: one sample, or two in a row (a transition that spans a
/// sample).
#[derive(Debug, Clone, Copy)]
struct Jump {
    start: f64,
    end: f64,
    /// Standard deviations above the running mean, the larger of the two.
    z: f64,
    samples: u8,
    /// With motion measured: whether the motion lost the view (coverage collapsed, or a key or
    /// intra frame) in it. `None` without motion.
    lost: Option<bool>,
}

impl Detector {
    /// Detectors for one stream; a surprise within `holdoff` seconds of another anomaly
    /// belongs to it (give the forecaster's horizon).
    pub fn new(settings: AnomalySettings, holdoff: f64) -> Self {
        Self {
            settings,
            previous: None,
            change: Running::default(),
            still: None,
            flat: None,
            flat_since: None,
            peak: None,
            pending_cut: None,
            busy: false,
            surprise: Running::default(),
            holdoff,
            recent: std::collections::VecDeque::new(),
            objects: std::collections::VecDeque::new(),
            moving: None,
            calm: None,
            pans: std::collections::VecDeque::new(),
            found: Vec::new(),
            broken_open: 0,
            broken_end: f64::NEG_INFINITY,
        }
    }

    fn open(&mut self, kind: Kind, start: f64, score: f64) -> usize {
        self.broken_open += usize::from(kind.breaks_view());
        self.found.push(Anomaly {
            kind,
            start,
            end: None,
            score,
        });
        self.found.len() - 1
    }

    /// Ends open anomaly `i` at `end`.
    fn end(&mut self, i: usize, end: f64) {
        let a = &mut self.found[i];
        if a.end.is_none() && a.kind.breaks_view() {
            self.broken_open -= 1;
            self.broken_end = self.broken_end.max(end);
        }
        a.end = Some(end);
    }

    fn close(&mut self, i: usize, end: f64) -> String {
        self.end(i, end);
        let a = &self.found[i];
        format!(
            "anomaly: {} ends ({:.2}-{end:.2} s)",
            a.kind.name(),
            a.start
        )
    }

    /// The events `s` starts or ends, as record texts.
    pub fn observe(&mut self, s: &Sample) -> Vec<String> {
        let mut out = Vec::new();
        let sensitivity = self.settings.sensitivity.max(1e-3);

        // Black and uniform frames.
        let (mean, sd) = s.luma;
        let flat_kind = (sd < FLAT_SD).then_some(if mean < BLACK_MEAN {
            Kind::Black
        } else {
            Kind::Uniform
        });
        // Called on the second flat sample in a row: one black frame (a fade) is no anomaly.
        let was_flat = self.flat.is_some() || self.flat_since.is_some();
        match (self.flat, flat_kind) {
            (Some(i), kind) if kind != Some(self.found[i].kind) => {
                out.push(self.close(i, s.t));
                self.flat = None;
                self.flat_since = kind.map(|k| (k, s.t));
            }
            (Some(_), _) => {}
            (None, Some(kind)) => match self.flat_since {
                Some((k, since)) if k == kind => {
                    self.flat = Some(self.open(kind, since, f64::from(sd)));
                    self.flat_since = None;
                    out.push(format!("anomaly: {} (since {since:.2} s)", kind.name()));
                }
                _ => self.flat_since = Some((kind, s.t)),
            },
            (None, None) => self.flat_since = None,
        }
        let flat_now = self.flat.is_some() || self.flat_since.is_some();

        // Change since the previous sample: frozen and cut.
        let mut still_now = false;
        if let Some((before, prev)) = self.previous.take() {
            let change = 1.0 - cosine(&prev, s.features);
            let log = (change.max(0.0) + 1e-7).ln();
            let armed = self.change.n >= WARM_UP;
            // Below MIN_CHANGE nothing moved at all: still, armed or not.
            let typical = self.change.mean.exp();
            let is_still =
                change < MIN_CHANGE || (armed && change < FROZEN_SHARE * sensitivity * typical);
            let z = self.change.z(log, 0.25);
            let collapsed = s.coverage.is_some_and(|c| c < CUT_COVERAGE);
            // Into or out of a flat picture is that anomaly, not a cut besides.
            let flat_edge = was_flat || flat_now;
            let jump = armed
                && !is_still
                && !flat_edge
                && change >= CUT_FLOOR
                && (z > CUT_SIGMAS / sensitivity || collapsed);
            // With motion, whether it lost the view here: a cut or a splice leaves blocks that
            // nothing in the previous frame matches (coverage collapses) or starts an intra
            // frame; a view the motion followed across the jump (a swaying tree, a fast move)
            // is motion, not a cut.
            let lost = s.key.map(|key| key || collapsed);
            // A cut is a jump between calmer samples (one, or two in a row: a transition that
            // straddles a sample), called once the next sample is calm, so a stretch of jumps
            // (a swinging camera, fast action) is not a string of cuts.
            match (self.pending_cut.take(), jump) {
                (Some(j), false) => {
                    if j.lost != Some(false) {
                        let i = self.open(Kind::Cut, j.start, j.z);
                        self.end(i, j.end);
                        out.push(format!(
                            "anomaly: cut ({:.1} sd, {:.2}-{:.2} s)",
                            j.z, j.start, j.end
                        ));
                        let closed = self.new_scene(j.end);
                        out.extend(closed);
                    }
                }
                (Some(j), true) if j.samples == 1 => {
                    self.pending_cut = Some(Jump {
                        end: s.t,
                        z: j.z.max(z),
                        samples: 2,
                        // Lost if either sample says so; unknown only if neither knows.
                        lost: match (j.lost, lost) {
                            (Some(a), Some(b)) => Some(a || b),
                            (known, None) | (None, known) => known,
                        },
                        ..j
                    });
                }
                (Some(_), true) => self.busy = true,
                (None, true) if !self.busy => {
                    self.pending_cut = Some(Jump {
                        start: before,
                        end: s.t,
                        z,
                        samples: 1,
                        lost,
                    });
                }
                (None, true) => {}
                (None, false) => self.busy = false,
            }
            still_now = is_still;
            if is_still {
                let (since, called) = *self.still.get_or_insert((before, None));
                // A black or flat picture is still too: it is reported as what it is.
                let flat = flat_now;
                if armed
                    && !flat
                    && called.is_none()
                    && s.t - since >= self.settings.freeze_after - 1e-6
                {
                    let i = self.open(Kind::Frozen, since, s.t - since);
                    self.still = Some((since, Some(i)));
                    out.push(format!("anomaly: frozen (since {since:.2} s)"));
                }
                if let Some((since, Some(i))) = self.still {
                    self.found[i].score = s.t - since;
                }
            } else {
                if let Some((_, Some(i))) = self.still.take() {
                    out.push(self.close(i, s.t));
                }
                self.still = None;
                // Stills stay out of the stream's normal; cuts go in clipped to 2 standard
                // deviations above it, so that a new, busier normal (a faster scene) is learnt
                // in time while one cut barely widens it.
                self.change.push(self.change.clipped(log));
            }
        }
        self.previous = Some((s.t, s.features.to_vec()));

        if let Some(objects) = s.objects {
            // A freeze (the stream had been changing) or a flat picture says nothing of the
            // scene's motion; a scene still from its first frame is a scene without motion.
            let frozen = still_now && self.change.n >= WARM_UP;
            let texts = self.observe_objects(s.t, f64::from(objects), frozen || flat_now);
            out.extend(texts);
        }

        // The camera's pan turning back on itself within two samples: a camera has inertia
        // (a pan slows through zero over a second or so); footage played backwards, or a
        // backwards stretch spliced in, turns at once.
        if let Some(pan) = s.pan.filter(|_| !(still_now || flat_now)) {
            let pan = [f64::from(pan[0]), f64::from(pan[1])];
            let fast = PAN_FAST / sensitivity;
            while self
                .pans
                .front()
                .is_some_and(|&(t0, _)| s.t - t0 > REVERSED_WITHIN + 1e-6)
            {
                self.pans.pop_front();
            }
            let speed = pan[0].hypot(pan[1]);
            let turned = self.pans.iter().rev().find(|(_, last)| {
                let before = last[0].hypot(last[1]);
                let cosine = (last[0] * pan[0] + last[1] * pan[1]) / (before * speed).max(1e-12);
                before >= fast && speed >= fast && cosine < REVERSED_COSINE
            });
            if let Some(&(before, last)) = turned {
                let i = self.open(Kind::Reversed, before, last[0].hypot(last[1]).min(speed));
                self.end(i, s.t);
                out.push(format!(
                    "anomaly: reversed (the camera's pan turned from {:+.2},{:+.2} to {:+.2},{:+.2} frame widths/s, {before:.2}-{:.2} s)",
                    last[0], last[1], pan[0], pan[1], s.t
                ));
                self.pans.clear();
            }
            self.pans.push_back((s.t, pan));
        }

        // The learned score, against its own running normal, which follows a new level of
        // surprise that lasts: an episode is one anomaly, however long.
        if let Some(v) = s.surprise {
            let log = (v.max(0.0) + 1e-9).ln();
            let z = self.surprise.z(log, 0.1);
            // Forecasts made during another anomaly come due after it: their surprise is that
            // anomaly's, for a horizon after it ends. Another anomaly: a cut, a freeze or a flat
            // picture, found or about to be (a jump waiting for a calm sample, a first flat or
            // still sample). Motion and stopped are the scene's own, not a broken view.
            let other = self.pending_cut.is_some()
                || self.flat_since.is_some()
                || self.still.is_some()
                || self.broken_open > 0
                || s.t - self.broken_end <= self.holdoff;
            let high = self.surprise.n >= SURPRISE_WARM_UP
                && z > SURPRISE_SIGMAS / sensitivity
                && (self.peak.is_some() || !other);
            match (self.peak, high) {
                (None, true) => {
                    self.peak = Some(self.open(Kind::Surprise, s.t, z));
                    out.push(format!("anomaly: surprise ({z:.1} sd)"));
                }
                (Some(i), true) => self.found[i].score = self.found[i].score.max(z),
                (Some(i), false) => {
                    out.push(self.close(i, s.t));
                    self.peak = None;
                }
                (None, false) => {}
            }
            self.surprise.push(self.surprise.clipped(log));
        }
        out
    }

    /// Motion where the scene had none, and motion stopping; `still`: the picture did not
    /// change (frozen or flat: those detectors' business, and no measure of the scene's motion).
    fn observe_objects(&mut self, t: f64, measured: f64, still: bool) -> Vec<String> {
        let mut out = Vec::new();
        // The scene's median over the QUIET_FOR seconds before this sample.
        while self
            .objects
            .front()
            .is_some_and(|&(t0, _)| t - t0 > QUIET_FOR + 1e-6)
        {
            self.objects.pop_front();
        }
        if still {
            return out;
        }
        self.recent.push_back((t, measured));
        while self
            .recent
            .front()
            .is_some_and(|&(t0, _)| t - t0 > SMOOTH - 1e-6)
        {
            self.recent.pop_front();
        }
        let objects =
            self.recent.iter().map(|&(_, v)| v).sum::<f64>() / self.recent.len().max(1) as f64;
        let sensitivity = self.settings.sensitivity.max(1e-3);
        let span = self.objects.front().map_or(0.0, |&(t0, _)| t - t0);
        let mut window: Vec<f64> = self.objects.iter().map(|&(_, v)| v).collect();
        window.sort_by(f64::total_cmp);
        let median = window.get(window.len() / 2).copied().unwrap_or(0.0);
        let known = span >= QUIET_FOR - 1e-6;
        let moving = MOVING / sensitivity;
        match self.moving {
            None if known && median < QUIET && objects >= moving => {
                let start = began(&self.recent, t, |v| v >= moving);
                self.moving = Some(self.open(Kind::Motion, start, objects));
                out.push(format!(
                    "anomaly: motion (since {start:.2} s: {objects:.3} frame widths/s in a scene without motion for {span:.1} s)"
                ));
            }
            Some(i) if objects < moving / 2.0 => {
                out.push(self.close(i, t));
                self.moving = None;
            }
            Some(i) => self.found[i].score = self.found[i].score.max(objects),
            None => {}
        }
        // Stopped: under the line the scene's median drew when the calm began (the calm
        // itself must not lower it).
        let line = match self.calm {
            Some(calm) => calm.line,
            None => QUIET.min(STOPPED_SHARE * sensitivity * median),
        };
        if objects < line {
            let calm = *self.calm.get_or_insert(Calm {
                since: began(&self.recent, t, |v| v < line),
                had_motion: known && median >= STEADY,
                line,
                called: None,
            });
            if calm.had_motion
                && calm.called.is_none()
                && t - calm.since >= self.settings.freeze_after - 1e-6
            {
                let i = self.open(Kind::Stopped, calm.since, t - calm.since);
                self.calm = Some(Calm {
                    called: Some(i),
                    ..calm
                });
                out.push(format!("anomaly: stopped (since {:.2} s)", calm.since));
            }
            if let Some(Calm {
                since,
                called: Some(i),
                ..
            }) = self.calm
            {
                self.found[i].score = t - since;
            }
        } else if let Some(Calm {
            called: Some(i), ..
        }) = self.calm.take()
        {
            out.push(self.close(i, t));
        }
        self.objects.push_back((t, objects));
        out
    }

    /// A new view (a cut): the scene's motion so far says nothing of it. Closes the motion
    /// anomalies at `t`.
    fn new_scene(&mut self, t: f64) -> Vec<String> {
        self.recent.clear();
        self.objects.clear();
        let mut out = Vec::new();
        if let Some(i) = self.moving.take() {
            out.push(self.close(i, t));
        }
        if let Some(Calm {
            called: Some(i), ..
        }) = self.calm.take()
        {
            out.push(self.close(i, t));
        }
        out
    }

    /// Closes what is still open at the end of the stream, `t`, and puts the anomalies in the
    /// order they started. A jump at the last sample is a cut found here (in the summary only:
    /// no record follows to carry it).
    pub fn finish(&mut self, t: f64) {
        if let Some(j) = self.pending_cut.take()
            && j.lost != Some(false)
        {
            let i = self.open(Kind::Cut, j.start, j.z);
            self.end(i, j.end);
        }
        self.found.sort_by(|a, b| a.start.total_cmp(&b.start));
        for i in 0..self.found.len() {
            if self.found[i].end.is_none() {
                self.end(i, t);
            }
        }
    }
}

/// Where the run of measures at the end of `recent` that meet `test` began (`t` if none
/// does).
fn began(
    recent: &std::collections::VecDeque<(f64, f64)>,
    t: f64,
    test: impl Fn(f64) -> bool,
) -> f64 {
    recent
        .iter()
        .rev()
        .take_while(|&&(_, v)| test(v))
        .last()
        .map_or(t, |&(t0, _)| t0)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return if na == nb { 1.0 } else { 0.0 };
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream at 4 samples a second: features that drift by a little every sample, in a
    /// fixed direction per sample (seeded), `kind(i)` saying what happens at sample `i`.
    fn stream(
        n: usize,
        settings: AnomalySettings,
        kind: impl Fn(usize) -> &'static str,
    ) -> Detector {
        stream_with(n, settings, kind, |_| (None, None, None), |_| None)
    }

    /// [`stream`] with motion (coverage, key, objects) and surprise per sample.
    fn stream_with(
        n: usize,
        settings: AnomalySettings,
        kind: impl Fn(usize) -> &'static str,
        motion: impl Fn(usize) -> (Option<f32>, Option<bool>, Option<f32>),
        surprise: impl Fn(usize) -> Option<f64>,
    ) -> Detector {
        let mut detector = Detector::new(settings, 1.0);
        let mut features: Vec<f32> = (0..64).map(|j| 1.0 + (j % 7) as f32 * 0.1).collect();
        let mut x = 0x2545_F491_u32;
        for i in 0..n {
            let what = kind(i);
            match what {
                "frozen" | "still" => {}
                "cut" => features.iter_mut().for_each(|v| *v = 2.0 - *v * 0.5),
                // Every sample a different view: reversed order, then back.
                "swing" => features.reverse(),
                _ => {
                    for v in features.iter_mut() {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        *v = (*v + ((x % 200) as f32 - 100.0) * 0.002).max(0.0);
                    }
                }
            }
            let luma = if what == "black" {
                (3.0, 1.0)
            } else {
                (110.0, 40.0)
            };
            let (coverage, key, objects) = motion(i);
            detector.observe(&Sample {
                t: i as f64 * 0.25,
                features: &features,
                luma,
                coverage,
                key,
                objects,
                pan: None,
                surprise: surprise(i),
            });
        }
        detector.finish(n as f64 * 0.25);
        detector
    }

    fn kinds(d: &Detector) -> Vec<(Kind, f64, f64)> {
        d.found
            .iter()
            .map(|a| (a.kind, a.start, a.end.unwrap_or(f64::NAN)))
            .collect()
    }

    /// Samples 20 to 27 repeat one frame (2 s): frozen from the first of them (5 s) until
    /// change resumes (7 s); nothing else.
    #[test]
    fn a_stream_that_stops_changing_is_frozen_until_it_changes_again() {
        let d = stream(40, AnomalySettings::default(), |i| {
            if (20..28).contains(&i) {
                "frozen"
            } else {
                "normal"
            }
        });
        assert_eq!(kinds(&d), [(Kind::Frozen, 4.75, 7.0)]);
        assert!((d.found[0].score - 2.0).abs() < 1e-9, "{:?}", d.found);
        // Shorter than --freeze-after: nothing.
        let short = AnomalySettings {
            freeze_after: 2.5,
            ..AnomalySettings::default()
        };
        let d = stream(40, short, |i| {
            if (20..28).contains(&i) {
                "frozen"
            } else {
                "normal"
            }
        });
        assert!(d.found.is_empty(), "{:?}", d.found);
    }

    /// Still from the first frame (a test pattern): its own normal, never frozen.
    #[test]
    fn a_stream_still_from_the_start_is_not_frozen() {
        let d = stream(40, AnomalySettings::default(), |_| "still");
        assert!(d.found.is_empty(), "{:?}", d.found);
    }

    /// Jumps sample after sample (a swinging camera) are the stream's business, not a string of
    /// cuts; one jump between calm samples is a cut.
    #[test]
    fn a_run_of_jumps_is_not_a_string_of_cuts() {
        let d = stream(40, AnomalySettings::default(), |i| {
            if (15..22).contains(&i) {
                "swing"
            } else {
                "normal"
            }
        });
        assert!(d.found.iter().all(|a| a.kind != Kind::Cut), "{:?}", d.found);
        let d = stream(40, AnomalySettings::default(), |i| {
            if i == 15 { "swing" } else { "normal" }
        });
        assert_eq!(kinds(&d), [(Kind::Cut, 3.5, 3.75)], "{:?}", d.found);
    }

    /// With motion: a jump the motion followed (blocks found again, no intra frame: a swaying
    /// tree, a fast move) is not a cut; one where it lost the view is.
    #[test]
    fn a_jump_is_a_cut_only_where_the_motion_lost_the_view() {
        let jump = |i| if i == 15 { "swing" } else { "normal" };
        let followed = |_| (Some(0.95), Some(false), None);
        let d = stream_with(40, AnomalySettings::default(), jump, followed, |_| None);
        assert!(d.found.is_empty(), "{:?}", d.found);
        for lost in [(Some(0.1), Some(false), None), (None, Some(true), None)] {
            let motion = |i| if i == 15 { lost } else { followed(i) };
            let d = stream_with(40, AnomalySettings::default(), jump, motion, |_| None);
            assert_eq!(
                kinds(&d),
                [(Kind::Cut, 3.5, 3.75)],
                "{lost:?}: {:?}",
                d.found
            );
        }
        // A transition that straddles a sample (two jumps in a row) is one cut.
        let two = |i| {
            if i == 15 || i == 16 {
                "swing"
            } else {
                "normal"
            }
        };
        let d = stream(40, AnomalySettings::default(), two);
        assert_eq!(kinds(&d), [(Kind::Cut, 3.5, 4.0)], "{:?}", d.found);
    }

    /// Surprise a forecaster's horizon after a cut is the cut's (its forecasts were made
    /// across it); the same surprise later is an anomaly of its own.
    #[test]
    fn surprise_just_after_another_anomaly_is_that_anomaly() {
        let jump = |i| if i == 15 { "cut" } else { "normal" };
        let surprise = |at: usize| {
            move |i: usize| {
                Some(if i == at {
                    1e4
                } else {
                    1.0 + (i % 3) as f64 * 0.1
                })
            }
        };
        // At the jump itself (before the cut is called), the sample after, and 0.75 s on.
        for at in [15, 16, 18] {
            let d = stream_with(
                60,
                AnomalySettings::default(),
                jump,
                |_| (None, None, None),
                surprise(at),
            );
            assert_eq!(kinds(&d), [(Kind::Cut, 3.5, 3.75)], "{at}: {:?}", d.found);
        }
        let d = stream_with(
            60,
            AnomalySettings::default(),
            jump,
            |_| (None, None, None),
            surprise(40),
        );
        assert_eq!(
            kinds(&d),
            [(Kind::Cut, 3.5, 3.75), (Kind::Surprise, 10.0, 10.25)],
            "{:?}",
            d.found
        );
    }

    /// Objects start to move in a scene that had none for 5 s: motion, until it calms; the same
    /// motion in a scene that always had some is its normal. Motion that stops in a busy scene
    /// whose picture still changes: stopped.
    #[test]
    fn motion_in_a_still_scene_and_motion_that_stops_are_found() {
        let objects = |from: usize, to: usize, inside: f32, outside: f32| {
            move |i: usize| {
                let v = if (from..to).contains(&i) {
                    inside
                } else {
                    outside
                };
                (Some(0.95), Some(false), Some(v))
            }
        };
        let normal = |_| "normal";
        let run = |objects| stream_with(60, AnomalySettings::default(), normal, objects, |_| None);
        let d = run(objects(30, 36, 0.05, 0.001));
        // Called once the average over 1 s is over the line (8 s), from where the motion began;
        // ended once the average falls under half of it.
        assert_eq!(kinds(&d), [(Kind::Motion, 7.5, 9.5)], "{:?}", d.found);
        let d = run(objects(30, 36, 0.05, 0.02));
        assert!(d.found.is_empty(), "{:?}", d.found);
        // Within the first 5 s the scene's normal is not known yet.
        let d = run(objects(10, 16, 0.05, 0.001));
        assert!(d.found.is_empty(), "{:?}", d.found);
        // Busy, then 2 s without object motion while the picture keeps changing.
        let d = run(objects(30, 38, 0.001, 0.02));
        assert_eq!(kinds(&d), [(Kind::Stopped, 7.5, 9.5)], "{:?}", d.found);
        // Shorter than --freeze-after: nothing.
        let d = run(objects(30, 33, 0.001, 0.02));
        assert!(d.found.is_empty(), "{:?}", d.found);
        // A long stop stays one anomaly until the motion resumes (its own calm does not move
        // the line), with a longer --freeze-after too.
        let patient = AnomalySettings {
            freeze_after: 3.0,
            ..AnomalySettings::default()
        };
        let d = stream_with(100, patient, normal, objects(30, 70, 0.001, 0.02), |_| None);
        assert_eq!(kinds(&d), [(Kind::Stopped, 7.5, 17.5)], "{:?}", d.found);
        // A busy scene through a black stretch: the black is black, and the motion coming back
        // after it is not motion in a still scene.
        let black = |i| {
            if (30..45).contains(&i) {
                "black"
            } else {
                "normal"
            }
        };
        let busy = objects(0, 80, 0.04, 0.04);
        let d = stream_with(80, AnomalySettings::default(), black, busy, |_| None);
        assert!(
            d.found.iter().all(|a| a.kind == Kind::Black),
            "{:?}",
            d.found
        );
    }

    /// The camera's pan turning back at once between two samples is reversed; a camera that
    /// slows through zero over two seconds is not.
    #[test]
    fn a_pan_that_turns_back_at_once_is_reversed() {
        let pans = |pan: &dyn Fn(usize) -> f32| {
            let mut d = Detector::new(AnomalySettings::default(), 1.0);
            let mut features: Vec<f32> = (0..64).map(|j| 1.0 + (j % 7) as f32 * 0.1).collect();
            for i in 0..40 {
                features.rotate_left(1);
                d.observe(&Sample {
                    t: i as f64 * 0.25,
                    features: &features,
                    luma: (110.0, 40.0),
                    coverage: Some(0.95),
                    key: Some(false),
                    objects: Some(0.001),
                    pan: Some([pan(i), 0.0]),
                    surprise: None,
                });
            }
            d.finish(10.0);
            kinds(&d)
        };
        let turned = pans(&|i| if i < 20 { 0.25 } else { -0.25 });
        assert_eq!(turned, [(Kind::Reversed, 4.75, 5.0)]);
        let slowed = pans(&|i| 0.25 - (i as f32 - 16.0).clamp(0.0, 8.0) * 0.0625);
        assert!(slowed.is_empty(), "{slowed:?}");
    }

    #[test]
    fn black_frames_and_cuts_are_found_where_they_are() {
        let d = stream(40, AnomalySettings::default(), |i| match i {
            15 => "cut",
            25..=30 => "black",
            _ => "normal",
        });
        assert_eq!(
            kinds(&d),
            [(Kind::Cut, 3.5, 3.75), (Kind::Black, 6.25, 7.75)],
            "{:?}",
            d.found
        );
        // Less sensitive: the black stays (its threshold is fixed), the cut needs more.
        let calm = AnomalySettings {
            sensitivity: 0.05,
            ..AnomalySettings::default()
        };
        let d = stream(40, calm, |i| if i == 15 { "cut" } else { "normal" });
        assert!(d.found.is_empty(), "{:?}", d.found);
    }
}
