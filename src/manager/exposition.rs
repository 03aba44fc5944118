//! The Prometheus text exposition format, version 0.0.4: one `# HELP` and one `# TYPE` line
//! per family, then its samples, every sample of a family together. Label values escape
//! `\`, `"` and newlines; help text escapes `\` and newlines; values are integers or Go-style
//! floats (`NaN`, `+Inf`, `-Inf`).

use std::fmt::Write as _;

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

/// A page of metrics being written.
#[derive(Debug, Default)]
pub(super) struct Exposition {
    out: String,
}

/// True for a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), or label name with `colon`
/// false (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn valid_name(name: &str, colon: bool) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
    name.chars().next().is_some_and(|c| !c.is_ascii_digit()) && name.chars().all(ok)
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples follow, through the
    /// returned writer, before the next family starts.
    pub(super) fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        debug_assert!(valid_name(name, true), "metric name {name}");
        debug_assert_eq!(
            kind == Kind::Counter,
            name.ends_with("_total"),
            "{name}: counters, and only counters, end in _total"
        );
        let kind_name = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind_name}");
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// The page.
    pub(super) fn finish(self) -> String {
        self.out
    }
}

/// Writes the samples of one family.
pub(super) struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    /// One sample: `name{label="value",...} value`.
    pub(super) fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_name(k, false), "label name {k}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => write_float(self.out, v),
        }
        self.out.push('\n');
    }
}

/// A label value: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub(super) fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Help text: `\` → `\\`, newline → `\n`.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Prometheus reads it (Rust's shortest round-trip digits; `NaN`, `+Inf`, `-Inf`).
fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes_follow_the_text_format() {
        let mut e = Exposition::default();
        let mut f = e.family("x_total", Kind::Counter, "Things.\nWith a \\ in it.");
        f.sample(&[], 3u64);
        f.sample(&[("id", "a\"b\\c\nd"), ("v", "720p")], 4u64);
        let mut g = e.family("y_seconds", Kind::Gauge, "Time.");
        g.sample(&[("s", "x")], 1.5);
        g.sample(&[], f64::NAN);
        g.sample(&[], f64::INFINITY);
        g.sample(&[], f64::NEG_INFINITY);
        g.sample(&[], std::time::Duration::from_millis(250));
        g.sample(&[], 100.0);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\\nWith a \\\\ in it.\n\
             # TYPE x_total counter\n\
             x_total 3\n\
             x_total{id=\"a\\\"b\\\\c\\nd\",v=\"720p\"} 4\n\
             # HELP y_seconds Time.\n\
             # TYPE y_seconds gauge\n\
             y_seconds{s=\"x\"} 1.5\n\
             y_seconds NaN\n\
             y_seconds +Inf\n\
             y_seconds -Inf\n\
             y_seconds 0.25\n\
             y_seconds 100\n"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("streamvisor_stream_frames_in_total", true));
        assert!(valid_name("a:b", true) && !valid_name("a:b", false));
        assert!(!valid_name("1abc", true) && !valid_name("a-b", true) && !valid_name("", true));
    }
}
