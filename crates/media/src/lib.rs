//! Video in and out through FFmpeg, for a pipeline that works on frames.
//!
//! - Decoding ([`Decoding`], [`Video`]): demux and multi-threaded decode of any file FFmpeg
//!   reads, frames picked by timestamp ([`Sampling`]: every frame, a clock in frames per second,
//!   a stride, key frames only, a time window), each taken frame scaled once to a square RGB24
//!   model input (shorter side to the size, centre crop, display rotation applied), handed over
//!   through a bounded queue so memory stays flat however long the video is. Damaged packets
//!   and frames are skipped and counted ([`DecodeReport`]), not fatal.
//! - Motion ([`motion`]): per sample, the camera's pan, zoom and roll and the objects' motion,
//!   from the codec's own motion vectors as they are decoded, or estimated from the pixels
//!   where the codec has none.
//! - Sources ([`Source`]): files, URLs of any protocol FFmpeg has (rtsp, http, udp, tcp,
//!   srt...), standard input, and capture devices or generators (`v4l2`, `lavfi`) by their
//!   demuxer. Live ones are kept current: a read timeout, reconnects, frames dropped before
//!   conversion when the consumer falls behind, skipping to a key frame when decoding does
//!   ([`ReadOptions`], [`Liveness`]). Credentials in URLs are never printed ([`redact`]).
//! - Probing ([`probe`]): the video stream's codec, size, rotation and duration, without
//!   decoding a frame.
//! - Encoding ([`VideoWriter`]): RGB frames to an H.264 (or MPEG-4 part 2) file, written under
//!   a temporary name and renamed into place when finished.
//!
//! What it does not do: audio, subtitles, hardware decoding, filters; it knows nothing of
//! tensors, models or the command line. Every FFmpeg option given to the demuxer and the decoder is
//! built in one place (the `options` module).
//!
//! Errors are one [`Error`] type naming the file (or the redacted source); FFmpeg's and the OS's errors are its
//! [`source`](std::error::Error::source), so print the whole chain (anyhow's `{:#}`).
//!
//! File names need not be UTF-8 (on Unix, their bytes go to FFmpeg as they are).

mod decode;
mod encode;
mod error;
pub mod motion;
mod options;
mod source;
#[cfg(test)]
mod testing;

pub use decode::{
    Decision, DecodeOptions, DecodeReport, Decoding, DisplayFrame, Every, Frame, Frames,
    ReadOptions, Sampler, Sampling, Video, VideoInfo, converters, init, probe,
};
pub use encode::{MAX_FPS, MAX_SIDE, VideoCodec, VideoWriter};
pub use error::{Error, Result};
pub use motion::{Motion, MotionSource};
pub use source::{Liveness, Source, is_device_format, redact};
