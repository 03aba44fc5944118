//! Input options a config may not set: those that decide what a source may reach. The
//! crate sets the protocol whitelist itself, from the source's scheme (`source.rs`), and
//! FFmpeg's demuxers keep gates of their own (the segment files a playlist may name, unsafe
//! paths, external references, a graph read from a file). An input option that opened one
//! of them would let a source from a tenant reach this machine's files (a remote HLS
//! playlist listing `file:///...`), so `StreamConfigBuilder::build` refuses these keys,
//! compared case-insensitively, as `AVDictionary` compares them.
//!
//! Looked at and left allowed (FFmpeg 5.1): concat's `auto_convert` and file's `follow`
//! (what is read, not where from); tls's `ca_file`/`cert_file`/`key_file` (read as
//! certificates and keys, nothing of them shown); `http_proxy`, `listen` and the like (the
//! source URL itself may already name any host or listen).

/// Refused input option keys, each with what it would open.
const REFUSED: [(&str, &str); 13] = [
    (
        "protocol_whitelist",
        "the protocols a source may use follow from its scheme",
    ),
    (
        "protocol_blacklist",
        "the protocols a source may use follow from its scheme",
    ),
    (
        "format_whitelist",
        "the demuxers a source may use are the crate's to set",
    ),
    (
        "codec_whitelist",
        "the decoders a source may use are the crate's to set",
    ),
    (
        "allowed_extensions",
        "it widens the files an HLS or DASH playlist may name",
    ),
    (
        "allowed_segment_extensions",
        "it widens the files an HLS playlist may name",
    ),
    (
        "extension_picky",
        "it lets an HLS segment be read as another format than its name says",
    ),
    (
        "seg_format_options",
        "it sets options, these included, on every HLS segment's demuxer",
    ),
    ("safe", "it lets a concat list name any path"),
    (
        "use_absolute_path",
        "it lets an MP4/MOV file open absolute paths it names",
    ),
    (
        "enable_drefs",
        "it lets an MP4/MOV file open external tracks it names",
    ),
    (
        "graph",
        "it replaces a generated source's checked graph with an unchecked one",
    ),
    ("graph_file", "it reads a filter graph from a file"),
];

/// Why `key` may not be set as an input option, if it may not.
pub(crate) fn refused(key: &str) -> Option<&'static str> {
    REFUSED
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|&(_, why)| why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_widen_the_reach_are_refused_in_any_case() {
        assert!(refused("protocol_whitelist").is_some());
        assert!(refused("Protocol_Whitelist").is_some());
        assert!(refused("graph_file").is_some());
        assert_eq!(refused("rtsp_transport"), None);
        assert_eq!(refused("rw_timeout"), None);
    }
}
