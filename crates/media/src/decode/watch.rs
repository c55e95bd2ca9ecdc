//! FFmpeg's interrupt callback for one opened input: blocking reads (a network stream that
//! stalls, a server that accepts and never sends, a device that gives nothing) give up after
//! the read timeout, and every read stops at once when the caller's stop flag is raised.

use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether the reads of one input should give up, asked by FFmpeg while it blocks.
#[derive(Debug)]
pub(crate) struct Watch {
    start: Instant,
    /// Milliseconds after `start` of the last sign of life ([`Watch::alive`]).
    last: AtomicU64,
    timeout: Option<Duration>,
    /// The caller's stop (Ctrl-C), and the consumer's: raised when nothing will take the
    /// frames any more.
    stop: Option<Arc<AtomicBool>>,
    closed: Arc<AtomicBool>,
    /// Set when a read was given up for want of data; never cleared (the input is done).
    timed_out: AtomicBool,
}

impl Watch {
    pub(crate) fn new(
        timeout: Option<Duration>,
        stop: Option<Arc<AtomicBool>>,
        closed: Arc<AtomicBool>,
    ) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            timeout,
            stop,
            closed,
            timed_out: AtomicBool::new(false),
        })
    }

    /// Notes that data arrived: the timeout counts from now. (A read once given up stays
    /// given up: a demuxer may hand out what it had buffered before it reports the error.)
    pub(crate) fn alive(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Whether the caller asked to stop (or the consumer went).
    pub(crate) fn stopped(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
            || self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Whether the last read given up was given up for want of data.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// The read timeout, if any.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn should_interrupt(&self) -> bool {
        if self.stopped() {
            return true;
        }
        let Some(timeout) = self.timeout else {
            return false;
        };
        let now = self.start.elapsed().as_millis() as u64;
        let idle = now.saturating_sub(self.last.load(Ordering::Relaxed));
        let out = idle > timeout.as_millis() as u64;
        if out {
            self.timed_out.store(true, Ordering::Relaxed);
        }
        out
    }

    /// The callback and its argument for an `AVIOInterruptCB`. The argument points into
    /// `this`: the input must be closed before the last `Arc` goes.
    pub(crate) fn callback(this: &Arc<Self>) -> ffmpeg_next::ffi::AVIOInterruptCB {
        ffmpeg_next::ffi::AVIOInterruptCB {
            callback: Some(interrupt),
            opaque: Arc::as_ptr(this).cast_mut().cast(),
        }
    }
}

/// FFmpeg's interrupt callback: non-zero makes the blocking call return `AVERROR_EXIT`.
#[allow(unsafe_code)]
unsafe extern "C" fn interrupt(opaque: *mut c_void) -> c_int {
    // SAFETY: `opaque` is the `Watch` of `Watch::callback`, kept alive by the owner of the
    // input for as long as the input is open; only shared access and atomics are used.
    let watch = unsafe { &*opaque.cast::<Watch>() };
    c_int::from(watch.should_interrupt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupts_after_the_timeout_or_when_stopped() {
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let watch = Watch::new(
            Some(Duration::from_millis(30)),
            Some(Arc::clone(&stop)),
            Arc::clone(&closed),
        );
        watch.alive();
        assert!(!watch.should_interrupt());
        std::thread::sleep(Duration::from_millis(60));
        assert!(watch.should_interrupt());
        assert!(watch.timed_out());
        watch.alive();
        assert!(!watch.should_interrupt() && watch.timed_out());
        stop.store(true, Ordering::Relaxed);
        assert!(watch.should_interrupt() && watch.stopped());
        let never = Watch::new(None, None, Arc::clone(&closed));
        assert!(!never.should_interrupt());
        closed.store(true, Ordering::Relaxed);
        assert!(never.should_interrupt());
    }
}
