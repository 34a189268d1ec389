//! Absolute filer paths as plain strings: split, join, the parent, "is it
//! below", folder flags normalised, and a path relative to a synced folder
//! made absolute. Pure and a leaf: every layer uses these, they use nothing.

/// Splits a full path into (parent directory, name): "/a/b" → ("/a", "b"), "/a" → ("/", "a").
pub fn split_path(full: &str) -> (&str, &str) {
    match full.rfind('/') {
        Some(0) => ("/", &full[1..]),
        Some(i) => (&full[..i], &full[i + 1..]),
        None => ("/", full),
    }
}

/// Joins a directory and a name into a full path without doubling slashes.
pub fn join_path(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent folder of an absolute path ("/" for "/" and top-level names).
pub fn parent(path: &str) -> &str {
    split_path(path).0
}

/// True when `path` is `dir` itself or below it.
pub fn is_under(path: &str, dir: &str) -> bool {
    dir == "/"
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// Normalises a folder flag: absolute, no trailing slash except for "/".
pub fn normalize_folder(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains("//") || p.split('/').any(|s| s == ".." || s == ".") {
        return None;
    }
    let t = p.trim_end_matches('/');
    Some(if t.is_empty() { "/".into() } else { t.into() })
}

/// A path relative to a synced folder ("" for the folder itself, else
/// starting with "/"), made absolute under `root`.
pub fn under(root: &str, rel: &str) -> String {
    if rel.is_empty() {
        root.to_string()
    } else if root == "/" {
        rel.to_string()
    } else {
        format!("{root}{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_join_and_nest() {
        assert_eq!(split_path("/a/b"), ("/a", "b"));
        assert_eq!(split_path("/a"), ("/", "a"));
        assert_eq!(join_path("/", "a"), "/a");
        assert_eq!(join_path("/a", "b"), "/a/b");
        assert_eq!(parent("/a/b"), "/a");
        assert!(is_under("/a/b", "/a") && is_under("/a", "/a") && is_under("/x", "/"));
        assert!(!is_under("/ab", "/a"));
        assert_eq!(under("/", "/x"), "/x");
        assert_eq!(under("/r", "/x"), "/r/x");
        assert_eq!(under("/r", ""), "/r");
    }

    #[test]
    fn folders_normalise() {
        assert_eq!(normalize_folder("/").as_deref(), Some("/"));
        assert_eq!(normalize_folder("/a/b/").as_deref(), Some("/a/b"));
        for bad in ["", "a", "/a//b", "/a/../b", "./a"] {
            assert_eq!(normalize_folder(bad), None, "{bad}");
        }
    }
}
