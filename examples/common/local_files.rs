//! The examples' operator is trusted with local files: a local source named on the command
//! line may be read, with whatever it opens, from its own directory (or from the directory
//! `--local-files-under` names). The library refuses local files otherwise.

use std::path::{Path, PathBuf};

/// The directory local files of `source` may be read from: `chosen` when the operator
/// named one, else the directory of a local source; `None` for URLs, `lavfi:` graphs and
/// stdin.
pub fn local_root(source: &str, chosen: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = chosen {
        return Some(dir.to_path_buf());
    }
    let is_url = source.contains("://") || source.starts_with("lavfi:") || source == "-";
    if is_url {
        return None;
    }
    let path = Path::new(source.strip_prefix("file:").unwrap_or(source));
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => Some(dir.to_path_buf()),
        _ => Some(PathBuf::from(".")),
    }
}
