//! Time on live sources: a clock that starts at zero and keeps increasing across reconnects
//! and restarted servers ([`Clock`]), how far reading has fallen behind the source ([`Lag`]),
//! and reading a file at its own rate ([`Pace`]).

use std::time::{Duration, Instant};

/// A jump of the source's own clock larger than this (backwards, or forwards beyond
/// [`MAX_JUMP`]) is a restarted or replaced source, not time passing.
const MAX_BACKWARDS: f64 = 1.0;
const MAX_JUMP: f64 = 60.0;

/// Stream times of a live source, rebased: the first packet is at 0, and after a reconnect or
/// a jump of the source's own clock, times go on from where they were plus the wall-clock gap.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// The source's time that maps to `base`, once a packet has set it.
    origin: Option<f64>,
    base: f64,
    /// The latest rebased time handed out, and when.
    latest: Option<(f64, Instant)>,
}

impl Clock {
    /// The rebased time of a packet or frame at the source's time `t` (seconds). A packet
    /// (`packet`) that jumps the clock re-anchors it; a frame only reads it.
    pub(crate) fn at(&mut self, t: f64, packet: bool) -> f64 {
        let origin = *self.origin.get_or_insert(t);
        let rebased = t - origin + self.base;
        if packet
            && let Some((latest, when)) = self.latest
            && (rebased < latest - MAX_BACKWARDS || rebased > latest + MAX_JUMP)
        {
            self.restart_at(t, latest + when.elapsed().as_secs_f64());
            return self.at(t, packet);
        }
        if self.latest.is_none_or(|(l, _)| rebased > l) {
            self.latest = Some((rebased, Instant::now()));
        }
        rebased
    }

    /// From now on, the source's time `t` is `at` (the next packet's, when `t` is `None`).
    fn restart_at(&mut self, t: f64, at: f64) {
        self.origin = Some(t);
        self.base = at;
        self.latest = None;
    }

    /// A new connection: its first packet sets the origin, at the latest time plus the
    /// wall-clock time since it. Returns that gap in seconds.
    pub(crate) fn reconnected(&mut self) -> f64 {
        let (latest, gap) = self.latest.map_or((self.base, 0.0), |(l, when)| {
            (l, when.elapsed().as_secs_f64())
        });
        self.origin = None;
        self.base = latest + gap;
        self.latest = None;
        gap
    }
}

/// How far behind the source reading is: how much more wall-clock time than stream time has
/// passed since the freshest point seen (the least `now - t`). The baseline creeps up by
/// [`Lag::DRIFT`] of the time passed, so a sender's clock running slow against ours does not
/// look like lag after hours.
#[derive(Debug, Default)]
pub(crate) struct Lag {
    start: Option<Instant>,
    /// The least `now - t` seen (crept), and when it was last crept.
    baseline: Option<(f64, f64)>,
}

impl Lag {
    const DRIFT: f64 = 1e-3;

    /// Seconds behind, given a packet at stream time `t` read now.
    pub(crate) fn behind(&mut self, t: f64) -> f64 {
        let now = self
            .start
            .get_or_insert_with(Instant::now)
            .elapsed()
            .as_secs_f64();
        self.behind_at(t, now)
    }

    fn behind_at(&mut self, t: f64, now: f64) -> f64 {
        let offset = now - t;
        let (base, when) = self.baseline.get_or_insert((offset, now));
        *base += Self::DRIFT * (now - *when);
        *when = now;
        *base = base.min(offset);
        offset - *base
    }

    /// Forgets the baseline (a new connection).
    pub(crate) fn reset(&mut self) {
        self.baseline = None;
    }
}

/// Reads at the stream's own rate: each packet waits until as much wall-clock time has passed
/// since the first as stream time has.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    origin: Option<(Instant, f64)>,
}

impl Pace {
    /// How long to wait before a packet at stream time `t` (zero when late).
    pub(crate) fn wait(&mut self, t: f64) -> Duration {
        let (start, t0) = *self.origin.get_or_insert((Instant::now(), t));
        let due = start + Duration::from_secs_f64((t - t0).max(0.0));
        due.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_starts_at_zero_and_survives_restarts() {
        let mut clock = Clock::default();
        assert_eq!(clock.at(10.0, true), 0.0);
        assert_eq!(clock.at(10.5, true), 0.5);
        // Frames read it without moving it.
        assert_eq!(clock.at(10.25, false), 0.25);
        // The source's clock starts again: times go on from 0.5.
        let t = clock.at(0.0, true);
        assert!((0.5..0.6).contains(&t), "{t}");
        assert!(clock.at(0.04, true) > t);
        // A reconnect: the next connection's first packet continues after the gap.
        let gap = clock.reconnected();
        assert!(gap >= 0.0);
        let after = clock.at(123.0, true);
        assert!(after >= t && after < t + 1.0, "{after}");
    }

    #[test]
    fn lag_is_measured_from_the_freshest_point_and_creeps() {
        let mut lag = Lag::default();
        assert_eq!(lag.behind_at(0.0, 0.0), 0.0);
        // On time.
        assert!(lag.behind_at(1.0, 1.0).abs() < 1e-2);
        // A burst of old data read fast is not lag; reading slower than the stream is.
        assert!(lag.behind_at(2.0, 1.1) < 1e-9);
        let behind = lag.behind_at(3.0, 4.1);
        assert!((behind - 2.0).abs() < 0.01, "{behind}");
        lag.reset();
        assert_eq!(lag.behind_at(3.0, 4.1), 0.0);
    }

    #[test]
    fn pacing_waits_for_stream_time() {
        let mut pace = Pace::default();
        assert_eq!(pace.wait(5.0), Duration::ZERO);
        let wait = pace.wait(5.2);
        assert!(wait > Duration::from_millis(150) && wait <= Duration::from_millis(200));
        assert_eq!(pace.wait(4.0), Duration::ZERO);
    }
}
