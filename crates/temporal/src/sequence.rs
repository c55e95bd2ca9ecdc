//! The data the heads train on: feature sequences and their targets.

/// What a sequence is labelled with.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// One class for the whole clip (classify).
    Clip(usize),
    /// The class active at each step, where known (anticipate; the loss at step `t` uses the
    /// label at `t + horizon`).
    Steps(Vec<Option<usize>>),
    /// No labels: the future features are the target (forecast).
    Unlabelled,
}

/// One sequence: `steps` rows of `dim` features, row-major, and its target.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub features: Vec<f32>,
    pub steps: usize,
    pub target: Target,
}

/// A 64-bit digest of sets of sequences (features, steps, targets, order and where each set
/// ends), stable across builds and platforms: a checkpoint keeps it to refuse resuming on other
/// data. Not a cryptographic hash.
pub(crate) fn fingerprint<'a>(sets: impl IntoIterator<Item = &'a [Sequence]>) -> u64 {
    let mut h = Digest(0x5EC0_F1A6_E200_0001);
    for set in sets {
        h.add(set.len() as u64);
        for s in set {
            h.add(s.steps as u64);
            match &s.target {
                Target::Clip(label) => {
                    h.add(0);
                    h.add(*label as u64);
                }
                Target::Steps(labels) => {
                    h.add(1);
                    h.add(labels.len() as u64);
                    for label in labels {
                        h.add(label.map_or(u64::MAX, |l| l as u64));
                    }
                }
                Target::Unlabelled => h.add(2),
            }
            h.add(s.features.len() as u64);
            for pair in s.features.chunks(2) {
                let hi = pair.get(1).map_or(0, |v| u64::from(v.to_bits()));
                h.add(u64::from(pair[0].to_bits()) | hi << 32);
            }
        }
    }
    h.0
}

/// Each word is mixed in with SplitMix64's finaliser.
struct Digest(u64);

impl Digest {
    fn add(&mut self, word: u64) {
        let mut z = (self.0 ^ word).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = z ^ (z >> 31);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(features: Vec<f32>, label: usize) -> Sequence {
        Sequence {
            steps: features.len() / 2,
            features,
            target: Target::Clip(label),
        }
    }

    #[test]
    fn fingerprint_changes_with_any_value_label_or_split() {
        let a = [clip(vec![1.0, 2.0, 3.0, 4.0], 0), clip(vec![5.0, 6.0], 1)];
        let base = fingerprint([&a[..], &[]]);
        assert_eq!(base, fingerprint([&a.clone()[..], &[]]));
        let mut value = a.clone();
        value[1].features[1] = 6.5;
        let mut label = a.clone();
        label[0].target = Target::Clip(1);
        let swapped = [a[1].clone(), a[0].clone()];
        for other in [
            fingerprint([&value[..], &[]]),
            fingerprint([&label[..], &[]]),
            fingerprint([&swapped[..], &[]]),
            // The same clips, one moved from training to validation.
            fingerprint([&a[..1], &a[1..]]),
        ] {
            assert_ne!(base, other);
        }
    }
}
