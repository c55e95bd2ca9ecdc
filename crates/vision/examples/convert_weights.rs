//! Converts the PyTorch ImageNet weights of EfficientNet-Lite0 into the safetensors file the
//! `pipeline` binary embeds (`models/efficientnet-lite0.safetensors`):
//!
//! ```text
//! cargo run -p vision --example convert_weights -- \
//!     ../shared/reference/efficientnet-lite0-57934424.pth models/efficientnet-lite0.safetensors
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use burn::prelude::*;
use vision::{EfficientNetConfig, weights};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [from, to] = args.as_slice() else {
        eprintln!("usage: convert_weights FROM.pth TO.safetensors");
        return ExitCode::from(2);
    };
    let device = Device::flex();
    let mut model = EfficientNetConfig::new().init(&device);
    let result = weights::load_pytorch(&mut model, from).and_then(|report| {
        eprintln!(
            "applied {} tensors; unused: {:?}",
            report.applied, report.unused
        );
        weights::save_safetensors(&model, to)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
