//! What a source may reach, set by the application (never by a config file): generated and
//! device sources, local files and the directory they must be in, the network policy.

use std::path::{Path, PathBuf};

use super::source::SourceKind;
use super::{local, StreamConfig, StreamConfigBuilder};

impl StreamConfigBuilder {
    /// Accepts generated (`lavfi:<graph>`) sources (default: refused). A generated source is
    /// trusted input: only an application's own test media should be one, never a string
    /// from a tenant. Even then the graph is parsed by this crate's strict grammar (an
    /// allow-list of generators, plain transforms and their options; see
    /// [`GeneratedGraph`](super::GeneratedGraph)) and FFmpeg gets a graph rendered from the parsed form.
    pub fn allow_generated_sources(mut self, allow: bool) -> Self {
        self.config.allow_generated = allow;
        self
    }

    /// Accepts local files (a path or a `file:` URL) that resolve inside `dir` (default:
    /// every local file is refused). Symbolic links and `..` are resolved before the check,
    /// so a link pointing out of `dir` is refused; the same rule applies to every file the
    /// source opens while it runs (a local HLS or DASH playlist's segments and keys, an
    /// image sequence), and a refusal then fails the stream with [`Error::Forbidden`](crate::Error::Forbidden).
    /// Like generated sources this is the application's decision, never a tenant's: the
    /// config file form has no such setting (set it here, or on the
    /// [`ManagerBuilder`](crate::ManagerBuilder) for every stream it admits). `dir` must
    /// exist when [`build`](Self::build) runs.
    ///
    /// A concat list (`ffmpeg -f concat`) opens its files through contexts of its own: they
    /// get the protocol whitelist (local files only) and the concat demuxer's safe mode
    /// (relative names of portable characters, no leading dot), which keeps them in the
    /// list's directory by name, but a symbolic link there is followed.
    pub fn local_files_under(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.local_root = Some(dir.into());
        self
    }

    /// Refuses every outbound connection of the source to a non-public address (default:
    /// off): loopback, private (RFC 1918, unique-local), link-local (a cloud's metadata
    /// endpoint at 169.254.169.254), unspecified, CGNAT. Checked on the addresses the host
    /// name resolves to (every one must be public), for the source and for every URL it
    /// names (a remote playlist's segments and keys); a refusal fails the stream with
    /// [`Error::Forbidden`](crate::Error::Forbidden). Raw transports (`tcp://`, `srt://`) then connect to the very
    /// address checked. HTTP redirects are not followed (FFmpeg would follow them inside
    /// itself, unchecked): a redirected source fails, saying where it was sent. Listeners
    /// and receivers (`tcp`/`rtmp` with `listen`, SRT `mode=listener`, `udp`, `rtp`,
    /// multicast included) bind rather than connect and are not affected.
    ///
    /// A multi-tenant application that takes source URLs from its users should turn it
    /// on. What stays open: DNS rebinding for names FFmpeg resolves again itself after the
    /// check (http, https, rtmp, rtsp), within the name's TTL.
    pub fn deny_private_networks(mut self, deny: bool) -> Self {
        self.config.deny_private = deny;
        self
    }

    /// Non-public addresses the source may reach even with
    /// [`deny_private_networks`](Self::deny_private_networks) on: an origin of the
    /// application's own on its private network, named by exact address (a host name is
    /// checked on what it resolves to).
    pub fn allow_addresses(
        mut self,
        addresses: impl IntoIterator<Item = std::net::IpAddr>,
    ) -> Self {
        self.config.allowed_addresses.extend(addresses);
        self
    }

    /// Accepts device input formats forced on a URL source with [`Source::format`](crate::Source::format)
    /// (default: refused): `v4l2` cameras, `alsa` sound cards, `x11grab` screens, `fbdev`,
    /// ... A device reads this machine's hardware, so only an application's own
    /// configuration should name one, never a tenant's. (`lavfi` is refused even then: use
    /// a `lavfi:` source.)
    pub fn allow_device_sources(mut self, allow: bool) -> Self {
        self.config.allow_devices = allow;
        self
    }
}

impl StreamConfig {
    /// The same config under a manager's source rules: local files confined to `root` (the
    /// source itself must be inside: `Err` with the reason otherwise), and the network
    /// policy on when `deny_private`.
    pub(crate) fn under_rules(
        mut self,
        root: Option<&Path>,
        deny_private: bool,
    ) -> std::result::Result<Self, String> {
        self.deny_private |= deny_private;
        if let (Some(root), SourceKind::File) = (root, self.source_kind()) {
            let source = self.source.as_url().unwrap_or_default();
            local::confine_source(root, source)?;
            self.local_root = Some(root.to_path_buf());
        }
        Ok(self)
    }
}
