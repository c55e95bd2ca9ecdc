//! Motion in `run`'s records, and the events it makes: the camera starting or stopping a pan or
//! a zoom, and object motion spiking while the camera holds still.

use serde::Serialize;

use media::Motion;
use media::motion::Source;

/// The motion section of a record: the camera's (frame widths per second; zoom per second,
/// roll radians per second) and the objects' (frame widths per second), from `source`.
#[derive(Debug, Clone, Serialize)]
pub struct MotionRecord {
    pub pan: [f32; 2],
    pub zoom: f32,
    pub roll: f32,
    pub objects: f32,
    /// Share of the frame traced to a reference frame (a hard cut collapses it).
    pub coverage: f32,
    pub key: bool,
    /// `codec`, `estimated`, or `none` (nothing measured: every value is unknown).
    pub source: &'static str,
}

impl MotionRecord {
    pub fn new(m: &Motion) -> Self {
        Self {
            pan: m.pan,
            zoom: m.zoom,
            roll: m.roll,
            objects: m.objects,
            coverage: m.coverage,
            key: m.key,
            source: m.source().name(),
        }
    }
}

/// Speeds above which the camera counts as panning (frame widths per second) or zooming (per
/// second), and below which it counts as still again: the gap keeps a speed near the line
/// from flickering.
const PAN_ON: f32 = 0.08;
const PAN_OFF: f32 = 0.03;
const ZOOM_ON: f32 = 0.08;
const ZOOM_OFF: f32 = 0.03;
/// Object motion needs this many measured still-camera samples before it calls a spike, a
/// spike being this many standard deviations above their mean, and at least `SPIKE_FLOOR`.
const WARM_UP: u64 = 8;
const SPIKE_SIGMAS: f64 = 3.0;
const SPIKE_FLOOR: f64 = 0.05;

/// A camera movement that starts once it holds for two samples and stops likewise.
#[derive(Debug, Default)]
struct Movement {
    moving: bool,
    pending: bool,
}

impl Movement {
    /// `Some(true)` when it starts, `Some(false)` when it stops.
    fn observe(&mut self, speed: f32, on: f32, off: f32) -> Option<bool> {
        let flip = if self.moving { speed < off } else { speed > on };
        if !flip {
            self.pending = false;
            return None;
        }
        if !self.pending {
            self.pending = true;
            return None;
        }
        self.pending = false;
        self.moving = !self.moving;
        Some(self.moving)
    }
}

/// Motion events over one video.
#[derive(Debug, Default)]
pub struct MotionEvents {
    pan: Movement,
    zoom: Movement,
    still: (u64, f64, f64),
}

impl MotionEvents {
    /// The events `m` makes, as record texts.
    pub fn observe(&mut self, m: &Motion) -> Vec<String> {
        let mut out = Vec::new();
        if m.source() == Source::None {
            return out;
        }
        let [px, py] = m.pan;
        match self.pan.observe(px.hypot(py), PAN_ON, PAN_OFF) {
            Some(true) => {
                let way = if px.abs() >= py.abs() {
                    if px > 0.0 { "right" } else { "left" }
                } else if py > 0.0 {
                    "down"
                } else {
                    "up"
                };
                out.push(format!("camera: pan {way} starts"));
            }
            Some(false) => out.push("camera: pan stops".into()),
            None => {}
        }
        match self.zoom.observe(m.zoom.abs(), ZOOM_ON, ZOOM_OFF) {
            Some(true) => out.push(format!(
                "camera: zoom {} starts",
                if m.zoom > 0.0 { "in" } else { "out" }
            )),
            Some(false) => out.push("camera: zoom stops".into()),
            None => {}
        }
        if !self.pan.moving && !self.zoom.moving {
            let (n, mean, m2) = &mut self.still;
            let v = f64::from(m.objects);
            let sd = (*m2 / (*n).max(1) as f64).sqrt();
            if *n >= WARM_UP && v > SPIKE_FLOOR && v > *mean + SPIKE_SIGMAS * sd.max(1e-6) {
                out.push("motion: objects spike".into());
            }
            *n += 1;
            let delta = v - *mean;
            *mean += delta / *n as f64;
            *m2 += delta * (v - *mean);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn motion(pan: f32, zoom: f32, objects: f32) -> Motion {
        Motion {
            pan: [pan, 0.0],
            zoom,
            roll: 0.0,
            objects,
            camera_share: 1.0,
            coverage: 1.0,
            key: false,
            codec: 1.0,
            estimated: 0.0,
            grid: [[0.0; 3]; 16],
        }
    }

    #[test]
    fn pans_and_zooms_start_and_stop_once_they_hold() {
        let mut e = MotionEvents::default();
        let seq = [
            motion(0.0, 0.0, 0.01),
            motion(0.2, 0.0, 0.01), // one sample: not yet
            motion(0.0, 0.0, 0.01),
            motion(-0.2, 0.0, 0.01),
            motion(-0.2, 0.0, 0.01),  // holds: starts, to the left
            motion(-0.05, 0.0, 0.01), // between the lines: still panning
            motion(0.0, 0.0, 0.01),
            motion(0.0, 0.0, 0.01), // stops
            motion(0.0, -0.3, 0.01),
            motion(0.0, -0.3, 0.01), // zooms out
        ];
        let got: Vec<(usize, Vec<String>)> = seq
            .iter()
            .enumerate()
            .map(|(i, m)| (i, e.observe(m)))
            .filter(|(_, ev)| !ev.is_empty())
            .collect();
        assert_eq!(
            got,
            [
                (4, vec!["camera: pan left starts".to_string()]),
                (7, vec!["camera: pan stops".to_string()]),
                (9, vec!["camera: zoom out starts".to_string()]),
            ]
        );
    }

    #[test]
    fn object_motion_spikes_only_while_the_camera_is_still() {
        let mut e = MotionEvents::default();
        let mut spikes = Vec::new();
        for i in 0..20 {
            let objects = if i == 12 {
                0.3
            } else {
                0.01 + 0.002 * (i % 3) as f32
            };
            if e.observe(&motion(0.0, 0.0, objects))
                .contains(&"motion: objects spike".into())
            {
                spikes.push(i);
            }
        }
        assert_eq!(spikes, [12]);
        let unknown = Motion {
            codec: 0.0,
            ..motion(0.5, 0.5, 5.0)
        };
        assert!(
            e.observe(&unknown).is_empty(),
            "nothing measured, nothing said"
        );
    }
}
