//! Last-writer-wins for active-active, deterministic on both clusters.
//! Two versions of one path are ordered by mtime (ns), then by a content
//! fingerprint that is the same on every cluster (sizes, md5, chunk ETags,
//! inline content, mode, owner, mime, symlink, extended attributes — never
//! cluster-local file ids). Each direction compares the same two versions, so
//! both pick the same winner and equal-mtime writes cannot end up swapped.
//! Also whether a delete yields to the target's version (a change the
//! deleting side never saw wins over the removal). Pure.

use crate::pb::filer::Entry;
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write the source version onto the target.
    Source,
    /// Keep what the target has.
    Target,
}

/// What was decided, and whether it was a conflict worth recording: the
/// target held a different version that was not older than the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub verdict: Verdict,
    pub conflict: bool,
}

/// An entry's file size as its attributes give it (0 without them).
pub fn size(e: &Entry) -> u64 {
    e.attributes.as_ref().map(|a| a.file_size).unwrap_or(0)
}

pub fn mtime_ns(e: &Entry) -> i64 {
    e.attributes
        .as_ref()
        .map(|a| a.mtime.saturating_mul(1_000_000_000) + i64::from(a.mtime_ns))
        .unwrap_or(0)
}

/// A byte string that orders versions with equal mtimes the same way on every cluster.
pub fn fingerprint(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + e.content.len());
    let mut put = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    };
    put(&[u8::from(e.is_directory)]);
    let a = e.attributes.clone().unwrap_or_default();
    put(&a.file_size.to_be_bytes());
    put(&a.md5);
    for c in &e.chunks {
        put(&c.offset.to_be_bytes());
        put(&c.size.to_be_bytes());
        put(c.e_tag.as_bytes());
    }
    put(&e.content);
    put(&a.file_mode.to_be_bytes());
    put(&a.uid.to_be_bytes());
    put(&a.gid.to_be_bytes());
    put(a.mime.as_bytes());
    put(a.symlink_target.as_bytes());
    let mut ext: Vec<_> = e.extended.iter().collect();
    ext.sort();
    for (k, v) in ext {
        put(k.as_bytes());
        put(v);
    }
    out
}

/// The same version, wherever it is stored: the same kind, mtime and
/// fingerprint (content, chunk ETags, attributes, extended attributes),
/// whatever the chunks' ids on either cluster.
pub fn same_version(a: &Entry, b: &Entry) -> bool {
    a.is_directory == b.is_directory
        && mtime_ns(a) == mtime_ns(b)
        && fingerprint(a) == fingerprint(b)
}

/// Active-active, decided three ways: an event that replaced `base` with
/// `src` on the source meets `target`. A target that still holds `base`
/// has not changed on its own: the event applies, and it is no conflict
/// (a tag, an xattr or a mode changed without a new mtime, or a write in
/// the same second, would otherwise be settled by the tie-break and lost
/// half the time). A target that holds another version changed on its own
/// since: that is a conflict, settled by `resolve`. A target that is only
/// `behind` (it holds a version the source had and replaced, whose newer
/// versions were skipped on the way) has not changed on its own either.
pub fn weigh(src: &Entry, base: Option<&Entry>, behind: bool, target: &Entry) -> Resolution {
    if behind || base.is_some_and(|b| same_version(b, target)) {
        return Resolution {
            verdict: Verdict::Source,
            conflict: false,
        };
    }
    resolve(src, target)
}

/// Active-active, a delete of `base` (the version the source deleted, as
/// the source had it) meets `target`: true when the target keeps its entry.
/// What the deleting side had seen is deleted: the deleted version itself,
/// or (`behind`) a version the deleting side had replaced since, which this
/// process skipped on its way. A file in any other version is a change the
/// deleting side never saw (made on the target before or after the delete,
/// whatever the clocks say), and survives on both clusters. Without a base
/// (a repair's delete), or for folders, `delete_yields_to` decides, by the
/// delete's time `ts_ns` (the deleted version's mtime, for a file).
pub fn delete_keeps(target: &Entry, base: Option<&Entry>, behind: bool, ts_ns: i64) -> bool {
    match base {
        Some(b) if same_version(b, target) => false,
        _ if behind => false,
        Some(_) if !target.is_directory => true,
        _ => delete_yields_to(target, ts_ns, base.map_or(0, mtime_ns)),
    }
}

/// Orders two versions: Greater means `a` wins over `b`.
pub fn compare(a: &Entry, b: &Entry) -> Ordering {
    mtime_ns(a)
        .cmp(&mtime_ns(b))
        .then_with(|| fingerprint(a).cmp(&fingerprint(b)))
}

/// Decides between the event's source version and the target's current one.
/// Directories never conflict (their mtimes follow their children); the
/// newer directory attributes still win.
pub fn resolve(src: &Entry, target: &Entry) -> Resolution {
    let order = compare(src, target);
    let verdict = if order == Ordering::Less {
        Verdict::Target
    } else {
        Verdict::Source
    };
    let conflict = !src.is_directory
        && !target.is_directory
        && mtime_ns(target) >= mtime_ns(src)
        && fingerprint(target) != fingerprint(src);
    Resolution { verdict, conflict }
}

/// Active-active, a delete the source logged at `ts_ns` (its clock) of the
/// version with mtime `old_mtime_ns` meets `target`: true when the target
/// keeps it. A file yields to a version newer than the deleted one, a change
/// the deleting side never saw (made before the delete or after it); a copy
/// of the deleted version (its mtime, even one in the future) or an older one
/// is deleted. A folder's mtime is not its content's: it yields only to a
/// write after the delete. Unknown times (0) never keep the target.
pub fn delete_yields_to(target: &Entry, ts_ns: i64, old_mtime_ns: i64) -> bool {
    let since = if old_mtime_ns > 0 && !target.is_directory {
        old_mtime_ns
    } else {
        ts_ns
    };
    since > 0 && mtime_ns(target) > since && mtime_ns(target) != old_mtime_ns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::filer::{FileChunk, FuseAttributes};

    fn file(mtime: i64, ns: i32, etag: &str) -> Entry {
        let mut e = Entry::new();
        e.name = "f".into();
        let mut a = FuseAttributes::new();
        a.mtime = mtime;
        a.mtime_ns = ns;
        a.file_size = 3;
        e.attributes = Some(a).into();
        let mut c = FileChunk::new();
        c.size = 3;
        c.e_tag = etag.into();
        c.file_id = format!("{mtime},{etag}");
        e.chunks.push(c);
        e
    }

    #[test]
    fn table() {
        use Verdict::*;
        let cases = [
            // (source, target, verdict, conflict)
            (file(10, 0, "x"), file(9, 0, "y"), Source, false),
            (file(10, 5, "x"), file(10, 4, "y"), Source, false),
            (file(9, 0, "x"), file(10, 0, "y"), Target, true),
            (file(10, 0, "x"), file(10, 0, "x"), Source, false),
        ];
        for (i, (s, t, v, c)) in cases.iter().enumerate() {
            assert_eq!(
                resolve(s, t),
                Resolution {
                    verdict: *v,
                    conflict: *c
                },
                "case {i}"
            );
        }
    }

    #[test]
    fn deletes_yield_to_changes_the_deleting_side_never_saw() {
        const S: i64 = 1_000_000_000;
        let dir = |mtime: i64| {
            let mut e = file(mtime, 0, "");
            e.is_directory = true;
            e
        };
        let cases = [
            // (target, delete ts, deleted version's mtime, target kept)
            (file(10, 0, "x"), 20 * S, 10 * S, false), // the deleted version
            (file(9, 0, "x"), 20 * S, 10 * S, false),  // older than it
            (file(15, 0, "y"), 20 * S, 10 * S, true),  // changed before the delete
            (file(25, 0, "y"), 20 * S, 10 * S, true),  // changed after it
            (file(90, 0, "x"), 20 * S, 90 * S, false), // deleted version dated ahead
            (file(25, 0, "y"), 20 * S, 0, true),       // old mtime unknown: by time
            (file(15, 0, "y"), 20 * S, 0, false),
            (file(25, 0, "y"), 0, 0, false),  // nothing known: delete
            (dir(15), 20 * S, 10 * S, false), // a folder: by the delete's time
            (dir(25), 20 * S, 10 * S, true),
        ];
        for (i, (t, ts, old, kept)) in cases.iter().enumerate() {
            assert_eq!(delete_yields_to(t, *ts, *old), *kept, "case {i}");
        }
    }

    #[test]
    fn active_active_is_decided_three_ways() {
        let base = file(10, 0, "x");
        let mut tagged = base.clone();
        tagged
            .extended
            .insert("Seaweed-X-Amz-Tagging-k".into(), b"v".to_vec());
        // The target's copy of the base has other chunk ids, same ETags.
        let mut copy = base.clone();
        copy.chunks[0].file_id = "7,9999".into();
        copy.chunks[0].source_file_id = base.chunks[0].file_id.clone();
        assert!(same_version(&base, &copy));
        assert!(!same_version(&base, &tagged), "extended attributes count");
        let theirs = file(10, 0, "y");
        let newer = file(11, 0, "z");
        #[rustfmt::skip]
        let cases = [
            // (source, base, target, verdict, conflict)
            // The target still holds the base: applies, even a tag change
            // that keeps the mtime, and even where the tie-break would not.
            (&tagged, Some(&base), &copy, Verdict::Source, false),
            (&theirs, Some(&base), &copy, Verdict::Source, false),
            // The target changed on its own: a conflict, by the old rule.
            (&tagged, Some(&base), &newer, Verdict::Target, true),
            (&newer, Some(&base), &theirs, Verdict::Source, false),
            // No base (a create): the old rule.
            (&theirs, None, &copy, resolve(&theirs, &copy).verdict, true),
        ];
        for (i, (src, b, t, verdict, conflict)) in cases.into_iter().enumerate() {
            let r = weigh(src, b, false, t);
            assert_eq!((r.verdict, r.conflict), (verdict, conflict), "case {i}");
        }
        // Behind: the target holds a version the source replaced (the events
        // in between were skipped): it follows, whatever the tie-break says.
        let r = weigh(&tagged, Some(&theirs), true, &newer);
        assert_eq!((r.verdict, r.conflict), (Verdict::Source, false));
    }

    #[test]
    fn a_delete_takes_what_the_deleting_side_had_seen() {
        const S: i64 = 1_000_000_000;
        let deleted = file(10, 0, "x");
        let mut copy = deleted.clone();
        copy.chunks[0].source_file_id = "1,ab".into();
        let ts = 20 * S;
        let mut folder = file(15, 0, "");
        folder.is_directory = true;
        #[rustfmt::skip]
        let cases = [
            // (target, base, behind, kept)
            (&copy, Some(&deleted), false, false),          // the deleted version
            (&file(12, 0, "y"), Some(&deleted), false, true), // changed on the target
            (&file(5, 0, "y"), Some(&deleted), false, true),  // ... by a clock behind
            (&file(5, 0, "y"), Some(&deleted), true, false),  // a version it had replaced
            (&file(15, 0, "y"), None, false, false),          // no base: by time
            (&file(25, 0, "y"), None, false, true),
            (&folder, Some(&deleted), false, false),          // folders: by the delete's time
        ];
        for (i, (t, b, behind, kept)) in cases.into_iter().enumerate() {
            assert_eq!(delete_keeps(t, b, behind, ts), kept, "case {i}");
        }
    }

    #[test]
    fn equal_mtimes_pick_the_same_winner_from_both_sides() {
        let on_a = file(10, 7, "aaaa");
        let on_b = file(10, 7, "bbbb");
        let a_to_b = resolve(&on_a, &on_b);
        let b_to_a = resolve(&on_b, &on_a);
        assert!(a_to_b.conflict && b_to_a.conflict);
        // Exactly one direction writes, and both leave the same version everywhere.
        assert_ne!(a_to_b.verdict, b_to_a.verdict);
        let winner = if a_to_b.verdict == Verdict::Source {
            &on_a
        } else {
            &on_b
        };
        assert_eq!(
            fingerprint(winner),
            fingerprint(&on_b),
            "larger fingerprint wins"
        );
    }

    #[test]
    fn fingerprint_ignores_cluster_local_ids() {
        let mut a = file(10, 0, "x");
        let mut b = a.clone();
        a.chunks[0].file_id = "3,01".into();
        b.chunks[0].file_id = "7,ff".into();
        b.chunks[0].source_file_id = "3,01".into();
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn directories_never_conflict() {
        let mut s = file(9, 0, "x");
        s.is_directory = true;
        let mut t = file(10, 0, "y");
        t.is_directory = true;
        assert!(!resolve(&s, &t).conflict);
        assert_eq!(resolve(&s, &t).verdict, Verdict::Target);
    }
}
