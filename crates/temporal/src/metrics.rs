//! Classification metrics: confusion matrix, accuracy, per-class precision/recall/F1, macro-F1.

use serde::{Deserialize, Serialize};

/// A confusion matrix: `counts[truth][predicted]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub counts: Vec<Vec<u64>>,
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// How many samples truly belong to the class.
    pub support: u64,
}

impl Confusion {
    /// An empty matrix over `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            counts: vec![vec![0; classes]; classes],
        }
    }

    /// Counts `(truth, predicted)` pairs; pairs naming a class outside the matrix are ignored.
    pub fn from_pairs(classes: usize, pairs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let mut m = Self::new(classes);
        for (truth, predicted) in pairs {
            if truth < classes && predicted < classes {
                m.counts[truth][predicted] += 1;
            }
        }
        m
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Share of samples on the diagonal (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        ratio(correct, self.total())
    }

    /// Scores of each class; a class never predicted has precision 0, one never present
    /// recall 0 (scikit-learn's `zero_division=0`).
    pub fn per_class(&self) -> Vec<ClassScores> {
        let n = self.counts.len();
        (0..n)
            .map(|c| {
                let tp = self.counts[c][c];
                let predicted: u64 = (0..n).map(|t| self.counts[t][c]).sum();
                let support: u64 = self.counts[c].iter().sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassScores {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    /// Unweighted mean of the per-class F1 scores.
    pub fn macro_f1(&self) -> f64 {
        let scores = self.per_class();
        if scores.is_empty() {
            return 0.0;
        }
        scores.iter().map(|s| s.f1).sum::<f64>() / scores.len() as f64
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_a_worked_example() {
        // truth 0: predicted 0, 0, 1   truth 1: predicted 1   truth 2: predicted 0
        let m = Confusion::from_pairs(3, [(0, 0), (0, 0), (0, 1), (1, 1), (2, 0)]);
        assert_eq!(m.counts, [[2, 1, 0], [0, 1, 0], [1, 0, 0]]);
        assert_eq!(m.accuracy(), 3.0 / 5.0);
        let s = m.per_class();
        // class 0: precision 2/3, recall 2/3, F1 2/3.
        assert!((s[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((s[0].f1 - 2.0 / 3.0).abs() < 1e-12);
        // class 1: precision 1/2, recall 1, F1 2/3.
        assert!((s[1].precision - 0.5).abs() < 1e-12);
        assert!((s[1].f1 - 2.0 / 3.0).abs() < 1e-12);
        // class 2: never predicted: all zero, support 1.
        assert_eq!(
            (s[2].precision, s[2].recall, s[2].f1, s[2].support),
            (0.0, 0.0, 0.0, 1)
        );
        assert!((m.macro_f1() - 4.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn empty_and_out_of_range_are_harmless() {
        let m = Confusion::from_pairs(2, [(5, 0), (0, 7)]);
        assert_eq!(m.total(), 0);
        assert_eq!(m.accuracy(), 0.0);
        assert_eq!(m.macro_f1(), 0.0);
    }
}
