//! Table tests: event → actions.

use super::*;
use crate::pb::filer::EventNotification;

fn entry(name: &str) -> Entry {
    let mut e = Entry::new();
    e.name = name.into();
    e
}

/// Builds an event: `old`/`new` are full source paths.
fn ev(old: Option<&str>, new: Option<&str>, sigs: &[i32]) -> Event {
    let mut n = EventNotification::new();
    let mut directory = String::new();
    if let Some(o) = old {
        let (d, name) = crate::paths::split_path(o);
        directory = d.into();
        n.old_entry = Some(entry(name)).into();
    }
    if let Some(p) = new {
        let (d, name) = crate::paths::split_path(p);
        if directory.is_empty() {
            directory = d.into();
        } else if directory != d {
            n.new_parent_path = d.into();
        }
        n.new_entry = Some(entry(name)).into();
    }
    n.signatures = sigs.to_vec();
    Event {
        ts_ns: 1,
        directory,
        notification: n,
    }
}

impl Scope {
    /// `plan` of an event the table expects admitted.
    fn planned(&self, ev: &Event) -> Vec<Action> {
        self.plan(ev).expect("admitted")
    }
}

fn scope(src: &str, dst: &str) -> Scope {
    Scope {
        source_path: src.into(),
        target_path: dst.into(),
        excludes: vec!["/p/tmp".into(), "/p/**.swp".into()],
        target_sig: 9,
        deletes: true,
        origin_only: None,
        shard: None,
    }
}

/// Renders actions compactly: U:/dir/name, D:/dir/name, R:/old->/new.
fn show(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Upsert { dir, entry, .. } => format!("U:{}", join_path(dir, &entry.name)),
            Action::Delete { dir, name, .. } => format!("D:{}", join_path(dir, name)),
            Action::Rename {
                old_dir,
                old_name,
                new_dir,
                entry,
                ..
            } => format!(
                "R:{}->{}",
                join_path(old_dir, old_name),
                join_path(new_dir, &entry.name)
            ),
        })
        .collect()
}

#[test]
fn event_table() {
    let s = scope("/p", "/q");
    type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [i32], &'a [&'a str]);
    let cases: &[Case] = &[
        (None, Some("/p/a"), &[], &["U:/q/a"]),
        (None, Some("/p/d/e/f"), &[1], &["U:/q/d/e/f"]),
        (Some("/p/a"), None, &[], &["D:/q/a"]),
        (Some("/p/a"), Some("/p/a"), &[], &["U:/q/a"]),
        (Some("/p/a"), Some("/p/b/c"), &[], &["R:/q/a->/q/b/c"]),
        // moved into and out of the folder
        (Some("/x/a"), Some("/p/a"), &[], &["U:/q/a"]),
        (Some("/p/a"), Some("/x/a"), &[], &["D:/q/a"]),
        // outside, the folder itself, similar prefix
        (None, Some("/x/a"), &[], &[]),
        (None, Some("/p"), &[], &[]),
        (None, Some("/pp/a"), &[], &[]),
        // already carries the target's signature: loop prevention
        (None, Some("/p/a"), &[3, 9], &[]),
        // excludes: prefix covers the folder itself and below; glob by name
        (None, Some("/p/tmp"), &[], &[]),
        (None, Some("/p/tmp/x"), &[], &[]),
        (None, Some("/p/tmpx"), &[], &["U:/q/tmpx"]),
        (None, Some("/p/d/.x.swp"), &[], &[]),
        (Some("/p/a"), Some("/p/tmp/a"), &[], &["D:/q/a"]),
        // empty event
        (None, None, &[], &[]),
    ];
    for (old, new, sigs, want) in cases {
        let got = show(&s.planned(&ev(*old, *new, sigs)));
        assert_eq!(got, *want, "{old:?} -> {new:?} sigs {sigs:?}");
    }
}

#[test]
fn whole_tree_and_root_mappings() {
    let s = scope("/", "/");
    assert_eq!(show(&s.planned(&ev(None, Some("/a/b"), &[]))), ["U:/a/b"]);
    let s = scope("/", "/backup");
    assert_eq!(
        show(&s.planned(&ev(None, Some("/a"), &[]))),
        ["U:/backup/a"]
    );
    let s = scope("/p", "/");
    assert_eq!(show(&s.planned(&ev(None, Some("/p/a/b"), &[]))), ["U:/a/b"]);
}

#[test]
fn without_deletes_renames_only_create() {
    let s = Scope {
        deletes: false,
        ..scope("/p", "/q")
    };
    assert!(s.planned(&ev(Some("/p/a"), None, &[])).is_empty());
    assert_eq!(
        show(&s.planned(&ev(Some("/p/a"), Some("/p/b"), &[]))),
        ["U:/q/b"]
    );
}

#[test]
fn multipart_uploads_are_skipped() {
    let s = scope("/", "/");
    assert!(s
        .planned(&ev(None, Some("/buckets/b1/.uploads/u1/0001.part"), &[]))
        .is_empty());
    assert_eq!(
        show(&s.planned(&ev(None, Some("/buckets/b1/obj"), &[]))),
        ["U:/buckets/b1/obj"]
    );
}

#[test]
fn each_clusters_system_folder_is_its_own() {
    use super::{is_scaffold, left_out};
    for p in [
        "/topics/.system",
        "/topics/.system/log/2026-12-06/01-34.f",
        "/topics/.system/x",
    ] {
        assert!(left_out(&[], p), "{p}");
    }
    for p in [
        "/topics",
        "/topics/ns/t",
        "/topics/.systemd",
        "/x/topics/.system",
    ] {
        assert!(!left_out(&[], p), "{p}");
    }
    assert!(is_scaffold("/topics"));
    assert!(!is_scaffold("/topics/ns") && !is_scaffold("/") && !is_scaffold("/x/topics"));
    let s = scope("/", "/");
    assert!(s
        .plan(&ev(None, Some("/topics/.system/log/x"), &[]))
        .unwrap()
        .is_empty());
}

#[test]
fn signatures_are_forwarded() {
    let s = scope("/p", "/q");
    match &s.planned(&ev(None, Some("/p/a"), &[4]))[..] {
        [Action::Upsert { signatures, .. }] => assert_eq!(signatures, &[4]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn event_paths_lists_old_and_new() {
    assert_eq!(
        event_paths(&ev(Some("/a/x"), Some("/b/y"), &[])),
        ["/a/x", "/b/y"]
    );
    assert_eq!(event_paths(&ev(Some("/a/x"), Some("/a/x"), &[])), ["/a/x"]);
}

#[test]
fn origin_only_forwards_only_native_changes() {
    let s = Scope {
        origin_only: Some(5),
        ..scope("/p", "/q")
    };
    assert_eq!(show(&s.planned(&ev(None, Some("/p/a"), &[5]))), ["U:/q/a"]);
    assert_eq!(show(&s.planned(&ev(None, Some("/p/a"), &[]))), ["U:/q/a"]);
    assert!(
        s.planned(&ev(None, Some("/p/a"), &[3, 5])).is_empty(),
        "came from cluster 3"
    );
}

#[test]
fn an_upsert_says_how_the_entry_changed() {
    let change = |ev: &Event, s: &Scope| -> Vec<Change> {
        s.planned(ev)
            .iter()
            .filter_map(|a| match a {
                Action::Upsert { change, .. } => Some(*change),
                _ => None,
            })
            .collect()
    };
    let s = scope("/p", "/q");
    assert_eq!(change(&ev(None, Some("/p/a"), &[]), &s), [Change::Created]);
    // Moved in from outside the folder or from an excluded one: new here.
    assert_eq!(
        change(&ev(Some("/elsewhere/a"), Some("/p/a"), &[]), &s),
        [Change::Created]
    );
    assert_eq!(
        change(&ev(Some("/p/tmp/a"), Some("/p/a"), &[]), &s),
        [Change::Created]
    );
    // Renamed with deletes off: the new path is new on the target.
    let keep = Scope {
        deletes: false,
        ..scope("/p", "/q")
    };
    assert_eq!(
        change(&ev(Some("/p/a"), Some("/p/b"), &[]), &keep),
        [Change::Created]
    );
    // In place: written anew, or sharing chunks with the old version.
    let chunk = |id: u64| {
        let mut c = crate::pb::filer::FileChunk::new();
        c.file_id = format!("3,{id:x}0000abcd");
        c
    };
    let in_place = |old: &[u64], new: &[u64], dir: bool| {
        let mut e = ev(Some("/p/a"), Some("/p/a"), &[]);
        let n = &mut e.notification;
        n.old_entry.as_mut().unwrap().chunks = old.iter().map(|&i| chunk(i)).collect();
        n.new_entry.as_mut().unwrap().chunks = new.iter().map(|&i| chunk(i)).collect();
        n.new_entry.as_mut().unwrap().is_directory = dir;
        change(&e, &s)
    };
    assert_eq!(in_place(&[1], &[2], false), [Change::Rewritten]);
    assert_eq!(in_place(&[], &[], false), [Change::Rewritten]);
    assert_eq!(in_place(&[1], &[1, 2], false), [Change::Changed], "append");
    assert_eq!(in_place(&[1], &[1], false), [Change::Changed], "attributes");
    assert_eq!(in_place(&[], &[], true), [Change::Changed], "folder");
}

#[test]
fn events_with_names_that_are_not_one_component_are_refused() {
    let s = scope("/p", "/q");
    let named = |dir: &str, name: &str| {
        let mut e = ev(None, Some("/p/a"), &[]);
        e.directory = dir.into();
        e.notification.new_entry.as_mut().unwrap().name = name.into();
        e
    };
    for (dir, name) in [
        ("/p", ".."),
        ("/p", "."),
        ("/p", ""),
        ("/p", "a/b"),
        ("/p", "x\0y"),
        ("/p/x/..", "private"),
        ("/p/..", "p"),
    ] {
        let e = s.plan(&named(dir, name)).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Refused, "{dir} {name:?}");
    }
    // A move whose new parent steps out through "..".
    let mut moved = ev(Some("/p/a"), Some("/p/b/a"), &[]);
    moved.notification.new_parent_path = "/p/b/../../private".into();
    assert!(s.plan(&moved).is_err());
    // A move to a sound folder outside the scope is a move out of it.
    let out = ev(Some("/p/a"), Some("/private/a"), &[]);
    assert_eq!(show(&s.planned(&out)), ["D:/q/a"]);
}

#[test]
fn excludes_and_scope_see_through_dots() {
    let excludes = vec!["/private".to_string(), "/p/**.swp".to_string()];
    assert!(left_out(&excludes, "/x/../private"));
    assert!(left_out(&excludes, "/x/../private/k"));
    assert!(left_out(&excludes, "/p/./a/../b.swp"));
    assert!(!left_out(&excludes, "/x/private"));
    let s = scope("/p", "/q");
    assert!(s.contains("/p/a"));
    for path in ["/p/../private", "/p/./a", "/p//a", "/p/a/"] {
        assert!(!s.contains(path), "{path}");
    }
}

#[test]
fn a_shard_plans_its_own_paths_and_a_move_across_shards_is_a_delete_and_a_create() {
    use crate::shard::Shard;
    // Two top-level folders in different shards of 8.
    let (a, b) = ("t0", "t2");
    let (sa, sb) = (Shard::of(a, 8).unwrap(), Shard::of(b, 8).unwrap());
    assert_ne!(sa, sb);
    let of = |index| Scope {
        shard: Some(Shard { index, count: 8 }),
        ..scope("/p", "/q")
    };
    let (first, second) = (of(sa), of(sb));
    let (pa, pb) = (format!("/p/{a}/f"), format!("/p/{b}/f"));
    // A create, a delete, a rename inside one folder: its shard only.
    let create = ev(None, Some(&pa), &[]);
    assert_eq!(show(&first.planned(&create)), [format!("U:/q/{a}/f")]);
    assert!(second.planned(&create).is_empty());
    let delete = ev(Some(&pa), None, &[]);
    assert_eq!(show(&first.planned(&delete)), [format!("D:/q/{a}/f")]);
    assert!(second.planned(&delete).is_empty());
    let inside = ev(Some(&pa), Some(&format!("/p/{a}/g")), &[]);
    assert_eq!(
        show(&first.planned(&inside)),
        [format!("R:/q/{a}/f->/q/{a}/g")]
    );
    assert!(second.planned(&inside).is_empty());
    // Across shards: the old shard deletes, the new one creates.
    let across = ev(Some(&pa), Some(&pb), &[]);
    assert_eq!(show(&first.planned(&across)), [format!("D:/q/{a}/f")]);
    assert_eq!(show(&second.planned(&across)), [format!("U:/q/{b}/f")]);
    // A file directly in the folder is the shard of its own name.
    let top = ev(None, Some(&format!("/p/{a}")), &[]);
    assert_eq!(show(&first.planned(&top)), [format!("U:/q/{a}")]);
    // The folder itself is no shard's; excludes still apply.
    assert!(!first.contains("/p"));
    let tmp_shard = of(Shard::of("tmp", 8).unwrap());
    assert!(tmp_shard
        .planned(&ev(None, Some("/p/tmp/x"), &[]))
        .is_empty());
}
