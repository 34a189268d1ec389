//! Orders a window of events by their real conflicts: an event waits for
//! every earlier event on the same path, on one of its ancestors (a
//! directory create, delete or rename above it), or below it (when it is
//! itself a directory event). Events are grouped into levels: everything in
//! a level is independent and runs in parallel, and each level starts after
//! the one before it. A directory create is thus applied before its files,
//! but the files of a folder are not serialised behind each other. Pure.

use std::collections::HashMap;

/// Groups item indices into levels. `paths[i]` lists the source paths item i
/// touches; items in one level are in log order.
pub fn levels(paths: &[Vec<String>]) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; paths.len()];
    // The last item at exactly this path.
    let mut at: HashMap<&str, usize> = HashMap::new();
    // Items strictly below this path since the last item at it.
    let mut below: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, ps) in paths.iter().enumerate() {
        let mut deps: Vec<usize> = Vec::new();
        for p in ps {
            for a in ancestors(p).chain(std::iter::once(p.as_str())) {
                if let Some(&j) = at.get(a) {
                    deps.push(j);
                }
            }
            if let Some(js) = below.get(p.as_str()) {
                deps.extend(js.iter().copied());
            }
        }
        level[i] = deps.iter().map(|&j| level[j] + 1).max().unwrap_or(0);
        for p in ps {
            at.insert(p.as_str(), i);
            // Later items below p depend on i, which covers everything before it.
            below.insert(p.as_str(), Vec::new());
            for a in ancestors(p) {
                below.entry(a).or_default().push(i);
            }
        }
    }
    let depth = level.iter().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); depth];
    for (i, l) in level.into_iter().enumerate() {
        out[l].push(i);
    }
    out
}

/// Strict ancestors of an absolute path, "/" included: "/a/b" → "/", "/a".
fn ancestors(p: &str) -> impl Iterator<Item = &str> {
    std::iter::once("/").filter(move |_| p != "/").chain(
        p.char_indices()
            .filter(|&(i, c)| c == '/' && i > 0)
            .map(move |(i, _)| &p[..i]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(items: &[&[&str]]) -> Vec<Vec<usize>> {
        let paths: Vec<Vec<String>> = items
            .iter()
            .map(|ps| ps.iter().map(|s| s.to_string()).collect())
            .collect();
        levels(&paths)
    }

    #[test]
    fn table() {
        // unrelated files run together
        assert_eq!(run(&[&["/a/x"], &["/a/y"], &["/b/z"]]), [vec![0, 1, 2]]);
        // the same path keeps its order
        assert_eq!(
            run(&[&["/a/x"], &["/a/y"], &["/a/x"]]),
            [vec![0, 1], vec![2]]
        );
        // a folder's create comes first, then its files all at once
        assert_eq!(
            run(&[&["/a"], &["/a/x"], &["/a/y"], &["/a/z"]]),
            [vec![0], vec![1, 2, 3]]
        );
        // a directory event waits for what came before below it, and what follows waits for it
        assert_eq!(
            run(&[&["/a/x"], &["/a/y"], &["/a"], &["/a/z"], &["/b"]]),
            [vec![0, 1, 4], vec![2], vec![3]]
        );
        // a rename orders against both its old and new neighbourhoods
        assert_eq!(
            run(&[&["/a/x"], &["/b/y"], &["/a/x", "/b/y"], &["/c"]]),
            [vec![0, 1, 3], vec![2]]
        );
        // a directory rename, then its children's rename events in parallel
        assert_eq!(
            run(&[&["/d", "/e"], &["/d/f", "/e/f"], &["/d/g", "/e/g"]]),
            [vec![0], vec![1, 2]]
        );
        // the root orders against everything
        assert_eq!(run(&[&["/a"], &["/b"], &["/"]]), [vec![0, 1], vec![2]]);
        assert!(run(&[]).is_empty());
    }

    #[test]
    fn deep_chains_follow_every_conflict() {
        // x1 under a; a deleted; a recreated; x1 written again: four levels.
        let got = run(&[&["/a/x1"], &["/a"], &["/a"], &["/a/x1"], &["/q"]]);
        assert_eq!(got, [vec![0, 4], vec![1], vec![2], vec![3]]);
    }
}
