//! What a stream reads: the public [`Source`] (a URL, or an application's reader, with an
//! optional forced input format), and what a source is ([`SourceKind`]: a generated
//! (`lavfi:`) graph, a local file, a network URL, a device, a reader) with the protocols
//! each may reach. The one place that reads the `lavfi:` prefix and the scheme (the graph
//! itself is parsed in `generated.rs`).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Seek};

use super::reader::{AppReader, ReaderSource};
use crate::error::{Error, Result};
use crate::ffi::{input_format_kind, InputFormatKind};

/// What [`StreamConfig::source`](crate::StreamConfig::source) says of a reader source, and
/// what errors show in place of a URL.
pub(crate) const READER_LABEL: &str = "<reader>";

/// The protocol whitelist of inputs that must reach no protocol at all: a reader's bytes
/// (a playlist or a concat list inside them opens nothing) and devices.
const NO_PROTOCOL: &str = "none";

/// What a stream reads: a URL (a path, `scheme://...` or `lavfi:<graph>`), or bytes from
/// an application's own [`Read`]; either with an input format forced by name
/// ([`Source::format`]).
///
/// `&str` and `String` convert to a URL source, so
/// `StreamConfig::builder(id, "in.mp4", out)` reads `in.mp4` as before.
///
/// A reader is read on a thread of its own (`sv-<id>-reader`), pulled as FFmpeg needs
/// bytes. `Ok(0)` ends the source; an error fails the stream with [`Error::SourceIo`]
/// keeping its [`io::ErrorKind`] ([`Error::io_kind`]); [`io::ErrorKind::Interrupted`] is
/// retried; a panic fails the stream with [`Error::Panicked`]. A read that blocks does not
/// hold the stream: a reader silent for the config's `io_timeout` stalls the stream
/// ([`Error::SourceStalled`]), and `stop`, `abort` and drop keep their bounds, leaving the
/// thread blocked in `read` behind (named in
/// [`StreamReport::threads_left_behind`](crate::StreamReport::threads_left_behind)). It
/// ends, dropping the reader, when `read` returns: to make it return, close what it reads
/// (the socket, the pipe's write end, the channel's sender) or have it return an error.
///
/// A reader from [`Source::reader`] or [`Source::reader_seekable`] is one-shot: the first
/// run takes it, so the stream is never reconnected (whatever the
/// [`Reconnect`](crate::config::Reconnect) policy), a manager does not restart it, and
/// [`Manager::probe`](crate::Manager::probe) refuses it (declare a
/// [`source_hint`](crate::StreamConfigBuilder::source_hint) instead). A second run of the
/// same config fails with [`Error::InvalidConfig`] (field `source`). A
/// [`Source::reader_factory`] makes a new reader for every open: reconnects, restarts and
/// probes call it. A hardware decoder lost mid-stream cannot resume a reader source on the
/// CPU (the bytes already read are gone).
#[derive(Clone)]
pub struct Source {
    input: SourceInput,
    format: Option<String>,
    /// Backup sources of a live stream, in order of preference ([`Source::backup`]).
    backups: Vec<Source>,
}

/// Where a source's bytes come from.
#[derive(Clone)]
pub(crate) enum SourceInput {
    Url(String),
    Reader(ReaderSource),
}

impl Source {
    /// A URL source: a local path, `scheme://...`, or `lavfi:<graph>`.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            input: SourceInput::Url(url.into()),
            format: None,
            backups: Vec::new(),
        }
    }

    /// Bytes from `reader`, read front to back (a pipe, a socket, a channel). One-shot.
    /// Containers that need seeking (an MP4 whose index, the `moov` box, is at the end)
    /// fail with [`Error::InvalidInput`] saying so: use [`Source::reader_seekable`].
    pub fn reader<R: Read + Send + 'static>(reader: R) -> Self {
        Self::from_reader(ReaderSource::once(AppReader::Stream(Box::new(reader))))
    }

    /// Bytes from a file-like `reader` that FFmpeg may seek (and ask the size of). One-shot.
    pub fn reader_seekable<R: Read + Seek + Send + 'static>(reader: R) -> Self {
        Self::from_reader(ReaderSource::once(AppReader::File(Box::new(reader))))
    }

    /// Bytes from readers that `make` makes: one for every open of the source (the first,
    /// each reconnect, each manager restart, a probe), called on the reader's thread. An
    /// error from `make` is a source error ([`Error::SourceIo`], reconnected per the
    /// policy, like a refused connection).
    pub fn reader_factory<R, F>(make: F) -> Self
    where
        R: Read + Send + 'static,
        F: Fn() -> io::Result<R> + Send + Sync + 'static,
    {
        let make = move || make().map(|r| AppReader::Stream(Box::new(r) as Box<dyn Read + Send>));
        Self::from_reader(ReaderSource::factory(Box::new(make)))
    }

    fn from_reader(reader: ReaderSource) -> Self {
        Self {
            input: SourceInput::Reader(reader),
            format: None,
            backups: Vec::new(),
        }
    }

    /// Adds a backup for a live source (URL sources only; more backups in order of
    /// preference). The backups are opened with the stream and kept warm on threads of
    /// their own (`sv-<id>-in-<n>`: connected, reconnected with the recovery policy's
    /// backoff, their packets since the last keyframe kept, nothing decoded). When the
    /// active source delivers nothing for the input-loss delay
    /// ([`Filler::after`](crate::config::Filler::after), the last frame repeated
    /// meanwhile), the stream switches to the first healthy one at the next frame slot,
    /// and back to the primary once it has been healthy for
    /// [`switch_back_after`](crate::StreamConfigBuilder::switch_back_after). Checked like
    /// the source itself when the config is built (field `source.backups[i]`); an
    /// on-demand stream never uses its backups.
    pub fn backup(mut self, backup: impl Into<Source>) -> Self {
        self.backups.push(backup.into());
        self
    }

    /// The backups, in order of preference.
    pub fn backups(&self) -> &[Source] {
        &self.backups
    }

    /// This source without its backups (what one input opens).
    pub(crate) fn without_backups(&self) -> Source {
        Source {
            input: self.input.clone(),
            format: self.format.clone(),
            backups: Vec::new(),
        }
    }

    /// Forces the input format by FFmpeg's short name (`mpegts`, `h264`, `flv`, ...)
    /// instead of probing. Checked when the config is built: FFmpeg must know the name;
    /// a device (`v4l2`, `alsa`, `x11grab`, `fbdev`, ...) needs
    /// [`allow_device_sources`](crate::StreamConfigBuilder::allow_device_sources) and a URL
    /// source; formats that open their input themselves (`rtsp`, `image2`, ...) and `lavfi`
    /// (use a `lavfi:` source) are refused.
    pub fn format(mut self, name: impl Into<String>) -> Self {
        self.format = Some(name.into());
        self
    }

    /// The URL, secrets included; `None` for a reader.
    pub fn as_url(&self) -> Option<&str> {
        match &self.input {
            SourceInput::Url(u) => Some(u),
            SourceInput::Reader(_) => None,
        }
    }

    /// The forced input format, if any.
    pub fn forced_format(&self) -> Option<&str> {
        self.format.as_deref()
    }

    /// True for a reader source.
    pub fn is_reader(&self) -> bool {
        matches!(self.input, SourceInput::Reader(_))
    }

    /// True when the source can be opened again (a URL, a reader factory); false for a
    /// one-shot reader.
    pub fn can_reopen(&self) -> bool {
        self.reader_source().is_none_or(|r| !r.is_one_shot())
    }

    /// The reader, for a reader source.
    pub(crate) fn reader_source(&self) -> Option<&ReaderSource> {
        match &self.input {
            SourceInput::Reader(r) => Some(r),
            SourceInput::Url(_) => None,
        }
    }

    /// Checks the source (with the config's opt-ins); returns whether its forced format is
    /// a device.
    pub(crate) fn validate(&self, allow_devices: bool) -> Result<bool> {
        if let SourceInput::Url(url) = &self.input {
            validate_url(url)?;
        }
        let Some(name) = self.forced_format() else {
            return Ok(false);
        };
        let refuse = |why: String| Err(Error::config("source.format", why));
        let plain = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !plain {
            return refuse(format!("{name:?} is not a format name ([a-z0-9_]{{1,32}})"));
        }
        if matches!(
            self.as_url().map(SourceKind::of),
            Some(SourceKind::Generated { .. })
        ) {
            return refuse("a generated (lavfi:) source has its own format".into());
        }
        match input_format_kind(name) {
            None => refuse(format!("FFmpeg knows no input format {name:?}")),
            Some(_) if name == "lavfi" => refuse(
                "lavfi is refused as a forced format: use a lavfi: source, whose graph is \
                 checked (allow_generated_sources)"
                    .into(),
            ),
            Some(InputFormatKind::Device) if self.is_reader() => {
                refuse(format!("{name} is a device: it cannot read a reader"))
            }
            Some(InputFormatKind::Device) if !allow_devices => refuse(format!(
                "{name} is a device (camera, sound card, screen...): refused unless the \
                 config opts in with StreamConfigBuilder::allow_device_sources(true)"
            )),
            Some(InputFormatKind::Device) => Ok(true),
            Some(InputFormatKind::OpensItself) => refuse(format!(
                "{name} opens its input itself rather than reading a byte stream: not \
                 allowed as a forced format"
            )),
            Some(InputFormatKind::Stream) => Ok(false),
        }
    }
}

/// A URL source's text: not empty, no NUL byte, at most 8192 bytes.
fn validate_url(url: &str) -> Result<()> {
    let why = if url.trim().is_empty() {
        "empty"
    } else if url.contains('\0') {
        "contains a NUL byte"
    } else if url.len() > 8192 {
        "longer than 8192 bytes"
    } else {
        return Ok(());
    };
    Err(Error::config("source", why))
}

impl From<&str> for Source {
    fn from(url: &str) -> Self {
        Self::url(url)
    }
}

impl From<String> for Source {
    fn from(url: String) -> Self {
        Self::url(url)
    }
}

impl From<&String> for Source {
    fn from(url: &String) -> Self {
        Self::url(url.as_str())
    }
}

impl From<Cow<'_, str>> for Source {
    fn from(url: Cow<'_, str>) -> Self {
        Self::url(url.into_owned())
    }
}

impl From<Box<str>> for Source {
    fn from(url: Box<str>) -> Self {
        Self::url(url)
    }
}

/// A URL with its secrets masked ([`redact_url`](crate::redact_url)), or `<reader>`; and
/// the forced format. Never the reader itself.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.input {
            SourceInput::Url(u) => f.write_str(&crate::redact::redact_url(u))?,
            SourceInput::Reader(_) => f.write_str(READER_LABEL)?,
        }
        match &self.format {
            Some(name) => write!(f, " (format {name})"),
            None => Ok(()),
        }
    }
}

/// Like `Display`: secrets masked, the reader described, never shown.
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.backups.is_empty() {
            return f
                .debug_struct("Source")
                .field("primary", &self.without_backups())
                .field("backups", &self.backups)
                .finish();
        }
        match (&self.input, &self.format) {
            (SourceInput::Url(u), None) => fmt::Debug::fmt(&crate::redact::redact_url(u), f),
            (SourceInput::Url(u), Some(name)) => f
                .debug_struct("Source")
                .field("url", &crate::redact::redact_url(u))
                .field("format", name)
                .finish(),
            (SourceInput::Reader(r), format) => f
                .debug_struct("Source")
                .field("reader", r)
                .field("format", format)
                .finish(),
        }
    }
}

/// The prefix of a generated source: `lavfi:<graph>`.
const GENERATED_PREFIX: &str = "lavfi:";

/// Schemes whose sources are live by nature.
const LIVE_SCHEMES: [&str; 8] = ["rtmp", "rtmps", "srt", "udp", "rtp", "tcp", "rtsp", "rist"];

/// What a source string names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKind<'a> {
    /// A libavfilter graph run by FFmpeg's `lavfi` input (test media).
    Generated {
        /// The graph after `lavfi:`.
        graph: &'a str,
    },
    /// A local file (a path, or a `file:` URL).
    File,
    /// A URL reached over a network.
    Network {
        /// The scheme, e.g. `rtmp`.
        scheme: &'a str,
    },
    /// A URL opened by a device input format the config allowed (`v4l2`, `alsa`, ...).
    Device,
    /// An application's reader.
    Reader,
}

impl<'a> SourceKind<'a> {
    /// Classifies a source string.
    pub(crate) fn of(source: &'a str) -> Self {
        if let Some(graph) = source.strip_prefix(GENERATED_PREFIX) {
            return SourceKind::Generated { graph };
        }
        match scheme(source) {
            Some(s) if s != "file" => SourceKind::Network { scheme: s },
            _ => SourceKind::File,
        }
    }

    /// True for sources live by nature: devices, and the schemes rtmp, srt, udp, rtp, tcp,
    /// rtsp, rist.
    pub(crate) fn is_live_by_nature(self) -> bool {
        match self {
            SourceKind::Device => true,
            SourceKind::Network { scheme } => LIVE_SCHEMES.contains(&scheme),
            _ => false,
        }
    }

    /// True for `http`/`https`: live only when the source has no duration.
    pub(crate) fn is_http(self) -> bool {
        matches!(
            self,
            SourceKind::Network {
                scheme: "http" | "https"
            }
        )
    }

    /// The protocols a source may use: what its scheme needs and nothing else, so a remote
    /// playlist cannot reach `file:` (or `concat:`, `subfile:`, ...) on this machine. A
    /// reader's bytes and a device reach none. `None` for generated graphs, which open no
    /// protocol.
    pub(crate) fn protocol_whitelist(self) -> Option<&'a str> {
        let list = match self {
            SourceKind::Generated { .. } => return None,
            SourceKind::Device | SourceKind::Reader => NO_PROTOCOL,
            SourceKind::File => "file",
            SourceKind::Network { scheme } => match scheme {
                "http" | "https" => "http,https,tcp,tls,crypto,httpproxy",
                "rtmp" | "rtmps" | "rtmpt" | "rtmpts" => "rtmp,rtmps,rtmpt,rtmpts,tcp,tls",
                "rtsp" | "rtsps" => "rtsp,rtsps,rtp,udp,tcp,tls,http,https",
                "srt" => "srt",
                "udp" => "udp",
                "rtp" => "rtp,udp",
                "tcp" => "tcp",
                "tls" => "tls,tcp",
                "rist" => "rist,udp",
                // Another scheme gets only itself (input options may not widen it).
                other => other,
            },
        };
        Some(list)
    }
}

/// The `scheme` of `scheme://...`, if the string has one made of letters, digits and `+`.
fn scheme(source: &str) -> Option<&str> {
    let (s, _) = source.split_once("://")?;
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+')).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_classified_once() {
        assert_eq!(
            SourceKind::of("lavfi:testsrc2"),
            SourceKind::Generated { graph: "testsrc2" }
        );
        assert_eq!(SourceKind::of("/a/b.mp4"), SourceKind::File);
        assert_eq!(SourceKind::of("file:///a/b.mp4"), SourceKind::File);
        assert_eq!(
            SourceKind::of("srt://1.2.3.4:9000"),
            SourceKind::Network { scheme: "srt" }
        );
        assert!(SourceKind::of("srt://1.2.3.4:9000").is_live_by_nature());
        assert!(!SourceKind::of("https://a/b.m3u8").is_live_by_nature());
        assert!(SourceKind::of("https://a/b.m3u8").is_http());
    }

    #[test]
    fn whitelists_follow_the_scheme() {
        assert_eq!(
            SourceKind::of("/x/y.mp4").protocol_whitelist(),
            Some("file")
        );
        assert_eq!(SourceKind::of("lavfi:testsrc").protocol_whitelist(), None);
        assert!(!SourceKind::of("https://a/b.m3u8")
            .protocol_whitelist()
            .unwrap()
            .contains("file"));
        assert_eq!(
            SourceKind::of("gopher://x").protocol_whitelist(),
            Some("gopher")
        );
    }

    #[test]
    fn sources_show_no_secret_and_never_the_reader() {
        let url = Source::from("rtmp://u:SECRET1@h/live/SECRET2").format("flv");
        assert_eq!(url.to_string(), "rtmp://***@h/live/*** (format flv)");
        assert!(!format!("{url:?}").contains("SECRET"));
        assert_eq!(url.as_url(), Some("rtmp://u:SECRET1@h/live/SECRET2"));
        let once = Source::reader(std::io::empty());
        assert_eq!(once.to_string(), READER_LABEL);
        assert_eq!(
            format!("{once:?}"),
            "Source { reader: one-shot, format: None }"
        );
        let file = Source::reader_seekable(std::io::Cursor::new(vec![0u8])).format("mpegts");
        assert_eq!(
            format!("{file:?}"),
            r#"Source { reader: one-shot, seekable, format: Some("mpegts") }"#
        );
        let made = Source::reader_factory(|| Ok(std::io::empty()));
        assert_eq!(
            format!("{made:?}"),
            "Source { reader: factory, format: None }"
        );
        assert!(url.can_reopen() && made.can_reopen() && !once.can_reopen());
        assert!(made.is_reader() && !url.is_reader());
    }

    #[test]
    fn strings_are_url_sources() {
        let s = String::from("/a.ts");
        for source in [
            Source::from("/a.ts"),
            Source::from(s.clone()),
            Source::from(&s),
            Source::from(Cow::Borrowed("/a.ts")),
            Source::from(Box::<str>::from("/a.ts")),
        ] {
            assert_eq!(source.as_url(), Some("/a.ts"));
            assert_eq!(source.forced_format(), None);
        }
    }
}
