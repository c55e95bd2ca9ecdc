//! Choosing where the networks run: the one place that knows about backends.
//!
//! The GPU path (burn's wgpu backend) is built with the `gpu` feature. Without it the binary
//! sees no adapters, `auto` means the CPU, and `--device wgpu` is refused with one line saying
//! how to build it in.

use anyhow::Result;
use burn::prelude::*;

/// Where to run: `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Every adapter on the graphics APIs burn's kernels run on (Vulkan, Metal, DirectX 12); none
/// in a build without the `gpu` feature.
pub fn adapters() -> Vec<Adapter> {
    #[cfg(feature = "gpu")]
    return gpu::adapters();
    #[cfg(not(feature = "gpu"))]
    Vec::new()
}

/// The device a run uses, with a line saying what it is.
#[derive(Debug, Clone)]
pub struct Selected {
    pub device: Device,
    pub description: String,
}

impl Selected {
    /// The same, its line naming `kernels` (`avx2`, `avx512 bf16`, ...) where the CNN runs on
    /// the CPU instead of the kernels this CPU runs by default.
    pub fn with_kernels(mut self, kernels: &str) -> Self {
        let best = cpu_description(vision::cpu::kernels());
        if let Some(rest) = self.description.strip_prefix(&best) {
            self.description = format!("{}{rest}", cpu_description(kernels));
        }
        self
    }
}

/// Resolves `--device`. `auto` takes wgpu only for a hardware adapter: on a machine with a
/// software adapter alone, the CPU path is about thirty times faster than wgpu on lavapipe.
/// Fails for `wgpu` in a build without the `gpu` feature.
pub fn select(choice: DeviceChoice) -> Result<Selected> {
    match choice {
        // No adapter probing for the CPU: it costs a Vulkan instance.
        DeviceChoice::Cpu => select_among(choice, &[]),
        _ => select_among(choice, &adapters()),
    }
}

/// [`select`] with the adapters already listed.
pub fn select_among(choice: DeviceChoice, adapters: &[Adapter]) -> Result<Selected> {
    let gpu = adapters.iter().find(|a| a.is_gpu);
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Wgpu => {
            let best = gpu.or(adapters.first());
            wgpu_device(best.map_or("no adapter listed".into(), |a| a.name.clone()))
        }
        DeviceChoice::Auto => match gpu {
            Some(gpu) => wgpu_device(format!("{}, {}", gpu.name, gpu.backend)),
            // Say why a machine's GPU goes unused.
            None if !cfg!(feature = "gpu") => {
                let mut cpu = cpu();
                cpu.description += " (a CPU-only build: `--features gpu` adds wgpu)";
                Ok(cpu)
            }
            None => Ok(cpu()),
        },
    }
}

fn cpu() -> Selected {
    Selected {
        device: Device::flex(),
        description: cpu_description(vision::cpu::kernels()),
    }
}

fn cpu_description(kernels: &str) -> String {
    format!("cpu (CNN: {kernels} kernels, heads: burn-flex)")
}

#[cfg(feature = "gpu")]
fn wgpu_device(what: String) -> Result<Selected> {
    Ok(Selected {
        device: Device::wgpu(DeviceKind::DefaultDevice),
        description: format!("wgpu ({what})"),
    })
}

#[cfg(not(feature = "gpu"))]
fn wgpu_device(_what: String) -> Result<Selected> {
    anyhow::bail!(
        "--device wgpu: this pipeline was built without GPU support; rebuild it with \
         `--features gpu` (e.g. `cargo build --release -p pipeline --features gpu`)"
    )
}

/// Asking wgpu for adapters.
#[cfg(feature = "gpu")]
mod gpu {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use burn::tensor::wgpu::wgpu;

    use super::Adapter;

    /// OpenGL is left out: burn does not use it, and probing it prints EGL complaints on
    /// headless machines.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, is_gpu: bool) -> Adapter {
        Adapter {
            name: name.into(),
            kind: if is_gpu { "DiscreteGpu" } else { "Cpu" }.into(),
            backend: "Vulkan".into(),
            driver: String::new(),
            is_gpu,
        }
    }

    #[test]
    fn auto_passes_over_a_software_adapter() -> Result<()> {
        let lavapipe = [adapter("llvmpipe (LLVM 15.0.6, 256 bits)", false)];
        let selected = select_among(DeviceChoice::Auto, &lavapipe)?;
        assert!(selected.description.starts_with("cpu "), "{selected:?}");
        assert!(select_among(DeviceChoice::Cpu, &lavapipe)?.device == Device::flex());
        Ok(())
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn auto_takes_a_hardware_gpu_and_wgpu_takes_any_adapter() -> Result<()> {
        let both = [adapter("llvmpipe", false), adapter("NVIDIA H200", true)];
        let auto = select_among(DeviceChoice::Auto, &both)?;
        assert_eq!(auto.description, "wgpu (NVIDIA H200, Vulkan)");
        let forced = select_among(DeviceChoice::Wgpu, &both[..1])?;
        assert_eq!(forced.description, "wgpu (llvmpipe)");
        Ok(())
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn a_cpu_only_build_refuses_wgpu_and_runs_auto_on_the_cpu() -> Result<()> {
        assert!(adapters().is_empty());
        let gpu = [adapter("NVIDIA H200", true)];
        let refused = select_among(DeviceChoice::Wgpu, &gpu).map(|s| s.description);
        let message = refused.expect_err("wgpu in a CPU-only build").to_string();
        assert!(message.contains("--features gpu"), "{message}");
        assert!(select(DeviceChoice::Auto)?.device == Device::flex());
        Ok(())
    }
}
