//! The library's progress, drawn as indicatif bars on stderr (hidden when it is not a
//! terminal).

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pipeline::progress::{BarHandle, BarSpec, Progress, Unit};

/// Every bar goes through one [`MultiProgress`], so nested ones (clips, then frames of a clip)
/// draw together instead of over each other.
#[derive(Debug, Default)]
pub struct Bars {
    bars: MultiProgress,
}

struct Handle(ProgressBar);

impl BarHandle for Handle {
    fn set_position(&self, position: u64) {
        self.0.set_position(position);
    }

    fn set_length(&self, length: u64) {
        self.0.set_length(length);
    }

    fn set_prefix(&self, prefix: String) {
        self.0.set_prefix(prefix);
    }

    fn set_message(&self, message: String) {
        self.0.set_message(message);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bars {
    fn bar(&self, spec: BarSpec) -> Box<dyn BarHandle> {
        let template = match spec.unit {
            Unit::VideoTime => "{prefix} [{bar:30}] {percent:>3}% {msg} (eta {eta})",
            Unit::Items => "{prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})",
        };
        let bar = match spec.total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None if spec.unit == Unit::VideoTime => ProgressBar::new_spinner(),
            // Items whose count comes later (set_length): a bar all the same.
            None => ProgressBar::new(0).with_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
        };
        bar.set_prefix(spec.prefix);
        Box::new(Handle(self.bars.add(bar)))
    }

    fn suspend(&self, f: &mut dyn FnMut()) {
        self.bars.suspend(f);
    }
}

/// `error: ...` on stderr without tearing the bars.
pub fn error_line(message: &str) {
    pipeline::progress::suspend(|| eprintln!("error: {message}"));
}
