//! The checks `StreamConfigBuilder::build` runs on fields that need more than a line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    input_options as options, local, GeneratedGraph, PlaylistMode, SourceHint, SourceKind,
    StreamConfig,
};
use crate::error::{Error, Result};

/// Every input option: a key, no NUL byte, and none that would widen what the source may
/// reach.
pub(super) fn input_options(options: &[(String, String)]) -> Result<()> {
    for (i, (k, v)) in options.iter().enumerate() {
        if k.is_empty() || k.contains('\0') || v.contains('\0') {
            return Err(Error::config(
                format!("input_options[{i}]"),
                "empty key or NUL byte",
            ));
        }
        if let Some(why) = options::refused(k) {
            return Err(Error::config(
                format!("input_options[{i}]"),
                format!("{k:?} may not be set: {why}"),
            ));
        }
    }
    Ok(())
}

/// A source hint inside 2..=16384 pixels and 1..=240 fps.
pub(super) fn source_hint(hint: Option<SourceHint>) -> Result<()> {
    let Some(h) = hint else { return Ok(()) };
    let size_ok = (2..=16384).contains(&h.width) && (2..=16384).contains(&h.height);
    if !size_ok || !(1.0..=240.0).contains(&h.frame_rate) {
        return Err(Error::config(
            "source_hint",
            format!(
                "{}x{} at {} fps is outside 2..=16384 pixels and 1..=240 fps",
                h.width, h.height, h.frame_rate
            ),
        ));
    }
    Ok(())
}

/// An I/O timeout inside 100 ms..=600 s.
pub(super) fn io_timeout(timeout: Duration) -> Result<()> {
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(600) {
        return Err(Error::config(
            "io_timeout",
            format!("{timeout:?} is outside 100 ms..=600 s"),
        ));
    }
    Ok(())
}

/// A local source's directory rule at `build()`: the canonical root, when `source` is a
/// local file inside it.
pub(super) fn local_source(source: &str, root: Option<&Path>) -> Result<PathBuf> {
    let Some(root) = root else {
        return Err(Error::config(
            "source",
            format!("{source}: {}", local::RULE),
        ));
    };
    let root =
        local::canonical_root(root).map_err(|why| Error::config("local_files_under", why))?;
    local::confine_source(&root, source).map_err(|why| Error::config("source", why))?;
    Ok(root)
}

/// The output directory is opened by path, never as a URL: it must be valid UTF-8 (FFmpeg
/// takes C strings; a lossy conversion would write somewhere else) and free of NUL bytes.
pub(super) fn output_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(Error::config("output_dir", "empty"));
    }
    let Some(text) = dir.to_str() else {
        return Err(Error::config(
            "output_dir",
            format!("{} is not valid UTF-8", dir.display()),
        ));
    };
    if text.contains('\0') {
        return Err(Error::config("output_dir", "contains a NUL byte"));
    }
    Ok(())
}

/// Ids and variant names become directory names: `[A-Za-z0-9_-]{1,64}`, nothing else.
pub(crate) fn validate_name(field: &str, name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("{name:?} must match [A-Za-z0-9_-]{{1,64}}"),
        ))
    }
}

/// The source's own checks (its text, its forced format, a generated graph's opt-in and
/// grammar), recording what they find.
pub(super) fn check_source(c: &mut StreamConfig) -> Result<()> {
    c.device_format = c.source.validate(c.allow_devices)?;
    c.generated = match c.source_kind() {
        SourceKind::Generated { .. } if !c.allow_generated => {
            return Err(Error::config(
                "source",
                "generated (lavfi:) sources are refused unless the config opts in with \
                 StreamConfigBuilder::allow_generated_sources(true) (trusted input only)",
            ))
        }
        SourceKind::Generated { graph } => {
            Some(GeneratedGraph::parse(graph).map_err(|why| Error::config("source", why))?)
        }
        _ => None,
    };
    Ok(())
}

/// A local source resolved and confined to the directory local files must be in.
pub(super) fn check_local_source(c: &mut StreamConfig) -> Result<()> {
    if matches!(c.source_kind(), SourceKind::File) {
        let source = c.source.as_url().unwrap_or_default();
        c.local_root = Some(local_source(source, c.local_root.as_deref())?);
    }
    Ok(())
}

impl StreamConfig {
    /// The config that reads backup `index` of the source instead of the source itself (the
    /// same rules, read as live), checked as `build` checked it.
    pub(crate) fn backup_config(&self, index: usize) -> Result<StreamConfig> {
        let Some(backup) = self.source.backups().get(index) else {
            return Err(Error::config(
                format!("source.backups[{index}]"),
                "no such backup",
            ));
        };
        let mut b = self.clone();
        b.source = backup.without_backups();
        b.playlist_mode = PlaylistMode::Live;
        let named = |e: Error| match e {
            Error::InvalidConfig { field, reason } => {
                let rest = field.strip_prefix("source").unwrap_or(&field).to_owned();
                Error::config(format!("source.backups[{index}]{rest}"), reason)
            }
            other => other,
        };
        if backup.is_reader() || !backup.backups().is_empty() {
            let why = "a backup is a URL source without backups of its own";
            return Err(named(Error::config("source", why)));
        }
        check_source(&mut b).map_err(named)?;
        check_local_source(&mut b).map_err(named)?;
        Ok(b)
    }
}
