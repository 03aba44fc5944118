//! What a source string is: a generated (`lavfi:`) graph, a local file, or a network URL
//! with a scheme; which protocols each may reach; which filters a generated graph may use.
//! The one place that reads the `lavfi:` prefix and the scheme.

use crate::error::{Error, Result};

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

    /// True for schemes that are live by nature (rtmp, srt, udp, rtp, tcp, rtsp, rist).
    pub(crate) fn is_live_scheme(self) -> bool {
        matches!(self, SourceKind::Network { scheme } if LIVE_SCHEMES.contains(&scheme))
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

    /// What FFmpeg opens: the URL and the forced input format. A generated graph goes to
    /// the `lavfi` input with its `;`-separated chains labelled `[outN]`, so a video chain
    /// and an audio chain become two streams.
    pub(crate) fn ffmpeg_input(self, source: &str) -> (String, Option<&'static str>) {
        match self {
            SourceKind::Generated { graph } => {
                let chains: Vec<String> = graph
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .enumerate()
                    .map(|(i, c)| {
                        if c.contains("[out") {
                            c.to_owned()
                        } else {
                            format!("{c}[out{i}]")
                        }
                    })
                    .collect();
                (chains.join(";"), Some("lavfi"))
            }
            _ => (source.to_owned(), None),
        }
    }

    /// The protocols a source may use: what its scheme needs and nothing else, so a remote
    /// playlist cannot reach `file:` (or `concat:`, `subfile:`, ...) on this machine. `None`
    /// for generated graphs, which open no protocol.
    pub(crate) fn protocol_whitelist(self) -> Option<&'a str> {
        let list = match self {
            SourceKind::Generated { .. } => return None,
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
                // Another scheme gets only itself; input_options can widen it deliberately.
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

/// Filters a `lavfi:` source may use: generators and plain transforms. Filters that read or
/// write files (`movie`, `subtitles`, stats files), open sockets or load code are refused:
/// a `lavfi:` source is test media, not a way around the protocol allow-list.
const GENERATED_FILTERS: [&str; 48] = [
    "testsrc",
    "testsrc2",
    "smptebars",
    "smptehdbars",
    "rgbtestsrc",
    "yuvtestsrc",
    "pal75bars",
    "pal100bars",
    "colorspectrum",
    "color",
    "nullsrc",
    "mandelbrot",
    "life",
    "cellauto",
    "gradients",
    "sine",
    "anoisesrc",
    "anullsrc",
    "aevalsrc",
    "realtime",
    "arealtime",
    "format",
    "aformat",
    "scale",
    "fps",
    "setpts",
    "asetpts",
    "setsar",
    "setdar",
    "trim",
    "atrim",
    "volume",
    "aresample",
    "pad",
    "crop",
    "hflip",
    "vflip",
    "rotate",
    "null",
    "anull",
    "noise",
    "drawbox",
    "drawgrid",
    "loop",
    "aloop",
    "tpad",
    "apad",
    "hue",
];

/// Refuses a generated-source graph that names a filter outside [`GENERATED_FILTERS`].
pub(crate) fn check_generated(graph: &str) -> Result<()> {
    for chain in graph.split(';') {
        for filter in chain.split(',') {
            // Drop link labels ("[out0]") and instance names ("name@id").
            let mut name = String::new();
            let mut in_label = false;
            for ch in filter.chars() {
                match ch {
                    '[' => in_label = true,
                    ']' => in_label = false,
                    _ if !in_label => name.push(ch),
                    _ => {}
                }
            }
            let name = name.trim();
            let name = name.split(['=', '@']).next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            if !GENERATED_FILTERS.contains(&name) {
                return Err(Error::config(
                    "source",
                    format!("lavfi filter {name:?} is not allowed (test sources and plain transforms only)"),
                ));
            }
        }
    }
    Ok(())
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
        assert!(SourceKind::of("srt://1.2.3.4:9000").is_live_scheme());
        assert!(!SourceKind::of("https://a/b.m3u8").is_live_scheme());
        assert!(SourceKind::of("https://a/b.m3u8").is_http());
    }

    #[test]
    fn generated_chains_get_labels() {
        let g = SourceKind::of("lavfi:testsrc2=size=640x360;sine=f=440");
        assert_eq!(
            g.ffmpeg_input("lavfi:testsrc2=size=640x360;sine=f=440"),
            (
                "testsrc2=size=640x360[out0];sine=f=440[out1]".to_owned(),
                Some("lavfi")
            )
        );
        let f = SourceKind::of("/a/b.mp4");
        assert_eq!(f.ffmpeg_input("/a/b.mp4"), ("/a/b.mp4".to_owned(), None));
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
}
