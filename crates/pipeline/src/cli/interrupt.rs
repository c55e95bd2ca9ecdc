//! Ctrl-C and SIGTERM: the first raises a flag the reading checks (it stops, what is in
//! flight is finished, the outputs are completed or, for a file, abandoned); the second exits
//! at once with status 130.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// Installs the handlers; returns the flag the first signal raises.
pub fn install() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it runs first: exits only when the flag is already up.
        flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| flag::register(signal, Arc::clone(&stop)))
            .context("installing the Ctrl-C handler")?;
    }
    Ok(stop)
}
