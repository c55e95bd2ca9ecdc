//! How long-running library work reports how far it got, without knowing who is watching.
//!
//! The library calls [`bar`] and [`suspend`]; whatever [`Progress`] the program installed with
//! [`install`] draws them (the `pipeline` binary: indicatif bars on stderr). Without one,
//! progress goes nowhere, as it should for a library user or a test.

use std::sync::OnceLock;

/// What a bar counts, so a renderer can label and pace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Tenths of a second of video time (the length is unknown for a stream).
    VideoTime,
    /// Items of work: files, clips, batches.
    Items,
}

/// One piece of work being watched.
#[derive(Debug, Clone)]
pub struct BarSpec {
    /// Shown before the bar: a file name, `files`, `epoch 3/30`.
    pub prefix: String,
    /// How many units make the whole; `None` when unknown.
    pub total: Option<u64>,
    pub unit: Unit,
}

/// A renderer's handle on one bar. Dropping it removes the bar.
pub trait BarHandle: Send + Sync {
    fn set_position(&self, position: u64);
    fn set_length(&self, length: u64);
    fn set_prefix(&self, prefix: String);
    fn set_message(&self, message: String);
}

/// Draws progress: installed once by the program, called from any thread.
pub trait Progress: Send + Sync {
    fn bar(&self, spec: BarSpec) -> Box<dyn BarHandle>;
    /// Runs `f` (which writes a line to the terminal) with the bars out of its way.
    fn suspend(&self, f: &mut dyn FnMut());
}

static INSTALLED: OnceLock<Box<dyn Progress>> = OnceLock::new();

/// Sends all progress from now on to `progress`. Only the first call takes effect.
pub fn install(progress: impl Progress + 'static) {
    let _ = INSTALLED.set(Box::new(progress));
}

/// A bar on whatever is installed, or one that draws nothing.
pub fn bar(spec: BarSpec) -> Bar {
    Bar(INSTALLED.get().map(|p| p.bar(spec)))
}

/// Runs `f` with the bars out of its way (for a line on stderr while bars are drawn).
pub fn suspend(mut f: impl FnMut()) {
    match INSTALLED.get() {
        Some(p) => p.suspend(&mut f),
        None => f(),
    }
}

/// A bar; all methods do nothing when no renderer is installed.
pub struct Bar(Option<Box<dyn BarHandle>>);

impl Bar {
    pub fn set_position(&self, position: u64) {
        if let Some(b) = &self.0 {
            b.set_position(position);
        }
    }

    pub fn set_length(&self, length: u64) {
        if let Some(b) = &self.0 {
            b.set_length(length);
        }
    }

    pub fn set_prefix(&self, prefix: impl Into<String>) {
        if let Some(b) = &self.0 {
            b.set_prefix(prefix.into());
        }
    }

    pub fn set_message(&self, message: impl Into<String>) {
        if let Some(b) = &self.0 {
            b.set_message(message.into());
        }
    }
}

impl std::fmt::Debug for Bar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bar")
            .field("drawn", &self.0.is_some())
            .finish()
    }
}
