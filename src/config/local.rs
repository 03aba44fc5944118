//! Local files are opt-in: a source that is a path or a `file:` URL is accepted only when
//! the application names a directory it may read (`local_files_under`), and only when the
//! file resolves (symbolic links and `..` resolved) inside it. The same rule is applied
//! again to every file the source opens once it runs (a local playlist's segments and keys,
//! an image sequence's files), through the demuxer's open callback.

use std::io;
use std::path::{Component, Path, PathBuf};

/// The rule, as refusals name it.
pub(crate) const RULE: &str = "local files are refused unless the application allows a \
     directory (StreamConfigBuilder::local_files_under)";

/// The path a local source names: `file:` stripped; `None` when the string starts with
/// another protocol's prefix (`concat:`, `subfile:`, `crypto:`), which is not a local file.
pub(crate) fn local_path(source: &str) -> Option<&str> {
    if let Some(path) = source.strip_prefix("file:") {
        return Some(path);
    }
    match source.split_once(':') {
        Some((prefix, _)) if is_protocol_name(prefix) => None,
        _ => Some(source),
    }
}

/// Where the local source (or a URL it opens) `source` really is, if inside `root`
/// (canonical): [`local_path`], then [`confine`]; else why not.
pub(crate) fn confine_source(root: &Path, source: &str) -> Result<PathBuf, String> {
    let path = local_path(source).ok_or_else(|| {
        format!("{source}: a protocol prefix other than file: is not a local file")
    })?;
    confine(root, path)
}

/// True for a name FFmpeg may read as a protocol before a `:` (letters, digits, `+`, `-`,
/// `.`; no `/`).
pub(crate) fn is_protocol_name(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// The canonical form of `root`, the directory local files must be in.
pub(crate) fn canonical_root(root: &Path) -> Result<PathBuf, String> {
    let canonical = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    if !canonical.is_dir() {
        return Err(format!("{} is not a directory", root.display()));
    }
    Ok(canonical)
}

/// Where `path` really is (symbolic links and `..` resolved; relative to the working
/// directory, as FFmpeg opens it), if that is inside `root` (canonical); else why not. A
/// file that does not exist yet is placed by its directory.
pub(crate) fn confine(root: &Path, path: &str) -> Result<PathBuf, String> {
    let named = Path::new(path);
    let resolved = match named.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => resolve_missing(named)?,
        Err(e) => return Err(format!("{path} cannot be resolved: {e}")),
    };
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(format!(
            "{path} resolves to {}, outside {} (the directory local files are allowed in)",
            resolved.display(),
            root.display()
        ))
    }
}

/// A missing file: its directory resolved, its plain name after it.
fn resolve_missing(named: &Path) -> Result<PathBuf, String> {
    let shown = named.display();
    let Some(Component::Normal(name)) = named.components().next_back() else {
        return Err(format!("{shown} names no file"));
    };
    let parent = match named.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = parent
        .canonicalize()
        .map_err(|e| format!("{shown} cannot be resolved: {e}"))?;
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_and_file_urls_are_local() {
        assert_eq!(local_path("/a/b.mp4"), Some("/a/b.mp4"));
        assert_eq!(local_path("file:/a/b.mp4"), Some("/a/b.mp4"));
        assert_eq!(local_path("file:///a/b.mp4"), Some("///a/b.mp4"));
        assert_eq!(local_path("./x:y.mp4"), Some("./x:y.mp4"));
        assert_eq!(local_path("concat:a.ts|b.ts"), None);
        assert_eq!(local_path("crypto+file:/a"), None);
    }

    #[test]
    fn symlinks_and_dot_dots_are_resolved_before_the_root_is_checked() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("in.mp4"), b"x").unwrap();
        std::fs::write(d.path().join("secret.mp4"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.mp4"), root.join("link.mp4")).unwrap();
        let root = canonical_root(&root).unwrap();
        let at = |name: &str| root.join(name).to_str().unwrap().to_owned();
        assert!(confine(&root, &at("in.mp4")).is_ok());
        assert!(
            confine(&root, &at("not-yet.mp4")).is_ok(),
            "placed by its directory"
        );
        let out = confine(&root, &at("link.mp4")).unwrap_err();
        assert!(out.contains("outside"), "{out}");
        assert!(confine(&root, &at("../secret.mp4")).is_err());
        assert!(confine(&root, &at("../missing.mp4")).is_err());
        assert!(confine(&root, &at("sub/..")).is_err(), "names no file");
        assert!(
            canonical_root(&root.join("in.mp4")).is_err(),
            "not a directory"
        );
    }
}
