//! The timeline PNG of `run --plot`: surprise on top, the top ImageNet classes below, then the
//! motion (when the run measured it), events marked on each.

use image::RgbImage;

use crate::analysis::{Anomaly, Record};
use crate::plot;

/// A frame's time, surprise and top ImageNet classes.
type TimelinePoint = (f64, Option<f64>, Vec<(&'static str, f32)>);

/// What the writer thread keeps for the timeline plot: per frame, the surprise and the top
/// ImageNet classes.
#[derive(Debug, Default)]
pub struct Timeline {
    points: Vec<TimelinePoint>,
    /// Per frame: the camera's pan x and y, its zoom and the objects' motion (NaN where
    /// nothing was measured); empty when motion is off.
    motion: Vec<(f64, [f64; 4])>,
    events: Vec<(f64, String)>,
    /// Anomaly intervals, shaded on every panel.
    bands: Vec<(f64, f64)>,
}

impl Timeline {
    /// Shades `anomalies` (each from its start to its end, or at least a sliver).
    pub fn shade(&mut self, anomalies: &[Anomaly]) {
        self.bands = anomalies
            .iter()
            .map(|a| (a.start, a.end.unwrap_or(a.start)))
            .collect();
    }

    pub fn push(&mut self, r: &Record) {
        self.points.push((
            r.timestamp,
            r.surprise,
            r.top.iter().map(|s| (s.label, s.probability)).collect(),
        ));
        if let Some(m) = &r.motion {
            let known = m.source != media::motion::Source::None.name();
            let v = |x: f32| if known { f64::from(x) } else { f64::NAN };
            self.motion.push((
                r.timestamp,
                [v(m.pan[0]), v(m.pan[1]), v(m.zoom), v(m.objects)],
            ));
        }
        for e in &r.events {
            self.events.push((r.timestamp, e.clone()));
        }
    }

    /// Surprise on top, the probabilities of the classes most often on top below, events
    /// marked on both.
    pub fn render(&self, title: &str) -> RgbImage {
        let markers: Vec<(f64, String)> = self
            .events
            .iter()
            .map(|(t, e)| (*t, e.split(':').next().unwrap_or(e).to_string()))
            .collect();
        // Both panels over the whole video, though surprise starts a horizon late.
        let span = self
            .points
            .first()
            .zip(self.points.last())
            .map(|(a, b)| (a.0, b.0));
        let surprise = plot::LineChart {
            title: format!("{title}: surprise"),
            x_label: "seconds".into(),
            y_label: "surprise".into(),
            series: vec![plot::Series {
                name: "surprise".into(),
                points: self
                    .points
                    .iter()
                    .map(|(t, s, _)| (*t, s.unwrap_or(f64::NAN)))
                    .collect(),
            }],
            markers: markers.clone(),
            y_range: None,
            x_range: span,
            bands: self.bands.clone(),
        };
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for (_, _, top) in &self.points {
            if let Some((label, _)) = top.first() {
                match counts.iter_mut().find(|(l, _)| l == label) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((label, 1)),
                }
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let classes = plot::LineChart {
            title: "top ImageNet classes (0 when outside a frame's top k)".into(),
            x_label: "seconds".into(),
            y_label: "probability".into(),
            series: counts
                .iter()
                .take(5)
                .map(|(label, _)| plot::Series {
                    name: (*label).to_string(),
                    points: self
                        .points
                        .iter()
                        .map(|(t, _, top)| {
                            let p = top
                                .iter()
                                .find(|(l, _)| l == label)
                                .map_or(0.0, |(_, p)| *p);
                            (*t, f64::from(p))
                        })
                        .collect(),
                })
                .collect(),
            markers: markers.clone(),
            y_range: Some((0.0, 1.0)),
            x_range: span,
            bands: self.bands.clone(),
        };
        let mut panels = vec![surprise.render(1000, 360), classes.render(1000, 360)];
        if !self.motion.is_empty() {
            let names = ["camera pan x", "camera pan y", "camera zoom", "objects"];
            let motion = plot::LineChart {
                title: "motion (frame widths per second; zoom per second)".into(),
                x_label: "seconds".into(),
                y_label: "per second".into(),
                series: names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| plot::Series {
                        name: (*name).to_string(),
                        points: self.motion.iter().map(|(t, v)| (*t, v[i])).collect(),
                    })
                    .collect(),
                markers,
                y_range: None,
                x_range: span,
                bands: self.bands.clone(),
            };
            panels.push(motion.render(1000, 300));
        }
        plot::vstack(&panels)
    }
}
