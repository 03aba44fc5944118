//! `StreamConfig` building from arbitrary fields (id, source, output directory, one input
//! option, the opt-in): never panics (`Debug` included); a generated source is accepted
//! only with the opt-in and then holds a parsed graph; `redact_url` never shows the
//! userinfo, and redacting twice changes nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streamvisor::{redact_url, StreamConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\u{1}');
    let mut next = || fields.next().unwrap_or("").to_owned();
    let (id, source, out, key, value) = (next(), next(), next(), next(), next());
    let allow = flags & 1 == 1;
    let mut builder = StreamConfig::builder(id, source.clone(), out);
    if flags & 2 == 2 {
        builder = builder.input_option(key, value);
    }
    let shown = redact_url(&source);
    assert_eq!(redact_url(&shown), shown, "redaction is idempotent");
    let Ok(config) = builder.allow_generated_sources(allow).build() else {
        return;
    };
    let is_generated = source.starts_with("lavfi:");
    assert_eq!(config.generated_graph().is_some(), is_generated);
    assert!(allow || !is_generated, "lavfi: accepted without the opt-in");
    let _ = format!("{config:?}");
    if let Some((scheme, rest)) = source.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            let plain = !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if plain && userinfo != "***" {
                let leaked = format!("://{userinfo}@");
                assert!(!shown.contains(&leaked), "userinfo shown: {shown}");
            }
        }
    }
});
