//! The network policy a config may ask for (`deny_private_networks`): which addresses are
//! this machine's or its private networks', and which sources connect out at all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The rule, as refusals name it.
pub(crate) const RULE: &str = "the config refuses private networks \
     (StreamConfigBuilder::deny_private_networks)";

/// What kind of non-public address `ip` is: loopback, private (RFC 1918, unique-local),
/// link-local, unspecified, or another range that never leads to the public internet
/// (CGNAT, benchmarking, IPv4-mapped or -translated forms of those); `None` for a public
/// address. Multicast is not refused here: a multicast source receives, it does not
/// connect.
pub(crate) fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            non_public_v6(v6)
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private (RFC 1918)")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified (this host)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space (CGNAT)")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified (this host)")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique-local")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first == 0x64 && ip.segments()[1] == 0xff9b {
        // NAT64: the IPv4 address it translates to decides.
        let [.., a, b, c, d] = ip.octets();
        non_public_v4(Ipv4Addr::new(a, b, c, d))
    } else {
        None
    }
}

/// True when a source URL of this scheme listens or receives rather than connects out: a
/// `tcp`/`rtmp` listener (`?listen`), an SRT listener (`mode=listener`), `udp`/`rtp` (they
/// bind a local port and receive; multicast joins a group, sending nothing).
pub(crate) fn receives_only(scheme: &str, url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let has = |name: &str, values: &[&str]| {
        query.split('&').any(|pair| match pair.split_once('=') {
            Some((k, v)) => k == name && values.contains(&v),
            None => pair == name && values.contains(&""),
        })
    };
    match scheme {
        "udp" | "rtp" => true,
        "tcp" | "rtmp" | "rtmps" => has("listen", &["", "1", "2"]),
        "srt" => has("mode", &["listener", "rendezvous"]),
        _ => false,
    }
}

/// The host and port of a `scheme://[userinfo@]host[:port]/...` URL (brackets of an IPv6
/// literal removed); the port is the scheme's default when none is written.
pub(crate) fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port(scheme.rsplit('+').next().unwrap_or(scheme))?,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "rtmp" | "rtmpt" => 1935,
        "rtmps" | "rtmpts" => 443,
        "rtsp" => 554,
        "rtsps" => 322,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_named() {
        for (ip, class) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private (RFC 1918)"),
            ("172.16.0.1", "private (RFC 1918)"),
            ("192.168.1.1", "private (RFC 1918)"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified (this host)"),
            ("100.64.0.1", "shared address space (CGNAT)"),
            ("::1", "loopback"),
            ("::", "unspecified (this host)"),
            ("fd00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("::ffff:10.0.0.1", "private (RFC 1918)"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
        ] {
            assert_eq!(non_public(ip.parse().unwrap()), Some(class), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "239.1.1.1"] {
            assert_eq!(non_public(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn hosts_ports_and_listeners() {
        assert_eq!(
            host_port("http://u:p@example.com/x"),
            Some(("example.com".into(), 80))
        );
        assert_eq!(
            host_port("rtmp://[::1]:1936/app"),
            Some(("::1".into(), 1936))
        );
        assert_eq!(host_port("crypto+https://h/k?x=1"), Some(("h".into(), 443)));
        assert_eq!(host_port("srt://h"), None, "no default port");
        assert!(receives_only("tcp", "tcp://0.0.0.0:9000?listen=1"));
        assert!(receives_only("srt", "srt://:9000?mode=listener"));
        assert!(receives_only("udp", "udp://239.1.1.1:5000"));
        assert!(!receives_only("tcp", "tcp://10.0.0.1:9000"));
        assert!(!receives_only("srt", "srt://h:9000?mode=caller"));
    }
}
