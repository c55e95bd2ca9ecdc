//! `pipeline info`: what this build is and what it can run on.

use anyhow::Result;
use pipeline::device::{self, DeviceChoice};

pub fn run() -> Result<()> {
    println!("pipeline {}", env!("CARGO_PKG_VERSION"));
    println!(
        "backbone: efficientnet-lite0, ImageNet weights built in ({} features)",
        vision::FEATURE_DIM
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let paths: Vec<&str> = vision::cpu::KernelPath::ALL
        .into_iter()
        .filter(|p| p.available())
        .map(|p| p.name())
        .collect();
    println!(
        "cpu: {threads} threads; the CNN in our {} kernels (this CPU runs --kernels {}), the temporal heads in burn-flex",
        vision::cpu::kernels(),
        paths.join(", ")
    );
    if vision::cpu::bf16_available() {
        println!("cpu: --precision bf16 available (AVX-512 BF16)");
    } else {
        println!("cpu: --precision bf16 not available (needs AVX-512 BF16)");
    }
    let adapters = device::adapters();
    if !cfg!(feature = "gpu") {
        println!("wgpu adapters: not built in");
    } else if adapters.is_empty() {
        println!("wgpu adapters: none");
    } else {
        println!("wgpu adapters:");
        for a in &adapters {
            let note = if a.is_gpu {
                ""
            } else {
                "  (software: slower than the cpu device)"
            };
            println!(
                "  - {} [{}, {}] {}{note}",
                a.name, a.kind, a.backend, a.driver
            );
        }
    }
    println!(
        "--device auto: {}",
        device::select_among(DeviceChoice::Auto, &adapters)?.description
    );
    Ok(())
}
