//! The check every URL a source opens goes through (see `ffi::OpenGuard`):
//! - a local source: each file it opens must be a local file inside the directory the
//!   application allowed (`local_files_under`), resolved first and opened as resolved;
//!   anything else it names (another protocol) is refused;
//! - a network source: each URL it names (a remote playlist's segments and keys) must use a
//!   protocol of its scheme's allow-list. FFmpeg's whitelist refuses the others too, but
//!   as "Invalid data" (or, in a playlist, by skipping the segment): here the refusal says
//!   which URL and which rule, and fails the stream. With `deny_private_networks`, every
//!   address its host resolves to must be public too (raw transports are opened at the
//!   address checked), and redirects are not followed (a failed open that was one says so).

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::config::local::{self, RULE};
use crate::config::network;
use crate::config::source::SourceKind;
use crate::config::StreamConfig;
use crate::error::Error;
use crate::ffi::{OpenGuard, OpenVerdict};
use crate::redact::redact_url;

/// The guard of a config's source; `None` for sources that open nothing through a
/// demuxer's callback (readers, generated graphs, devices) or need no check.
pub(super) fn open_guard(config: &StreamConfig) -> Option<Arc<OpenGuard>> {
    match config.source_kind() {
        SourceKind::File => local_guard(config),
        kind @ SourceKind::Network { scheme } => network_guard(config, kind, scheme),
        _ => None,
    }
}

/// The guard of a network source: every URL it names within its scheme's protocols, and,
/// with `deny_private_networks`, at public addresses only, redirects not followed.
fn network_guard(
    config: &StreamConfig,
    kind: SourceKind<'_>,
    scheme: &str,
) -> Option<Arc<OpenGuard>> {
    let allowed: Vec<String> = kind
        .protocol_whitelist()?
        .split(',')
        .map(str::to_owned)
        .collect();
    let rule = format!(
        "a {scheme} source may reach only {} (a URL it names may not widen that)",
        allowed.join(", ")
    );
    let deny = config.denies_private_networks() && !network::receives_only(scheme, config.source());
    let exceptions = config.allowed_addresses().to_vec();
    let check = move |url: &str| {
        if protocols_of(url).any(|p| !allowed.contains(&p)) {
            return OpenVerdict::Refuse(rule.clone());
        }
        if deny {
            public_only(url, &exceptions)
        } else {
            OpenVerdict::Open
        }
    };
    let guard = OpenGuard::new(Box::new(check));
    let guard = match deny {
        // FFmpeg would follow a redirect inside itself, unchecked: it may not.
        true => guard
            .with_option("max_redirects", "0")
            .with_failure_explained(Box::new(redirected)),
        false => guard,
    };
    Some(Arc::new(guard))
}

/// The network policy on one URL: every address its host resolves to must be public (or
/// one of the `exceptions`); a raw transport (`tcp`, `srt`) is opened at the very address
/// checked.
fn public_only(url: &str, exceptions: &[IpAddr]) -> OpenVerdict {
    let shown = redact_url(url);
    let Some((host, port)) = network::host_port(url) else {
        return OpenVerdict::Refuse(format!(
            "{shown} names no host and port to check; {}",
            network::RULE
        ));
    };
    let addrs: Vec<IpAddr> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.map(|a| a.ip()).collect(),
        Err(e) => {
            return OpenVerdict::Refuse(format!("{host} does not resolve ({e}); {}", network::RULE))
        }
    };
    let bad = addrs
        .iter()
        .filter(|ip| !exceptions.contains(ip))
        .find_map(|ip| network::non_public(*ip).map(|class| (ip, class)));
    if let Some((ip, class)) = bad {
        return OpenVerdict::Refuse(format!(
            "{host} resolves to {ip}, a {class} address; {}",
            network::RULE
        ));
    }
    let Some(first) = addrs.first() else {
        return OpenVerdict::Refuse(format!("{host} resolves to nothing; {}", network::RULE));
    };
    match url.split_once("://") {
        Some((scheme @ ("tcp" | "srt"), rest)) => {
            let after = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
            let literal = match first {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            OpenVerdict::OpenInstead(format!("{scheme}://{literal}:{port}{after}"))
        }
        _ => OpenVerdict::Open,
    }
}

/// Why an http(s) open that the policy let through failed, when it was a redirect (which
/// the policy does not follow): one `HEAD`, no redirect followed, 3 s at most.
fn redirected(url: &str) -> Option<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return None;
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(3)))
        .build()
        .new_agent();
    let response = agent.head(url).call().ok()?;
    if !response.status().is_redirection() {
        return None;
    }
    let location = response.headers().get("location")?.to_str().ok()?;
    Some(format!(
        "the server redirected it to {}, and redirects are not followed: {}",
        redact_url(location),
        network::RULE
    ))
}

/// The protocols FFmpeg opens `url` with, outermost first: `crypto+http://h/k` is
/// `crypto` then `http`; a URL without a scheme is a `file`.
fn protocols_of(url: &str) -> impl Iterator<Item = String> + '_ {
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| local::is_protocol_name(s))
        .unwrap_or("file");
    scheme.split('+').map(str::to_ascii_lowercase)
}

/// The guard of a local source: every file inside the allowed directory.
fn local_guard(config: &StreamConfig) -> Option<Arc<OpenGuard>> {
    let root = config.local_files_root()?.to_path_buf();
    let check = move |url: &str| {
        // An HLS key or encrypted segment is opened through `crypto`, around the file.
        let (wrapper, inner) = match url.strip_prefix("crypto+").or(url.strip_prefix("crypto:")) {
            Some(inner) => (true, inner),
            None => (false, url),
        };
        match local::confine_source(&root, inner) {
            // Opened as resolved: what was checked is what is opened.
            Ok(resolved) if !wrapper => match resolved.to_str() {
                Some(p) => OpenVerdict::OpenInstead(format!("file:{p}")),
                None => OpenVerdict::Refuse("the resolved path is not UTF-8".to_owned()),
            },
            Ok(_) => OpenVerdict::Open,
            Err(why) => OpenVerdict::Refuse(format!("{why}; {RULE}")),
        }
    };
    Some(Arc::new(OpenGuard::new(Box::new(check))))
}

/// The stream's error for a URL its guard refused.
pub(super) fn forbidden((url, rule): (String, String)) -> Error {
    Error::Forbidden {
        url: redact_url(&url).into_owned(),
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instead(v: OpenVerdict) -> String {
        match v {
            OpenVerdict::OpenInstead(url) => url,
            OpenVerdict::Open => "open".into(),
            OpenVerdict::Refuse(why) => format!("refused: {why}"),
        }
    }

    #[test]
    fn raw_transports_connect_to_the_address_checked_and_others_keep_their_name() {
        let allow = ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        let tcp = instead(public_only("tcp://localhost:9000?timeout=5", &allow));
        assert!(
            tcp == "tcp://127.0.0.1:9000?timeout=5" || tcp == "tcp://[::1]:9000?timeout=5",
            "{tcp}"
        );
        assert_eq!(
            instead(public_only("http://127.0.0.1:8080/x", &allow)),
            "open"
        );
        let refused = instead(public_only("srt://127.0.0.1:9000", &[]));
        assert!(
            refused.contains("127.0.0.1, a loopback address"),
            "{refused}"
        );
        let no_port = instead(public_only("srt://127.0.0.1", &allow));
        assert!(no_port.contains("no host and port"), "{no_port}");
    }

    #[test]
    fn protocols_are_read_as_ffmpeg_reads_them() {
        let all = |u| protocols_of(u).collect::<Vec<_>>().join(",");
        assert_eq!(all("crypto+http://h/k"), "crypto,http");
        assert_eq!(all("/etc/passwd"), "file");
        assert_eq!(all("HTTPS://h/x"), "https");
    }
}
