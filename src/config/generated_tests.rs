//! The grammar's unit and property tests (a file of their own to keep `generated.rs` short).

use proptest::prelude::*;

use super::*;

fn refusal(text: &str) -> String {
    GeneratedGraph::parse(text).expect_err(text)
}

#[test]
fn the_grammar_accepts_plain_test_graphs_and_renders_labels() {
    let g = GeneratedGraph::parse(
        "testsrc2=size=160x90:rate=30000/1001:duration=1,scale=w=80:h=46,format=pix_fmts=yuv420p;sine=frequency=440:sample_rate=48000",
    )
    .unwrap();
    assert_eq!(
        g.filter_names().collect::<Vec<_>>(),
        ["testsrc2", "scale", "format", "sine"]
    );
    assert_eq!(
        g.ffmpeg_graph(),
        "testsrc2=size=160x90:rate=30000/1001:duration=1,scale=w=80:h=46,format=pix_fmts=yuv420p[out0];sine=frequency=440:sample_rate=48000[out1]"
    );
    let opts: Vec<_> = g.chains()[0][0].options().collect();
    assert_eq!(opts[1], ("rate", "30000/1001"));
}

#[test]
fn refusals_name_the_filter_option_or_character() {
    assert!(refusal("movie=filename=x").contains("\"movie\" is not allowed"));
    assert!(refusal("testsrc2,drawtext=text=a").contains("\"drawtext\""));
    assert!(refusal("life=f=x").contains("option \"f\" is not allowed"));
    assert!(refusal("cellauto=filename=x").contains("option \"filename\""));
    assert!(refusal("testsrc2=size=/tmp/x").contains("option size: value"));
    assert!(refusal("testsrc2[a'b]").contains("character '['"));
    assert!(refusal("testsrc2=size=1x1\\,movie").contains("character '\\\\'"));
    assert!(refusal("testsrc2@x").contains("character '@'"));
    assert!(refusal("testsrc2 ,scale").contains("character ' '"));
    assert!(refusal("testsrc2=320x240").contains("has no value"));
    assert!(refusal("scale").contains("must start with a generator"));
    assert!(refusal("testsrc2,sine").contains("in the middle of chain 0"));
    assert!(refusal("testsrc2;").contains("chain 1 is empty"));
    assert!(refusal("testsrc2,,scale").contains("an empty filter"));
    assert!(refusal("testsrc2=size=1x1:size=2x2").contains("given twice"));
    assert!(refusal("testsrc2=size=").contains("empty"));
    assert!(refusal("testsrc2=rate=1/2/3").contains("ratio"));
    assert!(refusal(&["sine"; 9].join(";")).contains("more than 8 chains"));
    assert!(refusal(&format!("sine=f={}", "1".repeat(65))).contains("longer than 64"));
}

#[test]
fn every_allowed_filter_is_instantiated_by_libavfilter_as_itself() {
    // A scratch graph per filter: libavfilter knows each name and creates nothing else.
    // Generators alone; each transform after a generator of its kind, with the options a
    // few of them cannot do without.
    let required = |name: &str| match name {
        "format" => "=pix_fmts=yuv420p",
        "aformat" => "=sample_fmts=s16",
        _ => "",
    };
    let mut failed = Vec::new();
    for (name, role, _) in GENERATED_FILTERS {
        let text = match role {
            FilterRole::Generator => name.to_string(),
            FilterRole::Transform if name.starts_with('a') || *name == "volume" => {
                format!("sine,{name}{}", required(name))
            }
            FilterRole::Transform => format!("testsrc2,{name}{}", required(name)),
        };
        let g = GeneratedGraph::parse(&text).unwrap();
        match crate::ffi::instantiated_filters(g.ffmpeg_graph()) {
            Ok(names) => assert_eq!(names, g.filter_names().collect::<Vec<_>>(), "{text}"),
            Err(e) => failed.push(format!("{text}: {e}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// Characters the property test draws from: the grammar's own plus everything FFmpeg's
/// parser treats specially (quotes, escapes, brackets, labels, instance names, spaces).
const ALPHABET: &[char] = &[
    'a', 'e', 'i', 'm', 'o', 'r', 's', 't', 'v', 'x', 'z', '0', '1', '2', '9', '=', ':', ',', ';',
    '[', ']', '\'', '"', '\\', '@', ' ', '/', '.', '-', '+', '_', '\n', '%',
];

/// Fragments that make accepted graphs likely, or that name dangerous filters and keys.
const WORDS: &[&str] = &[
    "testsrc2",
    "sine",
    "scale",
    "format",
    "life",
    "cellauto",
    "movie",
    "amovie",
    "drawtext",
    "sendcmd",
    "zmq",
    "ladspa",
    "frei0r",
    "size",
    "rate",
    "f",
    "filename",
    "textfile",
    "frequency",
    "w",
    "h",
    "160x90",
    "30",
    "1",
    "/tmp/x",
    "out0",
    "[out0]",
];

fn graph_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(ALPHABET).prop_map(String::from),
        proptest::sample::select(WORDS).prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Graphs built from the allow-lists (a generator, then transforms, allowed keys, values
/// from the value alphabet), so that most are accepted and the round trip is exercised.
fn listed_graph() -> impl Strategy<Value = String> {
    let generators: Vec<_> = GENERATED_FILTERS
        .iter()
        .filter(|f| f.1 == FilterRole::Generator)
        .collect();
    let transforms: Vec<_> = GENERATED_FILTERS
        .iter()
        .filter(|f| f.1 == FilterRole::Transform)
        .collect();
    let value =
        proptest::sample::select(&["1", "160x90", "30000/1001", "2.5", "red", "-3", "a+b"][..]);
    let filter = move |pool: Vec<&'static (&'static str, FilterRole, &'static [&'static str])>| {
        (
            proptest::sample::select(pool),
            proptest::collection::vec((any::<proptest::sample::Index>(), value.clone()), 0..3),
        )
            .prop_map(|((name, _, keys), opts)| {
                let opts: Vec<String> = if keys.is_empty() {
                    Vec::new()
                } else {
                    let mut seen = Vec::new();
                    opts.into_iter()
                        .map(|(i, v)| (*i.get(keys), v))
                        .filter(|(k, _)| {
                            if seen.contains(k) {
                                false
                            } else {
                                seen.push(*k);
                                true
                            }
                        })
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect()
                };
                if opts.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}={}", opts.join(":"))
                }
            })
    };
    let chain = (
        filter(generators),
        proptest::collection::vec(filter(transforms), 0..3),
    )
        .prop_map(|(g, t)| std::iter::once(g).chain(t).collect::<Vec<_>>().join(","));
    proptest::collection::vec(chain, 1..3).prop_map(|c| c.join(";"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Every graph built from the lists is accepted and round-trips; the same text with one
    /// character FFmpeg treats specially spliced in anywhere is refused.
    #[test]
    fn listed_graphs_round_trip_and_any_special_character_is_refused(
        text in listed_graph(),
        at in any::<proptest::sample::Index>(),
        special in proptest::sample::select(&['\'', '"', '\\', '[', ']', '@', ' ', '\n', '%', '{'][..]),
    ) {
        let g = GeneratedGraph::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(g.to_string(), text.clone());
        prop_assert_eq!(GeneratedGraph::parse(&g.to_string()), Ok(g));
        let mut spliced = text.clone();
        spliced.insert(at.index(text.len() + 1), special);
        prop_assert!(GeneratedGraph::parse(&spliced).is_err(), "{spliced:?} accepted");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Whatever the text, an accepted graph holds allow-listed filters only, renders to
    /// text that parses back to the same graph, and libavfilter instantiates exactly those
    /// filters from what FFmpeg is given.
    #[test]
    fn accepted_graphs_stay_on_the_list_and_round_trip(text in graph_text()) {
        if let Ok(g) = GeneratedGraph::parse(&text) {
            for name in g.filter_names() {
                prop_assert!(is_allowed_filter(name), "{name} from {text:?}");
            }
            let again = GeneratedGraph::parse(&g.to_string()).expect("canonical text parses");
            prop_assert_eq!(&again, &g);
            let ffmpeg = g.ffmpeg_graph();
            prop_assert!(!ffmpeg.contains(['\'', '"', '\\', '@', ' ']));
            if let Ok(names) = crate::ffi::instantiated_filters(ffmpeg) {
                prop_assert!(names.iter().all(|n| is_allowed_filter(n)), "{names:?}");
                prop_assert_eq!(names.len(), g.filter_names().count());
            }
        }
    }

    /// Printable ASCII at large: the same properties, and nothing panics.
    #[test]
    fn any_ascii_text_is_parsed_or_refused(text in "[ -~]{0,48}") {
        if let Ok(g) = GeneratedGraph::parse(&text) {
            prop_assert!(g.filter_names().all(is_allowed_filter));
            prop_assert_eq!(GeneratedGraph::parse(&g.to_string()), Ok(g));
        }
    }
}
