//! Where video comes from: a file, a URL FFmpeg's protocols open, standard input, or a capture
//! device (or other demuxer) named with an input format; and what counts as live.
//!
//! A source is named in messages by [`Source::name`], with any credentials in a URL
//! ([`redact`]ed): the name is all this crate ever prints or puts in an error.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Demuxers that read capture devices or generate video: their sources are live.
const DEVICES: [&str; 12] = [
    "lavfi",
    "v4l2",
    "video4linux2",
    "x11grab",
    "kmsgrab",
    "fbdev",
    "avfoundation",
    "dshow",
    "gdigrab",
    "decklink",
    "android_camera",
    "vfwcap",
];

/// URL schemes of network streams that have no end: always live.
const LIVE_SCHEMES: [&str; 9] = [
    "rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "tcp", "srt", "mmsh",
];

/// Schemes that may serve a finished file or a live stream: live when the stream has no
/// known duration.
const MAYBE_LIVE_SCHEMES: [&str; 3] = ["http", "https", "hls"];

/// Where a video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    input: Input,
    /// The demuxer to use (FFmpeg's `-f`), instead of guessing from the data.
    format: Option<String>,
    /// Read at the stream's own rate, as if it were live (the ffmpeg CLI's `-re`).
    realtime: bool,
    /// Options for the demuxer or protocol, by FFmpeg's names (`rtsp_transport=tcp`).
    options: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    File(PathBuf),
    /// A URL with a scheme other than `file`; kept as given, printed redacted.
    Url(String),
    /// Standard input (FFmpeg's `pipe:0`).
    Stdin,
    /// A device or generator, given to its demuxer as it is (`/dev/video0`, `testsrc2=rate=25`).
    Device(OsString),
}

/// How a source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// A file (or a finished file over http): read as fast as it decodes, every frame kept.
    File,
    /// Standard input: records as they happen, but every frame kept and no reconnecting.
    Streamed,
    /// A camera, a network stream, a generator, or anything under `realtime`: kept current,
    /// frames dropped when the analysis falls behind.
    Live,
}

impl Source {
    /// A file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            input: Input::File(path.into()),
            format: None,
            realtime: false,
            options: Vec::new(),
        }
    }

    /// A source as a user names it on the command line: `-` is standard input, `scheme://...`
    /// a URL (`file://` a file), anything else a file; with `format` the name of a capture
    /// device's or generator's demuxer (`v4l2`, `lavfi`, ...), the argument goes to it as it is.
    pub fn parse(arg: &OsStr, format: Option<&str>) -> Self {
        let format = format.map(str::to_string);
        let input = match (arg.to_str(), &format) {
            (_, Some(f)) if DEVICES.contains(&f.as_str()) => Input::Device(arg.to_os_string()),
            (Some("-"), _) => Input::Stdin,
            (Some(s), _) => match scheme(s) {
                Some(scheme) if scheme.eq_ignore_ascii_case("file") => {
                    Input::File(PathBuf::from(&s[scheme.len() + 3..]))
                }
                Some(_) => Input::Url(s.to_string()),
                None => Input::File(PathBuf::from(s)),
            },
            (None, _) => Input::File(PathBuf::from(arg)),
        };
        Self {
            input,
            format,
            realtime: false,
            options: Vec::new(),
        }
    }

    /// The same source, read at its own rate when `realtime` (like the ffmpeg CLI's `-re`).
    pub fn realtime(mut self, realtime: bool) -> Self {
        self.realtime = realtime;
        self
    }

    /// The same source opened with these demuxer or protocol options, by FFmpeg's names
    /// (`rtsp_transport=tcp`, `rtsp_flags=listen`, `video_size=1280x720`, ...).
    pub fn with_options(mut self, options: Vec<(String, String)>) -> Self {
        self.options = options;
        self
    }

    /// Its demuxer or protocol options.
    pub fn options(&self) -> &[(String, String)] {
        &self.options
    }

    /// The file, for a file source.
    pub fn path(&self) -> Option<&Path> {
        match &self.input {
            Input::File(path) => Some(path),
            _ => None,
        }
    }

    /// The name to show people: the path, the URL with its credentials [`redact`]ed,
    /// `standard input`, or the device with its format (`lavfi:testsrc2`).
    pub fn name(&self) -> String {
        match &self.input {
            Input::File(path) => path.display().to_string(),
            Input::Url(url) => redact(url),
            Input::Stdin => "standard input".into(),
            Input::Device(name) => format!(
                "{}:{}",
                self.format.as_deref().unwrap_or("device"),
                name.to_string_lossy()
            ),
        }
    }

    /// A short name for a file named after the source: the file's stem, or the URL's host
    /// and path (redacted), or the device, with anything but letters, digits, `-`, `_` and `.`
    /// made `_`.
    pub fn stem(&self) -> String {
        let raw = match &self.input {
            Input::File(path) => path
                .file_stem()
                .map_or_else(|| "video".into(), |s| s.to_string_lossy().into_owned()),
            Input::Url(url) => {
                let redacted = redact(url);
                let rest = redacted.split_once("://").map_or(&*redacted, |(_, r)| r);
                let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                rest.split(['?', '#']).next().unwrap_or(rest).to_string()
            }
            Input::Stdin => "stdin".into(),
            Input::Device(name) => format!(
                "{}-{}",
                self.format.as_deref().unwrap_or("device"),
                name.to_string_lossy()
            ),
        };
        let cleaned: String = raw
            .trim_matches('/')
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
                _ => '_',
            })
            .take(80)
            .collect();
        if cleaned.is_empty() {
            "video".into()
        } else {
            cleaned
        }
    }

    /// How the source is read, once opened: `has_duration` says whether the container gave a
    /// duration (an http URL without one is a live stream).
    pub fn liveness(&self, has_duration: bool) -> Liveness {
        if self.realtime {
            return Liveness::Live;
        }
        match &self.input {
            Input::File(_) => Liveness::File,
            Input::Stdin => Liveness::Streamed,
            Input::Device(_) => Liveness::Live,
            Input::Url(url) => {
                let scheme = scheme(url).unwrap_or("").to_ascii_lowercase();
                if LIVE_SCHEMES.contains(&scheme.as_str())
                    || (MAYBE_LIVE_SCHEMES.contains(&scheme.as_str()) && !has_duration)
                {
                    Liveness::Live
                } else {
                    Liveness::File
                }
            }
        }
    }

    /// Whether a dropped connection can be opened again: network streams (not one played
    /// under `realtime`, a file that would start again from its beginning).
    pub fn reconnectable(&self) -> bool {
        matches!(self.input, Input::Url(_)) && !self.realtime
    }

    /// Whether it is read at its own rate: `realtime` was asked for, or the source is a
    /// generator (lavfi makes frames as fast as they are read).
    pub fn is_paced(&self) -> bool {
        self.realtime || self.format.as_deref() == Some("lavfi")
    }

    /// Whether `realtime` was asked for.
    pub fn is_realtime(&self) -> bool {
        self.realtime
    }

    /// Standard input.
    pub fn is_stdin(&self) -> bool {
        self.input == Input::Stdin
    }

    /// The demuxer asked for, if any.
    pub fn format(&self) -> Option<&str> {
        self.format.as_deref()
    }

    /// What FFmpeg opens: the path, URL or device name as given, `pipe:0` for standard input.
    pub(crate) fn url(&self) -> OsString {
        match &self.input {
            Input::File(path) => path.as_os_str().to_os_string(),
            Input::Url(url) => OsString::from(url),
            Input::Stdin => OsString::from("pipe:0"),
            Input::Device(name) => name.clone(),
        }
    }

    /// What errors about the source name: the file's path, or the redacted name.
    pub(crate) fn error_name(&self) -> PathBuf {
        match &self.input {
            Input::File(path) => path.clone(),
            _ => PathBuf::from(self.name()),
        }
    }
}

impl From<&Path> for Source {
    fn from(path: &Path) -> Self {
        Self::file(path)
    }
}

/// The URL scheme of `s` (`rtsp` of `rtsp://...`), if it starts with one: a letter, then
/// letters, digits, `+`, `-` or `.`, then `://`.
fn scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Query parameters whose values are secrets, by a part of their name (case-insensitive).
const SECRET_KEYS: [&str; 9] = [
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "signature",
    "sig",
    "credential",
];

/// `url` with its secrets replaced by `***`: the password of its user information
/// (`rtsp://admin:***@cam/live`; a user name without a password, often a token, goes whole:
/// `https://***@host/`), and the values of query parameters named like a secret
/// (`?token=***`). Anything that is not a URL comes back as it is.
pub fn redact(url: &str) -> String {
    let Some(scheme) = scheme(url) else {
        return url.to_string();
    };
    let rest = &url[scheme.len() + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some(("", _)) => authority.to_string(),
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        None => tail.to_string(),
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if is_secret(key) => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            let mut tail = format!("{path}?{}", pairs.join("&"));
            if let Some(f) = fragment {
                tail.push('#');
                tail.push_str(f);
            }
            tail
        }
    };
    format!("{scheme}://{authority}{tail}")
}

fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// Whether `format` names a capture device's or generator's demuxer.
pub fn is_device_format(format: &str) -> bool {
    DEVICES.contains(&format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arg: &str, format: Option<&str>) -> Source {
        Source::parse(OsStr::new(arg), format)
    }

    #[test]
    fn arguments_become_files_urls_stdin_or_devices() {
        assert_eq!(parse("clip.mp4", None), Source::file("clip.mp4"));
        assert_eq!(
            parse("file:///v/clip.mp4", None),
            Source::file("/v/clip.mp4")
        );
        assert_eq!(parse("-", None).name(), "standard input");
        assert!(parse("-", None).is_stdin());
        let url = parse("rtsp://cam.local:554/live", None);
        assert_eq!(url.name(), "rtsp://cam.local:554/live");
        assert_eq!(url.path(), None);
        assert!(url.reconnectable());
        let lavfi = parse("testsrc2=rate=25", Some("lavfi"));
        assert_eq!(lavfi.name(), "lavfi:testsrc2=rate=25");
        assert_eq!(lavfi.url(), OsString::from("testsrc2=rate=25"));
        assert!(!lavfi.reconnectable());
        // A demuxer that is not a device reads a file.
        assert_eq!(
            parse("clip.ts", Some("mpegts")).path(),
            Some(Path::new("clip.ts"))
        );
        // Not a scheme: a file whose name has "://" in it after something else.
        assert!(parse("my clip://x", None).path().is_some());
    }

    #[test]
    fn liveness_by_kind_scheme_and_duration() {
        assert_eq!(parse("a.mp4", None).liveness(true), Liveness::File);
        assert_eq!(
            parse("a.mp4", None).realtime(true).liveness(true),
            Liveness::Live
        );
        assert_eq!(parse("-", None).liveness(false), Liveness::Streamed);
        assert_eq!(
            parse("/dev/video0", Some("v4l2")).liveness(false),
            Liveness::Live
        );
        for live in [
            "rtsp://h/x",
            "udp://127.0.0.1:5000",
            "tcp://h:1",
            "SRT://h:1",
        ] {
            assert_eq!(parse(live, None).liveness(true), Liveness::Live, "{live}");
        }
        assert_eq!(
            parse("https://h/a.mp4", None).liveness(true),
            Liveness::File
        );
        assert_eq!(
            parse("https://h/live.m3u8", None).liveness(false),
            Liveness::Live
        );
    }

    #[test]
    fn credentials_never_reach_a_name() {
        assert_eq!(
            redact("rtsp://admin:hunter2@10.0.0.5:554/stream1"),
            "rtsp://admin:***@10.0.0.5:554/stream1"
        );
        assert_eq!(redact("https://tok3n@host/x"), "https://***@host/x");
        assert_eq!(
            redact("https://h/live.m3u8?channel=4&token=abc&Api_Key=k#t"),
            "https://h/live.m3u8?channel=4&token=***&Api_Key=***#t"
        );
        assert_eq!(redact("udp://@:5000"), "udp://@:5000");
        assert_eq!(redact("clip.mp4"), "clip.mp4");
        // An @ in the path is not user information.
        assert_eq!(redact("http://h/a@b"), "http://h/a@b");
        let source = parse("rtsp://u:s3cret@cam/live?pwd=s3cret", None);
        assert!(!source.name().contains("s3cret"), "{}", source.name());
        assert!(!source.stem().contains("s3cret"), "{}", source.stem());
        assert!(!source.error_name().to_string_lossy().contains("s3cret"));
    }

    #[test]
    fn stems_are_file_name_safe() {
        assert_eq!(parse("/v/clip.mp4", None).stem(), "clip");
        assert_eq!(
            parse("rtsp://u:p@cam.local:554/live/1?x=2", None).stem(),
            "cam.local_554_live_1"
        );
        assert_eq!(parse("-", None).stem(), "stdin");
        assert_eq!(
            parse("testsrc2=rate=25", Some("lavfi")).stem(),
            "lavfi-testsrc2_rate_25"
        );
    }
}
