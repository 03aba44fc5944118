//! Generated (`lavfi:`) sources: our own strict grammar, parsed before FFmpeg sees anything,
//! and the graph string FFmpeg gets, rendered from the parsed form (never the user's text).
//!
//! ```text
//! graph  = chain *( ";" chain )            at most 8 chains
//! chain  = filter *( "," filter )          a generator first, then transforms; at most 16
//! filter = name [ "=" option *( ":" option ) ]                       at most 16 options
//! option = key "=" value
//! name   = an allow-listed filter ([`GeneratedGraph::is_allowed_filter`])
//! key    = an allow-listed option of that filter (each spelling FFmpeg accepts is listed)
//! value  = 1*64( ALPHA / DIGIT / "." / "+" / "-" )  /  1*DIGIT "/" 1*DIGIT   ; e.g. 30000/1001
//! ```
//!
//! Nothing else is accepted: no quotes, backslashes, brackets, link labels, `@` instance
//! names, spaces, positional (key-less) options, or `/` outside a ratio, so no value can be
//! a path and nothing FFmpeg's own parser would read differently can get through. Filters
//! and options that read files or FIFOs (`movie`, `amovie`, `drawtext` `textfile`/`fontfile`,
//! `life`/`cellauto` `filename`, `sendcmd`, `metadata` `file`), load code (`ladspa`,
//! `frei0r`, `lv2`) or do other I/O (`zmq`, `azmq`) are simply not on the lists. The
//! lavfi input then gets our rendering: the same chains, each ending in a `[outN]` label.

use std::fmt;

/// A generator (first in a chain) or a transform (after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterRole {
    /// Makes frames or samples: `testsrc2`, `sine`, ...
    Generator,
    /// Changes what flows through: `scale`, `format`, `trim`, ...
    Transform,
}

use FilterRole::{Generator as G, Transform as T};

/// Option keys every video generator takes.
const VIDEO_SRC: [&str; 7] = ["size", "s", "rate", "r", "duration", "d", "sar"];

/// The filters a `lavfi:` source may use, their role and the option keys each may set.
/// Anything else is refused when the config is built, naming the filter or the option.
#[rustfmt::skip]
pub(crate) const GENERATED_FILTERS: &[(&str, FilterRole, &[&str])] = &[
    ("testsrc", G, &["size", "s", "rate", "r", "duration", "d", "sar", "decimals", "n"]),
    ("testsrc2", G, &["size", "s", "rate", "r", "duration", "d", "sar", "alpha"]),
    ("smptebars", G, &VIDEO_SRC),
    ("smptehdbars", G, &VIDEO_SRC),
    ("pal75bars", G, &VIDEO_SRC),
    ("pal100bars", G, &VIDEO_SRC),
    ("rgbtestsrc", G, &VIDEO_SRC),
    ("yuvtestsrc", G, &VIDEO_SRC),
    ("nullsrc", G, &VIDEO_SRC),
    ("colorspectrum", G, &["size", "s", "rate", "r", "duration", "d", "sar", "type"]),
    ("color", G, &["color", "c", "size", "s", "rate", "r", "duration", "d", "sar"]),
    ("mandelbrot", G, &["size", "s", "rate", "r", "maxiter", "start_scale", "end_scale", "end_pts", "bailout", "outer", "inner"]),
    ("life", G, &["size", "s", "rate", "r", "random_fill_ratio", "ratio", "random_seed", "seed", "stitch", "mold", "life_color", "death_color", "mold_color"]),
    ("cellauto", G, &["size", "s", "rate", "r", "rule", "random_fill_ratio", "ratio", "random_seed", "seed", "scroll", "start_full", "full", "stitch"]),
    ("gradients", G, &["size", "s", "rate", "r", "c0", "c1", "c2", "c3", "x0", "y0", "x1", "y1", "nb_colors", "n", "seed", "duration", "d", "speed", "type", "t"]),
    ("sine", G, &["frequency", "f", "beep_factor", "b", "sample_rate", "r", "duration", "d", "samples_per_frame"]),
    ("anullsrc", G, &["channel_layout", "cl", "sample_rate", "r", "nb_samples", "n", "duration", "d"]),
    ("anoisesrc", G, &["sample_rate", "r", "amplitude", "a", "duration", "d", "color", "colour", "c", "seed", "s", "nb_samples", "n", "density"]),
    ("realtime", T, &["limit", "speed"]),
    ("arealtime", T, &["limit", "speed"]),
    ("format", T, &["pix_fmts"]),
    ("aformat", T, &["sample_fmts", "f", "sample_rates", "r", "channel_layouts", "cl"]),
    ("scale", T, &["w", "h", "width", "height", "size", "s", "flags", "interl", "force_original_aspect_ratio", "force_divisible_by"]),
    ("fps", T, &["fps", "start_time", "round", "eof_action"]),
    ("setpts", T, &["expr"]),
    ("asetpts", T, &["expr"]),
    ("setsar", T, &["sar", "r", "ratio", "max"]),
    ("setdar", T, &["dar", "r", "ratio", "max"]),
    ("trim", T, &["start", "end", "start_pts", "end_pts", "duration", "start_frame", "end_frame"]),
    ("atrim", T, &["start", "end", "start_pts", "end_pts", "duration", "start_sample", "end_sample"]),
    ("volume", T, &["volume", "precision"]),
    ("aresample", T, &["osr", "out_sample_rate"]),
    ("pad", T, &["width", "w", "height", "h", "x", "y", "color", "aspect"]),
    ("crop", T, &["out_w", "w", "out_h", "h", "x", "y", "keep_aspect", "exact"]),
    ("hflip", T, &[]),
    ("vflip", T, &[]),
    ("null", T, &[]),
    ("anull", T, &[]),
    ("rotate", T, &["angle", "a", "out_w", "ow", "out_h", "oh", "fillcolor", "c", "bilinear"]),
    ("noise", T, &["all_seed", "all_strength", "alls", "all_flags", "allf"]),
    ("drawbox", T, &["x", "y", "width", "w", "height", "h", "color", "c", "thickness", "t", "replace"]),
    ("drawgrid", T, &["x", "y", "width", "w", "height", "h", "color", "c", "thickness", "t", "replace"]),
    ("loop", T, &["loop", "size", "start"]),
    ("aloop", T, &["loop", "size", "start"]),
    ("tpad", T, &["start", "stop", "start_mode", "stop_mode", "start_duration", "stop_duration", "color"]),
    ("apad", T, &["packet_size", "pad_len", "whole_len", "pad_dur", "whole_dur"]),
    ("hue", T, &["h", "s", "H", "b"]),
];

/// At most this many chains (each becomes one stream of the source).
pub(crate) const MAX_CHAINS: usize = 8;
/// At most this many filters in a chain.
pub(crate) const MAX_FILTERS_PER_CHAIN: usize = 16;
/// At most this many options on a filter.
pub(crate) const MAX_OPTIONS: usize = 16;
/// The longest option value.
pub(crate) const MAX_VALUE_LEN: usize = 64;

/// True for a filter name on [`GENERATED_FILTERS`].
pub(crate) fn is_allowed_filter(name: &str) -> bool {
    GENERATED_FILTERS.iter().any(|(n, _, _)| *n == name)
}

/// One filter of a parsed graph: an allow-listed name and its options, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFilter {
    name: &'static str,
    options: Vec<(&'static str, String)>,
}

impl GeneratedFilter {
    /// The filter's name (always one [`GeneratedGraph::is_allowed_filter`] allows).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its options as (key, value), in the order given.
    pub fn options(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.options.iter().map(|(k, v)| (*k, v.as_str()))
    }
}

/// A `lavfi:` graph parsed by [`GeneratedGraph::parse`]: chains of allow-listed filters
/// with allow-listed options. `Display` gives its canonical text (which parses back to the
/// same graph); FFmpeg is given [`GeneratedGraph::ffmpeg_graph`], rendered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedGraph {
    chains: Vec<Vec<GeneratedFilter>>,
    ffmpeg: String,
}

/// Why a graph was refused: a sentence naming the filter, the option or the character.
type GraphError = String;

impl GeneratedGraph {
    /// Parses the text after `lavfi:` with the grammar above.
    ///
    /// # Errors
    /// A sentence naming the filter, option or character refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some((at, c)) = text.char_indices().find(|&(_, c)| !is_graph_char(c)) {
            return Err(format!(
                "lavfi graph: character {c:?} at byte {at} is not accepted (the graph is \
                 name=key=value:key=value filters joined by ',' and ';': no quotes, escapes, \
                 brackets, labels, '@' or spaces)"
            ));
        }
        let chains: Vec<&str> = text.split(';').collect();
        if chains.len() > MAX_CHAINS {
            return Err(format!("lavfi graph: more than {MAX_CHAINS} chains"));
        }
        let chains = chains
            .iter()
            .enumerate()
            .map(|(i, chain)| parse_chain(i, chain))
            .collect::<Result<Vec<_>, _>>()?;
        let ffmpeg = render(&chains, true);
        Ok(Self { chains, ffmpeg })
    }

    /// The chains, in order; each starts with a generator.
    pub fn chains(&self) -> &[Vec<GeneratedFilter>] {
        &self.chains
    }

    /// True for a filter a graph may use: a test generator (`testsrc2`, `smptebars`,
    /// `color`, `sine`, `anoisesrc`, ...) or a plain transform (`scale`, `format`, `trim`,
    /// `fps`, `setpts`, `volume`, ...). Filters that read files, load code or do other I/O
    /// are not on the list.
    ///
    /// ```
    /// use streamvisor::config::GeneratedGraph;
    /// assert!(GeneratedGraph::is_allowed_filter("testsrc2"));
    /// assert!(!GeneratedGraph::is_allowed_filter("movie"));
    /// ```
    pub fn is_allowed_filter(name: &str) -> bool {
        is_allowed_filter(name)
    }

    /// Every filter's name, chain by chain.
    pub fn filter_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.chains.iter().flatten().map(|f| f.name)
    }

    /// What FFmpeg's lavfi input is given: the canonical text with each chain labelled
    /// `[out0]`, `[out1]`, ... (one output stream per chain).
    pub fn ffmpeg_graph(&self) -> &str {
        &self.ffmpeg
    }
}

impl fmt::Display for GeneratedGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(&self.chains, false))
    }
}

/// The characters the grammar is written in; anything else is refused before parsing.
fn is_graph_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.+-/=:,;".contains(c)
}

fn parse_chain(index: usize, chain: &str) -> Result<Vec<GeneratedFilter>, GraphError> {
    if chain.is_empty() {
        return Err(format!("lavfi graph: chain {index} is empty"));
    }
    let filters: Vec<&str> = chain.split(',').collect();
    if filters.len() > MAX_FILTERS_PER_CHAIN {
        return Err(format!(
            "lavfi graph: chain {index} has more than {MAX_FILTERS_PER_CHAIN} filters"
        ));
    }
    let mut parsed = Vec::with_capacity(filters.len());
    for (n, text) in filters.iter().enumerate() {
        let filter = parse_filter(index, text)?;
        let role = role_of(filter.name);
        match (n, role) {
            (0, FilterRole::Transform) => {
                return Err(format!(
                    "lavfi graph: chain {index} must start with a generator (testsrc2, sine, \
                     ...), not {}",
                    filter.name
                ))
            }
            (1.., FilterRole::Generator) => {
                return Err(format!(
                    "lavfi graph: generator {} in the middle of chain {index} (start a new \
                     chain with ';')",
                    filter.name
                ))
            }
            _ => parsed.push(filter),
        }
    }
    Ok(parsed)
}

fn role_of(name: &str) -> FilterRole {
    GENERATED_FILTERS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(FilterRole::Transform, |(_, r, _)| *r)
}

fn parse_filter(chain: usize, text: &str) -> Result<GeneratedFilter, GraphError> {
    let (name, options) = match text.split_once('=') {
        Some((name, options)) => (name, Some(options)),
        None => (text, None),
    };
    if name.is_empty() {
        return Err(format!("lavfi graph: an empty filter in chain {chain}"));
    }
    let Some(&(name, _, keys)) = GENERATED_FILTERS.iter().find(|(n, _, _)| *n == name) else {
        return Err(format!(
            "lavfi filter {name:?} is not allowed (test generators and plain transforms only: \
             {})",
            GENERATED_FILTERS
                .iter()
                .map(|(n, _, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let mut parsed = GeneratedFilter {
        name,
        options: Vec::new(),
    };
    let Some(options) = options else {
        return Ok(parsed);
    };
    let options: Vec<&str> = options.split(':').collect();
    if options.len() > MAX_OPTIONS {
        return Err(format!(
            "lavfi filter {name}: more than {MAX_OPTIONS} options"
        ));
    }
    for option in options {
        let Some((key, value)) = option.split_once('=') else {
            return Err(format!(
                "lavfi filter {name}: option {option:?} has no value (write key=value; \
                 positional options are not accepted)"
            ));
        };
        let Some(&key) = keys.iter().find(|k| **k == key) else {
            return Err(format!(
                "lavfi filter {name}: option {key:?} is not allowed (allowed: {})",
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            ));
        };
        if parsed.options.iter().any(|(k, _)| *k == key) {
            return Err(format!("lavfi filter {name}: option {key} given twice"));
        }
        check_value(value).map_err(|why| {
            format!("lavfi filter {name}: option {key}: value {value:?} is not accepted ({why})")
        })?;
        parsed.options.push((key, value.to_owned()));
    }
    Ok(parsed)
}

/// Values are words, numbers, sizes (`640x360`), durations (`2.5`, `500ms`), colours
/// (`red`, `0xff0000`), flags (`bicubic+accurate_rnd`), expressions made of those
/// (`PTS-STARTPTS`), or a ratio of two integers (`30000/1001`): nothing path-like.
fn check_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("empty");
    }
    if value.len() > MAX_VALUE_LEN {
        return Err("longer than 64 characters");
    }
    let word = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match value.split_once('/') {
        None => word(value),
        Some((num, den)) => digits(num) && digits(den),
    };
    if ok {
        Ok(())
    } else {
        Err("letters, digits, '.', '+' and '-' only; '/' only in a ratio like 30000/1001")
    }
}

/// `name=k=v:k=v,name;name...`, with `[outN]` after each chain for FFmpeg.
fn render(chains: &[Vec<GeneratedFilter>], labels: bool) -> String {
    let mut out = String::new();
    for (i, chain) in chains.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        for (n, filter) in chain.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(filter.name);
            for (k, (key, value)) in filter.options.iter().enumerate() {
                out.push(if k == 0 { '=' } else { ':' });
                out.push_str(key);
                out.push('=');
                out.push_str(value);
            }
        }
        if labels {
            out.push_str(&format!("[out{i}]"));
        }
    }
    out
}

#[cfg(test)]
#[path = "generated_tests.rs"]
mod tests;
