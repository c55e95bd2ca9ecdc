//! ImageNet-1k class names (torchvision's list, BSD-3-Clause), in the classifier's index order.

use std::sync::OnceLock;

const CLASSES_TXT: &str = include_str!("../../../models/imagenet_classes.txt");

/// The 1000 class names; `imagenet_classes()[i]` is the label of logit `i`.
pub fn imagenet_classes() -> &'static [&'static str] {
    static CLASSES: OnceLock<Vec<&'static str>> = OnceLock::new();
    CLASSES.get_or_init(|| CLASSES_TXT.lines().map(str::trim).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_classes_in_torchvision_order() {
        let classes = imagenet_classes();
        assert_eq!(classes.len(), crate::NUM_CLASSES);
        assert_eq!(classes[0], "tench");
        assert_eq!(classes[281], "tabby");
        assert_eq!(classes[999], "toilet tissue");
    }
}
