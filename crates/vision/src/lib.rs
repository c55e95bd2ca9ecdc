//! Per-frame visual features: the EfficientNet-Lite0 backbone in burn.
//!
//! The crate takes tensors and returns tensors. It knows nothing of video files, command lines or
//! terminals; the `pipeline` crate decodes media, picks the device and talks to the user.
//!
//! - [`EfficientNet`]: `forward_features` gives `[N, 1280]` embeddings, `classify` turns them
//!   into `[N, 1000]` ImageNet logits.
//! - [`preprocess`]: RGB bytes `[N, H, W, 3]` to the normalised `[N, 3, H, W]` input, on the
//!   device the tensor lives on.
//! - [`weights`]: loading the ImageNet weights (PyTorch `.pth` or safetensors) with the load
//!   report checked, never ignored.
//! - [`cpu::CpuBackbone`]: the same network compiled into fused channels-last CPU kernels, the
//!   fast path on the CPU.
//! - [`labels`]: the 1000 ImageNet class names in index order.

pub mod cpu;
mod efficientnet;
mod error;
pub mod labels;
pub mod preprocess;
pub mod weights;

pub use efficientnet::{
    EfficientNet, EfficientNetConfig, FEATURE_DIM, Layer, NUM_CLASSES, Variant,
};
pub use error::VisionError;
