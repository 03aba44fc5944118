//! The `lavfi:` grammar on arbitrary text: never panics; whatever it accepts holds
//! allow-listed filters only, renders to text that parses back to the same graph, and gives
//! FFmpeg a string free of everything its parser treats specially.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streamvisor::config::GeneratedGraph;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(graph) = GeneratedGraph::parse(text) else {
        return;
    };
    for name in graph.filter_names() {
        assert!(GeneratedGraph::is_allowed_filter(name), "{name}");
    }
    let canonical = graph.to_string();
    assert_eq!(GeneratedGraph::parse(&canonical).as_ref(), Ok(&graph));
    let ffmpeg = graph.ffmpeg_graph();
    assert!(!ffmpeg.contains(['\'', '"', '\\', '@', ' ', '\n', '\t', '{', '%']), "{ffmpeg}");
    for chain in graph.chains() {
        for filter in chain {
            for (_, value) in filter.options() {
                // No value may be a path: '/' only inside a ratio of two integers.
                if let Some((a, b)) = value.split_once('/') {
                    assert!(!a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()), "{value}");
                    assert!(!b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()), "{value}");
                }
            }
        }
    }
});
