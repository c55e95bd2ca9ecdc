//! Times the layer types of EfficientNet-Lite0 on burn-flex, to see where the CPU time goes.
//! `cargo build --workspace --examples && target/.../examples/layer_timing`

use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu6;

fn time(name: &str, reps: usize, mut f: impl FnMut() -> Tensor<4>) {
    let _ = f().into_data();
    let t = Instant::now();
    for _ in 0..reps {
        let _ = f().into_data();
    }
    println!(
        "{name:<40} {:>8.2} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}

fn main() {
    let device = Device::flex();
    let n = 16;
    let x = Tensor::<4>::random(
        [n, 96, 112, 112],
        burn::tensor::Distribution::Default,
        &device,
    );
    let dw = Conv2dConfig::new([96, 96], [3, 3])
        .with_groups(96)
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(&device);
    let dw_s2 = Conv2dConfig::new([96, 96], [3, 3])
        .with_groups(96)
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1))
        .with_bias(false)
        .init(&device);
    let pw = Conv2dConfig::new([96, 24], [1, 1])
        .with_bias(false)
        .init(&device);
    let pw_b = Conv2dConfig::new([96, 24], [1, 1]).init(&device);
    let bn = BatchNormConfig::new(96).init(&device);
    time("depthwise 3x3 s1 96x112x112", 3, || dw.forward(x.clone()));
    time("depthwise 3x3 s2 96x112x112", 3, || {
        dw_s2.forward(x.clone())
    });
    time("pointwise 96->24 112x112", 3, || pw.forward(x.clone()));
    time("pointwise 96->24 112x112 +bias", 3, || {
        pw_b.forward(x.clone())
    });
    time("batchnorm 96x112x112", 3, || bn.forward(x.clone()));
    time("relu6 96x112x112", 3, || relu6(x.clone()));
    time("add 96x112x112", 3, || x.clone() + x.clone());
    let img = Tensor::<4>::random(
        [n, 3, 224, 224],
        burn::tensor::Distribution::Default,
        &device,
    );
    let stem = Conv2dConfig::new([3, 32], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1))
        .with_bias(false)
        .init(&device);
    time("stem 3x3 s2 3->32 224", 3, || stem.forward(img.clone()));
    let model = vision::EfficientNetConfig::new().init(&device);
    for b in [1usize, 4, 8, 16] {
        let img = Tensor::<4>::random(
            [b, 3, 224, 224],
            burn::tensor::Distribution::Default,
            &device,
        );
        let t = Instant::now();
        let reps = 32 / b;
        for _ in 0..reps {
            let _ = model.forward_features(img.clone()).into_data();
        }
        println!(
            "whole network batch {b:>2}: {:>6.1} frames/s",
            (reps * b) as f64 / t.elapsed().as_secs_f64()
        );
    }
}
