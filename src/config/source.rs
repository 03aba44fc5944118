//! What a source string is: a generated (`lavfi:`) graph, a local file, or a network URL
//! with a scheme; and which protocols each may reach. The one place that reads the `lavfi:`
//! prefix and the scheme (the graph itself is parsed in `generated.rs`).

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
        assert!(SourceKind::of("srt://1.2.3.4:9000").is_live_scheme());
        assert!(!SourceKind::of("https://a/b.m3u8").is_live_scheme());
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
}
