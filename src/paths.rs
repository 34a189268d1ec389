//! Absolute filer paths as plain strings: split, join, the parent, "is it
//! below", folder flags normalised, a path relative to a synced folder
//! made absolute, a path cleaned of `.` and `..`, and the one admission of
//! a name (and a folder) that a peer gives. Pure and a leaf: every layer
//! uses these, they use nothing.

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

/// Admits a name a peer gives (in an event or a listing) when it is one
/// path component: not empty, no `/` or NUL in it, not `.` or `..`. Joined
/// into a target path, anything else lands elsewhere than the peer's entry
/// (the filer resolves `..` as it joins), or nowhere sane. The reason is
/// the error.
pub fn admit_name(name: &str) -> Result<(), &'static str> {
    match name {
        "" => Err("it is empty"),
        "." | ".." => Err("it is a step (. or ..), not a name"),
        _ if name.contains('/') => Err("it holds a /"),
        _ if name.contains('\0') => Err("it holds a NUL"),
        _ => Ok(()),
    }
}

/// Admits a folder a peer gives: "/", or absolute and each of its
/// components admitted by `admit_name` (so also no trailing `/`, the way
/// a filer writes its folders).
pub fn admit_dir(dir: &str) -> Result<(), &'static str> {
    if dir == "/" {
        return Ok(());
    }
    match dir.strip_prefix('/') {
        Some(rest) => rest.split('/').try_for_each(admit_name),
        None => Err("it is not absolute"),
    }
}

/// An absolute path with `.`, `..` and empty components resolved the way
/// the filer resolves them when it joins (`..` at the root stays there):
/// what a path really names, for comparisons such as excludes.
pub fn clean(path: &str) -> std::borrow::Cow<'_, str> {
    if admit_dir(path).is_ok() {
        return path.into();
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_a_peer_are_one_component() {
        let table: &[(&str, bool)] = &[
            ("a", true),
            ("...", true),
            (".hidden", true),
            ("a..b", true),
            ("back\\slash", true),
            ("tab\there", true),
            ("日本", true),
            ("", false),
            (".", false),
            ("..", false),
            ("a/b", false),
            ("/", false),
            ("a/", false),
            ("x\0y", false),
            ("\0", false),
        ];
        let dirs: &[(&str, bool)] = &[
            ("/", true),
            ("/a", true),
            ("/a/b c/...", true),
            ("", false),
            ("a/b", false),
            ("/a/", false),
            ("//a", false),
            ("/a//b", false),
            ("/a/./b", false),
            ("/a/../b", false),
            ("/..", false),
            ("/a/x\0y", false),
        ];
        type Admit = fn(&str) -> Result<(), &'static str>;
        for (admit, rows) in [(admit_name as Admit, table), (admit_dir, dirs)] {
            for (input, ok) in rows {
                assert_eq!(admit(input).is_ok(), *ok, "{input:?}");
            }
        }
    }

    #[test]
    fn paths_clean_as_the_filer_joins_them() {
        let table = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/x/../private", "/private"),
            ("/x/./y/", "/x/y"),
            ("//a//b", "/a/b"),
            ("/../../etc", "/etc"),
            ("/a/b/..", "/a"),
            ("/..", "/"),
        ];
        for (path, want) in table {
            assert_eq!(clean(path), want, "{path}");
        }
    }

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
