//! Choosing where the networks run: the one place that knows about backends.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use burn::prelude::*;
use burn::tensor::wgpu::wgpu;
use clap::ValueEnum;

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// A real GPU through wgpu when there is one, else the CPU.
    Auto,
    /// The CPU: the CNN in `vision::cpu`'s kernels, the temporal heads in burn-flex.
    Cpu,
    /// wgpu's preferred adapter, even a software one (lavapipe).
    Wgpu,
}

/// A graphics adapter wgpu can see.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub name: String,
    pub kind: String,
    pub backend: String,
    pub driver: String,
    /// A hardware GPU (discrete, integrated or virtual), not a software rasteriser.
    pub is_gpu: bool,
}

/// Every adapter on the graphics APIs burn's kernels run on (Vulkan, Metal, DirectX 12). OpenGL
/// is left out: burn does not use it, and probing it prints EGL complaints on headless machines.
pub fn adapters() -> Vec<Adapter> {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = wgpu::Backends::PRIMARY;
    // Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid" on headless machines while the
    // instance probes window-system support; that is not the user's problem.
    let found = with_stderr_silenced(|| {
        let instance = wgpu::Instance::new(descriptor);
        block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
    });
    found
        .into_iter()
        .map(|adapter| {
            let info = adapter.get_info();
            Adapter {
                is_gpu: matches!(
                    info.device_type,
                    wgpu::DeviceType::DiscreteGpu
                        | wgpu::DeviceType::IntegratedGpu
                        | wgpu::DeviceType::VirtualGpu
                ),
                name: info.name,
                kind: format!("{:?}", info.device_type),
                backend: format!("{:?}", info.backend),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
            }
        })
        .collect()
}

/// The device a run uses, with a line saying what it is.
#[derive(Debug, Clone)]
pub struct Selected {
    pub device: Device,
    pub description: String,
}

/// Resolves `--device`. `auto` takes wgpu only for a hardware adapter: on a machine with a
/// software adapter alone, the CPU path is about thirty times faster than wgpu on lavapipe.
pub fn select(choice: DeviceChoice) -> Selected {
    match choice {
        // No adapter probing for the CPU: it costs a Vulkan instance.
        DeviceChoice::Cpu => select_among(choice, &[]),
        _ => select_among(choice, &adapters()),
    }
}

/// [`select`] with the adapters already listed.
pub fn select_among(choice: DeviceChoice, adapters: &[Adapter]) -> Selected {
    let cpu = || Selected {
        device: Device::flex(),
        description: format!(
            "cpu (CNN: {} kernels, heads: burn-flex)",
            vision::cpu::kernels()
        ),
    };
    let wgpu_device = |what: String| Selected {
        device: Device::wgpu(DeviceKind::DefaultDevice),
        description: format!("wgpu ({what})"),
    };
    let gpu = adapters.iter().find(|a| a.is_gpu);
    match choice {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Wgpu => {
            let best = gpu.or(adapters.first());
            wgpu_device(best.map_or("no adapter listed".into(), |a| a.name.clone()))
        }
        DeviceChoice::Auto => match gpu {
            Some(gpu) => wgpu_device(format!("{}, {}", gpu.name, gpu.backend)),
            None => cpu(),
        },
    }
}

/// Runs `f` with the process's stderr (fd 2) pointed at /dev/null, for C libraries that write
/// there directly. Called before any other thread writes to stderr.
#[allow(unsafe_code)]
fn with_stderr_silenced<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain POSIX calls on descriptors we own; fd 2 is restored before returning and
    // the duplicate closed. On any failure nothing is redirected.
    unsafe {
        let saved = libc::dup(2);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if saved < 0 || null < 0 || libc::dup2(null, 2) < 0 {
            for fd in [saved, null] {
                if fd >= 0 {
                    libc::close(fd);
                }
            }
            return f();
        }
        libc::close(null);
        let out = f();
        libc::dup2(saved, 2);
        libc::close(saved);
        out
    }
}

/// Drives a future that needs no reactor (wgpu's native adapter queries) to completion.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
