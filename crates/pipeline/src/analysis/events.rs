//! Online event detection over the records of one video.

use super::motion::MotionEvents;
use super::record::{Event, HeadRecord};
use crate::imagenet::Scored;

/// Online event detection: changes of the top class that hold for two frames, and motion
/// events (anomalies are `anomaly`'s).
#[derive(Debug, Default)]
pub struct Events {
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
    /// Keeps `texts` (anomalies found at `t`, whose surprise was `surprise`) for the summary.
    pub fn note(&mut self, t: f64, texts: &[String], surprise: Option<f64>) {
        for text in texts {
            self.list.push(Event {
                timestamp: t,
                text: text.clone(),
                surprise: surprise.filter(|_| text.starts_with("anomaly: surprise (")),
            });
        }
    }

    pub fn observe(
        &mut self,
        t: f64,
        top: &[Scored],
        head: &HeadRecord,
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
}
