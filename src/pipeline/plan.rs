//! Splits a window of events into independent lanes: events on the same
//! path, or on a path and one of its ancestors (a directory create, delete
//! or rename and anything below it), share a lane and keep log order;
//! different lanes may run in parallel. Pure.

use std::collections::HashMap;

/// Groups item indices by conflict. `paths[i]` lists the source paths item i
/// touches. Lanes come back in order of their first item; each lane in log order.
pub fn lanes(paths: &[Vec<String>]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..paths.len()).collect();
    // Last item seen at exactly this path.
    let mut at: HashMap<&str, usize> = HashMap::new();
    // Some item strictly below this path (one is enough: those below are joined when they meet).
    let mut below: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, ps) in paths.iter().enumerate() {
        for p in ps {
            for a in ancestors(p).chain(std::iter::once(p.as_str())) {
                if let Some(&j) = at.get(a) {
                    union(&mut parent, i, j);
                }
            }
            if let Some(js) = below.remove(p.as_str()) {
                for j in js {
                    union(&mut parent, i, j);
                }
                below.insert(p.as_str(), vec![i]);
            }
            at.insert(p.as_str(), i);
            for a in ancestors(p) {
                below.entry(a).or_default().push(i);
            }
        }
    }
    let mut order: Vec<usize> = Vec::new();
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..paths.len() {
        let r = find(&mut parent, i);
        let g = groups.entry(r).or_default();
        if g.is_empty() {
            order.push(r);
        }
        g.push(i);
    }
    order
        .into_iter()
        .map(|r| groups.remove(&r).unwrap_or_default())
        .collect()
}

/// Strict ancestors of an absolute path, "/" included: "/a/b" → "/", "/a".
fn ancestors(p: &str) -> impl Iterator<Item = &str> {
    std::iter::once("/").filter(move |_| p != "/").chain(
        p.char_indices()
            .filter(|&(i, c)| c == '/' && i > 0)
            .map(move |(i, _)| &p[..i]),
    )
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        // Keep the smaller index as root so lanes are ordered by first item.
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi] = lo;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(items: &[&[&str]]) -> Vec<Vec<usize>> {
        let paths: Vec<Vec<String>> = items
            .iter()
            .map(|ps| ps.iter().map(|s| s.to_string()).collect())
            .collect();
        lanes(&paths)
    }

    #[test]
    fn table() {
        // unrelated files run apart
        assert_eq!(run(&[&["/a/x"], &["/a/y"], &["/b/z"]]), [[0], [1], [2]]);
        // same path keeps order
        assert_eq!(
            run(&[&["/a/x"], &["/a/y"], &["/a/x"]]),
            vec![vec![0, 2], vec![1]]
        );
        // a directory event joins what is below it, before and after
        assert_eq!(
            run(&[&["/a/x"], &["/a"], &["/a/y/z"], &["/b"]]),
            vec![vec![0, 1, 2], vec![3]]
        );
        // a rename joins both its old and new neighbourhoods
        assert_eq!(
            run(&[&["/a/x"], &["/b/y"], &["/a/x", "/b/y"], &["/c"]]),
            vec![vec![0, 1, 2], vec![3]]
        );
        // a directory rename joins children at the old and the new place
        assert_eq!(
            run(&[&["/d/f"], &["/d", "/e"], &["/e/f"], &["/x"]]),
            vec![vec![0, 1, 2], vec![3]]
        );
        // the root joins everything
        assert_eq!(run(&[&["/a"], &["/b"], &["/"]]), vec![vec![0, 1, 2]]);
        assert!(run(&[]).is_empty());
    }
}
