//! Video encoding: RGB frames in, a playable file out. H.264 (libx264) when this FFmpeg has it,
//! MPEG-4 part 2 (always built in) otherwise; yuv420p; the container from the file extension.
//! The file is written under a hidden temporary name beside the target and renamed into place
//! by [`VideoWriter::finish`], so an interrupted run never leaves a file that looks finished.

use std::ffi::{CStr, OsString};
use std::path::{Path, PathBuf};

use ffmpeg::codec;
use ffmpeg::format::Pixel;
use ffmpeg::format::context::Output;
use ffmpeg::software::scaling;
use ffmpeg::util::frame;
use ffmpeg::{Dictionary, Packet, Rational, encoder, ffi};
use ffmpeg_next as ffmpeg;
use tempfile::{NamedTempFile, TempPath};

use crate::decode::{c_path, init, init_for};
use crate::error::{Error, Result};

/// Largest width or height accepted (H.264 level 6.2 tops out at 8192 x 4320; this is only a
/// sanity bound, the encoder has the last word).
pub const MAX_SIDE: u32 = 16384;
/// Largest frame rate accepted.
pub const MAX_FPS: u32 = 1000;

/// The encoders a [`VideoWriter`] can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 through libx264 (`preset=fast`, `crf=23`): small files, not always compiled in.
    H264,
    /// MPEG-4 part 2, FFmpeg's own encoder (fixed quantiser 4): always available.
    Mpeg4,
    /// FFV1, FFmpeg's own lossless intra-only codec: always available, large files, no motion
    /// vectors (for archives, and for trying what a codec without them gives). Not in MP4.
    Ffv1,
}

impl VideoCodec {
    /// H.264 when this FFmpeg has libx264, MPEG-4 part 2 otherwise. Fails only if FFmpeg
    /// cannot be initialised ([`init`](crate::init)).
    pub fn best_available() -> std::result::Result<Self, ffmpeg::Error> {
        init()?;
        Ok(if encoder::find_by_name("libx264").is_some() {
            Self::H264
        } else {
            Self::Mpeg4
        })
    }

    fn find(self) -> Option<ffmpeg::Codec> {
        match self {
            Self::H264 => encoder::find_by_name("libx264"),
            Self::Mpeg4 => encoder::find(codec::Id::MPEG4),
            Self::Ffv1 => encoder::find(codec::Id::FFV1),
        }
    }
}

/// Writes RGB frames to a video file. Dropping it without [`finish`](Self::finish) abandons
/// the video: the temporary file is removed and nothing appears at the target path.
pub struct VideoWriter {
    path: PathBuf,
    width: u32,
    height: u32,
    codec: VideoCodec,
    output: Output,
    encoder: encoder::Video,
    stream_index: usize,
    encoder_time_base: Rational,
    stream_time_base: Rational,
    scaler: scaling::Context,
    /// The caller's pixels, padded to the encoded (even) size; only swscale reads it.
    rgb: frame::Video,
    packet: Packet,
    frames: u64,
    /// Last field: dropped (the file removed) after `output` has closed it.
    temp: TempPath,
}

impl std::fmt::Debug for VideoWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoWriter")
            .field("path", &self.path)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("codec", &self.codec)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl VideoWriter {
    /// Starts a video at `path` of `width` x `height` RGB frames at `fps` frames per second,
    /// with the best encoder available ([`VideoCodec::best_available`]). The container comes
    /// from the extension: `.mp4`, `.m4v`, `.mov`, `.mkv`, `.avi` or `.ts` (MPEG-TS). yuv420p needs even
    /// sizes: an odd width or height is padded by one column or row repeating the edge, so the
    /// file's size is the given size rounded up to even ([`encoded_size`](Self::encoded_size)).
    pub fn create(path: &Path, width: u32, height: u32, fps: u32) -> Result<Self> {
        let codec = VideoCodec::best_available()
            .map_err(|e| Error::ffmpeg(path, "initialising FFmpeg", e))?;
        Self::create_with(path, width, height, fps, codec)
    }

    /// [`create`](Self::create) with the encoder chosen by the caller.
    pub fn create_with(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        codec: VideoCodec,
    ) -> Result<Self> {
        Self::open(path, width, height, fps, codec).map_err(|e| e.during("creating the video"))
    }

    fn open(path: &Path, width: u32, height: u32, fps: u32, codec: VideoCodec) -> Result<Self> {
        init_for(path)?;
        let invalid = |reason: String| Error::invalid(path, reason);
        let failed = |what: String| move |e| Error::ffmpeg(path, what, e);
        if !((1..=MAX_SIDE).contains(&width) && (1..=MAX_SIDE).contains(&height)) {
            return Err(invalid(format!(
                "frame size {width}x{height} is outside 1x1 to {MAX_SIDE}x{MAX_SIDE}"
            )));
        }
        if !(1..=MAX_FPS).contains(&fps) {
            return Err(invalid(format!(
                "frame rate {fps} is outside 1 to {MAX_FPS}"
            )));
        }
        let container = container_for(path)?;
        let container_name = container.to_string_lossy();
        let (enc_width, enc_height) = (width.next_multiple_of(2), height.next_multiple_of(2));
        let found = codec
            .find()
            .ok_or_else(|| invalid(format!("this FFmpeg has no {codec:?} encoder")))?;

        let temp = temp_beside(path)?;
        let mut output = open_output(&c_path(&temp)?, container)
            .map_err(failed(format!("cannot open {container_name} output")))?;
        let global_header = output
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);

        let fps = fps as i32; // at most MAX_FPS
        let time_base = Rational::new(1, fps);
        let stream_index = {
            let mut stream = output
                .add_stream(found)
                .map_err(failed("adding the video stream".into()))?;
            stream.set_time_base(time_base);
            stream.set_avg_frame_rate(Rational::new(fps, 1));
            stream.index()
        };

        let mut video = codec::context::Context::new_with_codec(found)
            .encoder()
            .video()
            .map_err(failed("setting up the encoder".into()))?;
        video.set_width(enc_width);
        video.set_height(enc_height);
        video.set_format(Pixel::YUV420P);
        video.set_time_base(time_base);
        video.set_frame_rate(Some(Rational::new(fps, 1)));
        // swscale's RGB -> YUV is BT.601 limited range: say so, so players don't guess.
        video.set_colorspace(ffmpeg::color::Space::SMPTE170M);
        video.set_color_range(ffmpeg::color::Range::MPEG);
        video.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
        if container == c"avi" {
            // AVI stores no presentation timestamps: with B-frames, decoders get frames
            // without a time (and ours drops those). Keep decode order = display order.
            video.set_max_b_frames(0);
        }
        let mut flags = codec::Flags::empty();
        if global_header {
            flags |= codec::Flags::GLOBAL_HEADER;
        }
        let mut options = Dictionary::new();
        match codec {
            VideoCodec::H264 => {
                options.set("preset", "fast");
                options.set("crf", "23");
            }
            VideoCodec::Mpeg4 => {
                // Fixed quantiser 4 (its default is a 200 kb/s target whatever the size).
                flags |= codec::Flags::QSCALE;
                video.set_global_quality(4 * ffmpeg::ffi::FF_QP2LAMBDA);
            }
            VideoCodec::Ffv1 => {}
        }
        video.set_flags(flags);
        let encoder = video.open_with(options).map_err(failed(format!(
            "opening the {codec:?} encoder at {enc_width}x{enc_height}"
        )))?;
        let vanished = || invalid("the video stream vanished".into());
        output
            .stream_mut(stream_index)
            .ok_or_else(vanished)?
            .set_parameters(&encoder);

        output
            .write_header()
            .map_err(failed(format!("writing the {container_name} header")))?;
        // The muxer may have chosen its own time base: read it after the header.
        let stream_time_base = output
            .stream(stream_index)
            .ok_or_else(vanished)?
            .time_base();

        let scaler = scaling::Context::get(
            Pixel::RGB24,
            enc_width,
            enc_height,
            Pixel::YUV420P,
            enc_width,
            enc_height,
            scaling::Flags::BILINEAR,
        )
        .map_err(failed("no scaler from RGB24 to YUV420P".into()))?;

        Ok(Self {
            path: path.to_path_buf(),
            width,
            height,
            codec,
            output,
            encoder,
            stream_index,
            encoder_time_base: time_base,
            stream_time_base,
            scaler,
            rgb: frame::Video::new(Pixel::RGB24, enc_width, enc_height),
            packet: Packet::empty(),
            frames: 0,
            temp,
        })
    }

    /// The encoder in use.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Width and height of the video in the file: the given size rounded up to even.
    pub fn encoded_size(&self) -> (u32, u32) {
        (self.rgb.width(), self.rgb.height())
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Adds one frame: `width * height * 3` RGB bytes, row-major.
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let n = self.frames;
        self.push_frame(rgb)
            .map_err(|e| e.during(format_args!("writing frame {n}")))
    }

    fn push_frame(&mut self, rgb: &[u8]) -> Result<()> {
        let (w, h) = (self.width as usize, self.height as usize);
        if rgb.len() != w * h * 3 {
            return Err(Error::invalid(
                &self.path,
                format!(
                    "frame has {} bytes, {w}x{h} RGB needs {}",
                    rgb.len(),
                    w * h * 3
                ),
            ));
        }
        self.fill_rgb(rgb);
        // A fresh YUV frame every time: the encoder may keep a reference to the one it was
        // given (FFmpeg's av_frame_make_writable, which would allow reuse, has no safe wrapper).
        let mut yuv = frame::Video::empty();
        self.scaler
            .run(&self.rgb, &mut yuv)
            .map_err(|e| Error::ffmpeg(&self.path, "converting to YUV", e))?;
        yuv.set_pts(Some(self.frames as i64));
        self.send(Some(&yuv))?;
        self.frames += 1;
        Ok(())
    }

    /// Copies the caller's rows into the staging frame (respecting its stride), repeating the
    /// last column and row into the padding of an odd size.
    fn fill_rgb(&mut self, rgb: &[u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let (enc_w, enc_h) = (self.rgb.width() as usize, self.rgb.height() as usize);
        let stride = self.rgb.stride(0);
        let data = self.rgb.data_mut(0);
        for y in 0..enc_h {
            let src = &rgb[y.min(h - 1) * w * 3..][..w * 3];
            let dst = &mut data[y * stride..][..enc_w * 3];
            dst[..w * 3].copy_from_slice(src);
            if enc_w > w {
                dst[w * 3..].copy_from_slice(&src[(w - 1) * 3..]);
            }
        }
    }

    /// Sends a frame (or end of stream for `None`), then writes every packet that is ready.
    fn send(&mut self, frame: Option<&frame::Video>) -> Result<()> {
        loop {
            let sent = match frame {
                Some(frame) => self.encoder.send_frame(frame),
                None => self.encoder.send_eof(),
            };
            match sent {
                Ok(()) => break,
                // Its output is full: drain it, then the frame goes in. Only legal when
                // draining made room; anything else would loop forever.
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    if self.drain()? == 0 {
                        return Err(Error::invalid(
                            &self.path,
                            "the encoder refuses input but has no output",
                        ));
                    }
                }
                Err(e) => return Err(Error::ffmpeg(&self.path, "encoding", e)),
            }
        }
        self.drain()?;
        Ok(())
    }

    /// Writes the packets the encoder has ready (all of them after end of stream); returns how
    /// many.
    fn drain(&mut self) -> Result<usize> {
        let mut written = 0;
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    self.packet.set_stream(self.stream_index);
                    self.packet
                        .rescale_ts(self.encoder_time_base, self.stream_time_base);
                    self.packet
                        .write_interleaved(&mut self.output)
                        .map_err(|e| Error::ffmpeg(&self.path, "writing a packet", e))?;
                    written += 1;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(written);
                }
                Err(ffmpeg::Error::Eof) => return Ok(written),
                Err(e) => return Err(Error::ffmpeg(&self.path, "encoding", e)),
            }
        }
    }

    /// Flushes the encoder, writes the trailer and renames the file into place; returns the
    /// number of frames written.
    pub fn finish(self) -> Result<u64> {
        self.finish_inner().map_err(|e| e.during("finishing"))
    }

    fn finish_inner(mut self) -> Result<u64> {
        self.send(None)?;
        self.output
            .write_trailer()
            .map_err(|e| Error::ffmpeg(&self.path, "writing the trailer", e))?;
        let Self {
            output,
            temp,
            frames,
            path,
            ..
        } = self;
        drop(output); // closes the file
        persist(temp, &path)?;
        Ok(frames)
    }
}

/// FFmpeg's muxer name for the extension of `path`.
fn container_for(path: &Path) -> Result<&'static CStr> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "mp4" | "m4v" => c"mp4",
        "mov" => c"mov",
        "mkv" => c"matroska",
        "avi" => c"avi",
        "ts" => c"mpegts",
        _ => {
            return Err(Error::invalid(
                path,
                format!("unsupported extension {ext:?}: use .mp4, .m4v, .mov, .mkv, .avi or .ts"),
            ));
        }
    })
}

/// Creates the file `path` for the muxer `format`, as ffmpeg-next's `format::output_as` does
/// but from a C string (see [`c_path`]).
#[allow(unsafe_code)]
fn open_output(path: &CStr, format: &CStr) -> std::result::Result<Output, ffmpeg::Error> {
    let mut ps = std::ptr::null_mut();
    // SAFETY: `path` and `format` are NUL-terminated and outlive the calls. On failure
    // avformat_alloc_output_context2 frees what it allocated and leaves `ps` null; after it
    // succeeds the context is ours: freed here if the file cannot be opened (its `pb` is then
    // still null, nothing else to close), otherwise owned by `Output`, whose drop closes the
    // file (avio_close) and frees the context.
    unsafe {
        let allocated = ffi::avformat_alloc_output_context2(
            &mut ps,
            std::ptr::null(),
            format.as_ptr(),
            path.as_ptr(),
        );
        if allocated < 0 {
            return Err(ffmpeg::Error::from(allocated));
        }
        let opened = ffi::avio_open(&mut (*ps).pb, path.as_ptr(), ffi::AVIO_FLAG_WRITE);
        if opened < 0 {
            ffi::avformat_free_context(ps);
            return Err(ffmpeg::Error::from(opened));
        }
        Ok(Output::wrap(ps))
    }
}

/// A temporary file beside `target` for FFmpeg to write, removed on drop unless persisted:
/// `.NAME.HOST-PID.RANDOM.tmp`, hidden and with no video extension (nothing takes it for a
/// video), and named like the pipeline's other temporary files, so that a sweep of stale ones
/// can tell a killed run's leftover (this host, process gone) from live work.
fn temp_beside(target: &Path) -> Result<TempPath> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::invalid(target, "not a file name"))?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(format!(".{}-{}.", host(), std::process::id()));
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp").rand_bytes(6);
    // tempfile's default is 0600; a video gets the usual 0666 less the umask.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder
        .tempfile_in(dir)
        .map(NamedTempFile::into_temp_path)
        .map_err(|e| Error::io(target, "creating a temporary file beside it", e))
}

/// This machine's name for temporary file names: the kernel's host name with anything but
/// ASCII letters, digits and `-` turned into `_` (so it holds no `.`); `localhost` when it
/// cannot be read.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Fsyncs the finished temporary file (FFmpeg has closed it) and renames it to `target`.
fn persist(temp: TempPath, target: &Path) -> Result<()> {
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(target, format!("syncing {}", temp.display()), e))?;
    temp.persist(target).map_err(|e| {
        Error::io(
            target,
            format!("renaming {} into place", e.path.display()),
            e.error,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, Frame, Sampling, Video};
    use crate::testing::{TestResult, chain, pattern, quadrant_colour, temp_dir};

    fn decode_all(path: &Path, size: u32) -> (Video, Vec<Frame>) {
        let options = DecodeOptions {
            sampling: Sampling::default(),
            size,
            display: None,
            motion: crate::MotionSource::Off,
            read: crate::ReadOptions::default(),
        };
        let mut video = Video::open(path, options).expect("opening the written video");
        let mut frames = Vec::new();
        while let Some(frame) = video.next_frame().expect("decoding") {
            frames.push(frame);
        }
        (video, frames)
    }

    /// Mean colour of the `r`-pixel square centred at (cx, cy) of a square RGB image.
    fn mean_at(rgb: &[u8], side: usize, cx: usize, cy: usize, r: usize) -> [f64; 3] {
        let mut sum = [0.0; 3];
        for y in cy - r..cy + r {
            for x in cx - r..cx + r {
                for c in 0..3 {
                    sum[c] += f64::from(rgb[(y * side + x) * 3 + c]);
                }
            }
        }
        sum.map(|s| s / (4 * r * r) as f64)
    }

    fn round_trip(codec: VideoCodec) -> TestResult {
        let tmp = temp_dir()?;
        let dir = tmp.path();
        let path = dir.join("pattern.mp4");
        let (w, h, n) = (64usize, 48usize, 10usize);
        let mut writer = VideoWriter::create_with(&path, w as u32, h as u32, 10, codec)?;
        for i in 0..n {
            writer.push(&pattern(w, h, i))?;
        }
        assert!(!path.exists(), "nothing at the target before finish");
        assert_eq!(writer.finish()?, n as u64);
        assert!(path.is_file());
        let leftovers = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<Vec<_>>>()?;
        assert_eq!(leftovers, ["pattern.mp4"], "the temporary file is gone");

        // Decoded at size 48: the centre 48x48 of the 64x48 picture, i.e. x from 8 to 56.
        let (video, frames) = decode_all(&path, 48);
        assert_eq!((video.info().width, video.info().height), (64, 48));
        assert_eq!(frames.len(), n);
        for (i, frame) in frames.iter().enumerate() {
            assert!(
                (frame.timestamp - i as f64 / 10.0).abs() < 1e-3,
                "frame {i} at {}",
                frame.timestamp
            );
            // Quadrant centres in the original picture are x = 16 / 48, y = 12 / 36; minus
            // the crop's 8 columns. Sample well inside each quadrant (chroma is subsampled).
            for (qx, qy, cx, cy) in [(0, 0, 8, 12), (1, 0, 40, 12), (0, 1, 8, 36), (1, 1, 40, 36)] {
                let got = mean_at(&frame.rgb, 48, cx, cy, 4);
                let want = quadrant_colour(qx, qy, i);
                for c in 0..3 {
                    assert!(
                        (got[c] - f64::from(want[c])).abs() < 12.0,
                        "{codec:?} frame {i} quadrant ({qx},{qy}): got {got:?}, wrote {want:?}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn round_trip_best_available() -> TestResult {
        round_trip(VideoCodec::best_available()?)
    }

    #[test]
    fn round_trip_mpeg4() -> TestResult {
        round_trip(VideoCodec::Mpeg4)
    }

    #[test]
    fn other_containers() -> TestResult {
        let tmp = temp_dir()?;
        let dir = tmp.path();
        for name in ["a.mkv", "a.avi", "a.mov"] {
            let path = dir.join(name);
            let mut writer = VideoWriter::create(&path, 32, 32, 5)?;
            for i in 0..5 {
                writer.push(&pattern(32, 32, i))?;
            }
            writer.finish()?;
            let (_, frames) = decode_all(&path, 32);
            assert_eq!(frames.len(), 5, "{name}");
        }
        Ok(())
    }

    #[test]
    fn odd_size_is_padded_with_the_edge() -> TestResult {
        let tmp = temp_dir()?;
        let dir = tmp.path();
        let path = dir.join("odd.mkv");
        // 33x33, left 16 columns one colour, the rest another: encoded as 34x34, the extra
        // column repeats the right colour and the extra row repeats the last row.
        let (w, h) = (33usize, 33usize);
        let (left, right) = ([200u8, 80, 40], [40u8, 90, 210]);
        let picture: Vec<u8> = (0..w * h)
            .flat_map(|i| if i % w < 16 { left } else { right })
            .collect();
        let mut writer = VideoWriter::create(&path, w as u32, h as u32, 5)?;
        assert_eq!(writer.encoded_size(), (34, 34));
        for _ in 0..3 {
            writer.push(&picture)?;
        }
        assert_eq!(writer.finish()?, 3);
        let (video, frames) = decode_all(&path, 34);
        assert_eq!((video.info().width, video.info().height), (34, 34));
        assert_eq!(frames.len(), 3);
        // 2x2 patches: inside, across the padding column (x 32-33), the padding row (y 32-33)
        // and the padding corner.
        for (cx, cy, want) in [
            (6, 16, left),
            (26, 16, right),
            (33, 16, right),
            (6, 33, left),
            (33, 33, right),
        ] {
            let got = mean_at(&frames[2].rgb, 34, cx, cy, 1);
            for c in 0..3 {
                assert!(
                    (got[c] - f64::from(want[c])).abs() < 12.0,
                    "at ({cx}, {cy}): got {got:?}, wrote {want:?}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn bad_input_is_an_error_naming_the_file() -> TestResult {
        let tmp = temp_dir()?;
        let dir = tmp.path();
        let path = dir.join("short.mp4");
        let mut writer = VideoWriter::create(&path, 16, 16, 5)?;
        let err = writer
            .push(&[0u8; 16 * 16 * 3 - 1])
            .expect_err("should be refused");
        let msg = chain(&err);
        assert!(
            msg.contains("short.mp4") && msg.contains("767 bytes"),
            "{msg}"
        );
        // Still usable after a rejected frame.
        writer.push(&[0u8; 16 * 16 * 3])?;
        assert_eq!(writer.finish()?, 1);

        for (w, h, fps) in [
            (0, 16, 5),
            (16, 0, 5),
            (16, 16, 0),
            (u32::MAX, 16, 5),
            (16, 16, u32::MAX),
        ] {
            let err = VideoWriter::create(&dir.join("zero.mp4"), w, h, fps)
                .expect_err("should be refused");
            assert!(chain(&err).contains("zero.mp4"), "{}", chain(&err));
        }
        let err =
            VideoWriter::create(&dir.join("clip.xyz"), 16, 16, 5).expect_err("should be refused");
        assert!(
            chain(&err).contains("unsupported extension"),
            "{}",
            chain(&err)
        );
        let err = VideoWriter::create(&dir.join("missing/clip.mp4"), 16, 16, 5)
            .expect_err("should be refused");
        assert!(chain(&err).contains("missing/clip.mp4"), "{}", chain(&err));
        Ok(())
    }

    #[test]
    fn drop_without_finish_leaves_no_file() -> TestResult {
        let tmp = temp_dir()?;
        let dir = tmp.path();
        let path = dir.join("abandoned.mp4");
        let mut writer = VideoWriter::create(&path, 32, 32, 5)?;
        for i in 0..4 {
            writer.push(&pattern(32, 32, i))?;
        }
        let partial = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()?;
        assert_eq!(partial.len(), 1, "one temporary file while writing");
        // Hidden, and no video extension: nothing listing videos takes it for one.
        let name = partial[0]
            .file_name()
            .ok_or("a file name")?
            .to_string_lossy();
        assert!(
            name.starts_with(&format!(
                ".abandoned.mp4.{}-{}.",
                host(),
                std::process::id()
            )) && name.ends_with(".tmp"),
            "{name} looks like a video"
        );
        drop(writer);
        assert_eq!(std::fs::read_dir(dir)?.count(), 0, "nothing left behind");
        Ok(())
    }
}
