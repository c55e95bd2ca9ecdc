//! The crate's error: what went wrong, and with which file.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A failure to read or write a video. Every variant names the file (lossily, if its name is
/// not UTF-8) and what failed, in one line; the lower-level error, where there is one, is the
/// [`source`](std::error::Error::source), not repeated in the message: print the chain
/// (anyhow's `{:#}`) to see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read, written or renamed, or a thread could not be started.
    #[error("{}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// FFmpeg failed at a step of opening, decoding or encoding the file.
    #[error("{}: {what}", path.display())]
    Ffmpeg {
        path: PathBuf,
        what: String,
        #[source]
        source: ffmpeg::Error,
    },
    /// The file, or what was asked of it, cannot be used: an empty file, no video stream, a
    /// frame of the wrong size, an unsupported extension...
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    /// A thread decoding or converting the file's frames panicked.
    #[error("{}: the {thread} thread panicked", path.display())]
    Panicked { path: PathBuf, thread: String },
}

impl Error {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Ffmpeg { path, .. }
            | Self::Invalid { path, .. }
            | Self::Panicked { path, .. } => path,
        }
    }

    /// The same error, its message prefixed with the step it happened in (`"{step}: "`), as
    /// anyhow's `context` would: `clip.mp4: writing frame 3: encoding`.
    pub(crate) fn during(mut self, step: impl std::fmt::Display) -> Self {
        match &mut self {
            Self::Io { what, .. } | Self::Ffmpeg { what, .. } => *what = format!("{step}: {what}"),
            Self::Invalid { reason, .. } => *reason = format!("{step}: {reason}"),
            Self::Panicked { .. } => {}
        }
        self
    }

    pub(crate) fn io(path: &Path, what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            what: what.into(),
            source,
        }
    }

    pub(crate) fn ffmpeg(path: &Path, what: impl Into<String>, source: ffmpeg::Error) -> Self {
        Self::Ffmpeg {
            path: path.to_path_buf(),
            what: what.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn panicked(path: &Path, thread: impl Into<String>) -> Self {
        Self::Panicked {
            path: path.to_path_buf(),
            thread: thread.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn message_names_the_file_and_the_step_and_keeps_the_cause_as_source() {
        use std::error::Error as _;
        use std::os::unix::ffi::OsStrExt as _;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/videos/clip-\xff.mp4"));
        let err = Error::ffmpeg(path, "cannot open as media", ffmpeg::Error::InvalidData);
        assert_eq!(
            err.to_string(),
            "/videos/clip-\u{fffd}.mp4: cannot open as media"
        );
        assert_eq!(err.path(), path);
        let source = err.source().map(ToString::to_string);
        assert_eq!(
            source,
            Some(ffmpeg::Error::InvalidData.to_string()),
            "the cause is the source"
        );
    }
}
