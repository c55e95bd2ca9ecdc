//! Online event detection over the records of one video.

use super::motion::MotionEvents;
use super::record::{Event, HeadRecord};
use crate::imagenet::Scored;

/// Online event detection: surprise peaks against the video's surprise so far, and changes of
/// the top class that hold for two frames.
#[derive(Debug, Default)]
pub struct Events {
    count: u64,
    mean: f64,
    m2: f64,
    view: Debounced,
    head: Debounced,
    motion: MotionEvents,
    pub list: Vec<Event>,
}

/// A label that changes only when a new one holds for two frames in a row.
#[derive(Debug, Default)]
struct Debounced {
    stable: Option<String>,
    candidate: Option<String>,
}

impl Debounced {
    /// The change `(from, to)`, when `label` makes one.
    fn observe(&mut self, label: &str) -> Option<(String, String)> {
        match &self.stable {
            None => {
                self.stable = Some(label.to_string());
                None
            }
            Some(s) if s == label => {
                self.candidate = None;
                None
            }
            Some(_) if self.candidate.as_deref() == Some(label) => {
                self.candidate = None;
                let from = self.stable.replace(label.to_string()).unwrap_or_default();
                Some((from, label.to_string()))
            }
            Some(_) => {
                self.candidate = Some(label.to_string());
                None
            }
        }
    }
}

impl Events {
    /// Needs this many surprise values before it calls a peak.
    const WARM_UP: u64 = 8;
    const PEAK_SIGMAS: f64 = 3.0;

    pub fn observe(
        &mut self,
        t: f64,
        top: &[Scored],
        head: &HeadRecord,
        surprise: Option<f64>,
        motion: Option<&media::Motion>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for text in motion.map(|m| self.motion.observe(m)).unwrap_or_default() {
            out.push(text.clone());
            self.list.push(Event {
                timestamp: t,
                text,
                surprise: None,
            });
        }
        if let Some(s) = surprise {
            let std = (self.m2 / self.count.max(1) as f64).sqrt();
            if self.count >= Self::WARM_UP && s > self.mean + Self::PEAK_SIGMAS * std.max(1e-9) {
                out.push("surprise".to_string());
                self.list.push(Event {
                    timestamp: t,
                    text: format!(
                        "surprise {s:.3} ({:.1} sd above the mean so far)",
                        (s - self.mean) / std.max(1e-9)
                    ),
                    surprise: Some(s),
                });
            }
            self.count += 1;
            let delta = s - self.mean;
            self.mean += delta / self.count as f64;
            self.m2 += delta * (s - self.mean);
        }
        if let Some(first) = top.first()
            && let Some((from, to)) = self.view.observe(first.label)
        {
            let text = format!("view: {from} -> {to}");
            out.push(text.clone());
            self.list.push(Event {
                timestamp: t,
                text,
                surprise: None,
            });
        }
        let head_top = match head {
            HeadRecord::Classify { top } | HeadRecord::Anticipate { top, .. } => {
                top.first().map(|n| n.label.as_str())
            }
            HeadRecord::Forecast { .. } => None,
        };
        if let Some(label) = head_top
            && let Some((from, to)) = self.head.observe(label)
        {
            let text = format!("head: {from} -> {to}");
            out.push(text.clone());
            self.list.push(Event {
                timestamp: t,
                text,
                surprise: None,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_change_counts_once_it_holds_for_two_frames() {
        let mut d = Debounced::default();
        assert_eq!(d.observe("a"), None);
        assert_eq!(d.observe("b"), None);
        assert_eq!(d.observe("a"), None, "one-frame flicker is no change");
        assert_eq!(d.observe("b"), None);
        assert_eq!(d.observe("b"), Some(("a".into(), "b".into())));
        assert_eq!(d.observe("b"), None);
    }

    #[test]
    fn surprise_peaks_stand_out_from_the_video_so_far() {
        let mut e = Events::default();
        let head = HeadRecord::Forecast {
            horizon_seconds: 1.0,
            expected: Vec::new(),
        };
        let values = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.1, 0.9, 5.0, 1.0];
        let peaks: Vec<usize> = values
            .iter()
            .enumerate()
            .filter(|(i, v)| {
                e.observe(*i as f64, &[], &head, Some(**v), None)
                    .contains(&"surprise".to_string())
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(peaks, [9]);
    }
}
