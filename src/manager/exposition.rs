//! The metrics page, written by `prometheus-client` in the OpenMetrics 1.0 text format
//! ([`CONTENT_TYPE`]): one `# HELP` and one `# TYPE` line per family, then its samples,
//! `# EOF` last. The library owns the format (escaping, numbers, suffixes); this module
//! gathers the families and samples [`metrics`](super::metrics) reads.
//!
//! Names here are the sample names a scraper stores: a counter's end in `_total`. OpenMetrics
//! declares a counter family without that suffix (`# TYPE streamvisor_restarts counter`) and
//! the encoder adds it to every sample (`streamvisor_restarts_total 0`), so the suffix is
//! taken off the family name here and the samples keep the documented names.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The page's HTTP content type: OpenMetrics text, version 1.0.0.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Only goes up (resets when its process or stream restarts); its name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value {
    /// A count, written exactly.
    Int(u64),
    /// Anything else.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<std::time::Duration> for Value {
    fn from(d: std::time::Duration) -> Self {
        Value::Float(d.as_secs_f64())
    }
}

/// A sample's labels: names are ours (static), values may come from users (stream ids).
type Labels = Vec<(&'static str, String)>;

/// One family: what it is, and its samples in order.
#[derive(Debug)]
struct FamilyData {
    /// The sample name (a counter's ends in `_total`).
    name: &'static str,
    kind: Kind,
    help: &'static str,
    samples: Vec<(Labels, Value)>,
}

/// A page of metrics being gathered; [`finish`](Self::finish) encodes it.
#[derive(Debug, Default)]
pub(super) struct Exposition {
    families: Vec<FamilyData>,
}

/// True for a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), or label name with `colon`
/// false (`[a-zA-Z_][a-zA-Z0-9_]*`). The encoder writes names as given.
fn valid_name(name: &str, colon: bool) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
    name.chars().next().is_some_and(|c| !c.is_ascii_digit()) && name.chars().all(ok)
}

impl Exposition {
    /// Starts a family. Its samples follow, through the returned writer; families are
    /// written in the order they were started.
    pub(super) fn family(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
    ) -> Family<'_> {
        debug_assert!(valid_name(name, true), "metric name {name}");
        debug_assert_eq!(
            kind == Kind::Counter,
            name.ends_with("_total"),
            "{name}: counters, and only counters, end in _total"
        );
        // The encoder writes help text as it is: ours needs no escaping.
        debug_assert!(
            !help.contains(['\\', '\n', '"']),
            "{name}: help text with a character to escape"
        );
        self.families.push(FamilyData {
            name,
            kind,
            help,
            samples: Vec::new(),
        });
        Family {
            data: self.families.last_mut().expect("just pushed"),
        }
    }

    /// The page, in the OpenMetrics text format.
    pub(super) fn finish(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Page(self.families)));
        let mut out = String::new();
        // A `String` takes every write, and every value given encodes.
        text::encode(&mut out, &registry).expect("the metrics page encodes");
        out
    }
}

/// Gathers the samples of one family.
pub(super) struct Family<'a> {
    data: &'a mut FamilyData,
}

impl Family<'_> {
    /// One sample: `name{label="value",...} value`.
    pub(super) fn sample(&mut self, labels: &[(&'static str, &str)], value: impl Into<Value>) {
        debug_assert!(
            labels.iter().all(|(k, _)| valid_name(k, false)),
            "{labels:?}"
        );
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.data.samples.push((labels, value.into()));
    }
}

/// The gathered families, as `prometheus-client` asks for them at encoding time.
#[derive(Debug)]
struct Page(Vec<FamilyData>);

impl Collector for Page {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let (declared, kind) = match f.kind {
                // The encoder puts `_total` back on every sample.
                Kind::Counter => (
                    f.name.strip_suffix("_total").unwrap_or(f.name),
                    MetricType::Counter,
                ),
                Kind::Gauge => (f.name, MetricType::Gauge),
            };
            let mut family = encoder.encode_descriptor(declared, f.help, None, kind)?;
            for (labels, value) in &f.samples {
                let sample = family.encode_family(labels)?;
                match (f.kind, *value) {
                    (Kind::Counter, Value::Int(v)) => ConstCounter::new(v).encode(sample)?,
                    (Kind::Counter, Value::Float(v)) => ConstCounter::new(v).encode(sample)?,
                    (Kind::Gauge, Value::Int(v)) => ConstGauge::new(v).encode(sample)?,
                    (Kind::Gauge, Value::Float(v)) => ConstGauge::new(v).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes_follow_openmetrics() {
        let mut e = Exposition::default();
        let mut f = e.family("x_total", Kind::Counter, "Things.");
        f.sample(&[], 3u64);
        f.sample(&[("id", "a\"b\\c\nd"), ("v", "720p")], 4u64);
        f.sample(&[("id", "t")], 2.5);
        let mut g = e.family("y_seconds", Kind::Gauge, "Time.");
        g.sample(&[("s", "x")], 1.5);
        g.sample(&[], std::time::Duration::from_millis(250));
        g.sample(&[], 100.0);
        g.sample(&[], 7u64);
        e.family("z_bytes", Kind::Gauge, "Nothing yet.");
        assert_eq!(
            e.finish(),
            "# HELP x Things.\n\
             # TYPE x counter\n\
             x_total 3\n\
             x_total{id=\"a\\\"b\\\\c\\nd\",v=\"720p\"} 4\n\
             x_total{id=\"t\"} 2.5\n\
             # HELP y_seconds Time.\n\
             # TYPE y_seconds gauge\n\
             y_seconds{s=\"x\"} 1.5\n\
             y_seconds 0.25\n\
             y_seconds 100.0\n\
             y_seconds 7\n\
             # HELP z_bytes Nothing yet.\n\
             # TYPE z_bytes gauge\n\
             # EOF\n"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("streamvisor_stream_frames_in_total", true));
        assert!(valid_name("a:b", true) && !valid_name("a:b", false));
        assert!(!valid_name("1abc", true) && !valid_name("a-b", true) && !valid_name("", true));
    }
}
