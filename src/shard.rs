//! `sync --ha --shards N`: a link's work split into N shards that instances
//! on any machine share. Pure: which shard a path belongs to (`Shard::of`),
//! how many shards an instance should hold when K are alive (`share`), and
//! what it does about it on one look at the locks (`Plan::decide`); the
//! locks, threads and terms live in `commands::shards`.
//!
//! A path belongs to the shard of its first component below the mapped
//! folder (a bucket, a top-level folder, or a file directly in the folder):
//! FNV-1a 64 of that component's bytes, mod N. Renames inside one top-level
//! folder stay inside one shard; a move between top-level folders is a
//! delete for one shard and a create for the other. The mapped folder
//! itself belongs to no shard (it is the target's root and never written).

/// One shard of a link: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {}/{}", self.index, self.count)
    }
}

/// FNV-1a, 64 bits: stable across versions, machines and languages.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Shard {
    /// The shard index of `rel`, a path below the mapped folder ("d1/x" or
    /// "/d1/x"); None for the folder itself ("" or "/").
    pub fn of(rel: &str, count: u32) -> Option<u32> {
        let first = rel.trim_start_matches('/').split('/').next()?;
        if first.is_empty() || count == 0 {
            return None;
        }
        Some((fnv1a64(first.as_bytes()) % u64::from(count)) as u32)
    }

    /// True when `rel` (below the mapped folder) is this shard's.
    pub fn holds(&self, rel: &str) -> bool {
        Self::of(rel, self.count) == Some(self.index)
    }

    /// True when the source path `path` is below `folder` and this shard's.
    pub fn holds_path(&self, folder: &str, path: &str) -> bool {
        let rel = if folder == "/" {
            Some(path)
        } else {
            path.strip_prefix(folder).filter(|r| r.starts_with('/'))
        };
        rel.is_some_and(|r| self.holds(r))
    }
}

/// How many of `n` shards the member of rank `rank` (0-based, among `k`
/// live members ordered by their member slot) should hold: `n / k`, one more
/// for the first `n % k` ranks. The shares of all ranks add up to `n`.
pub fn share(n: u32, k: u32, rank: u32) -> u32 {
    if k == 0 {
        return n;
    }
    n / k + u32::from(rank < n % k)
}

/// What an instance sees on one look at the locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub shards: u32,
    /// Live member slots (held by some instance), this instance's among them.
    pub live_slots: Vec<u32>,
    /// This instance's member slot (None: every slot is taken).
    pub own_slot: Option<u32>,
    /// The shards this instance holds now.
    pub held: Vec<u32>,
    /// Consecutive looks on which this instance held more than its share
    /// (before this one).
    pub over_for: u32,
}

/// What to do about one look.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub share: u32,
    /// Shards to try to take, in order, until `share` are held (each may be
    /// held by another instance: then the next is tried).
    pub try_take: Vec<u32>,
    /// Shards to give up (at the end of their window).
    pub release: Vec<u32>,
}

/// Looks in a row an instance holds more than its share before it gives
/// shards up: views of who is alive differ for a moment after a join or a
/// death, and a shard handed over costs a re-subscription.
pub const PATIENCE: u32 = 2;

impl Plan {
    pub fn decide(look: &Look) -> Plan {
        let n = look.shards;
        let Some(own) = look.own_slot else {
            // Not a member (more instances than shards): hold nothing.
            return Plan {
                share: 0,
                try_take: vec![],
                release: look.held.clone(),
            };
        };
        let mut live = look.live_slots.clone();
        if !live.contains(&own) {
            live.push(own);
        }
        live.sort_unstable();
        live.dedup();
        let k = live.len() as u32;
        let rank = live.iter().position(|s| *s == own).unwrap_or(0) as u32;
        let share = share(n, k, rank);
        let held = look.held.len() as u32;
        let mut plan = Plan {
            share,
            ..Plan::default()
        };
        if held < share {
            // Start where this rank's shards would be with everyone at
            // their share, so that instances joining together seldom try
            // the same free shard first.
            let start = (0..rank).map(|r| self::share(n, k, r)).sum::<u32>();
            plan.try_take = (0..n)
                .map(|i| (start + i) % n)
                .filter(|s| !look.held.contains(s))
                .collect();
        } else if held > share && look.over_for + 1 >= PATIENCE {
            let mut held = look.held.clone();
            held.sort_unstable();
            plan.release = held.split_off(share as usize);
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_64() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_path_belongs_to_the_shard_of_its_first_component() {
        let n = 8;
        let d1 = (fnv1a64(b"d1") % 8) as u32;
        let table: &[(&str, Option<u32>)] = &[
            ("", None),
            ("/", None),
            ("d1", Some(d1)),
            ("/d1", Some(d1)),
            ("/d1/x/y.txt", Some(d1)),
            ("d1/", Some(d1)),
            ("/a", Some((fnv1a64(b"a") % 8) as u32)),
            ("/foobar/z", Some((fnv1a64(b"foobar") % 8) as u32)),
        ];
        for (rel, want) in table {
            assert_eq!(Shard::of(rel, n), *want, "{rel:?}");
        }
        assert_eq!(Shard::of("/x", 1), Some(0));
        assert_eq!(Shard::of("/x", 0), None);
        let s = Shard {
            index: d1,
            count: 8,
        };
        assert!(s.holds("/d1/deep/er"));
        assert!(s.holds_path("/src", "/src/d1/f"));
        assert!(s.holds_path("/", "/d1/f"));
        assert!(!s.holds_path("/src", "/src"), "the folder itself");
        assert!(!s.holds_path("/src", "/srcd1/f"), "not below the folder");
        assert!(!s.holds_path("/src", "/other/d1"));
        // Every shard gets some of 40 top-level folders.
        let mut seen = [0; 8];
        for i in 0..40 {
            seen[Shard::of(&format!("/t{i}"), 8).unwrap() as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
    }

    #[test]
    fn shares_add_up_and_differ_by_one_at_most() {
        for n in 1..=20 {
            for k in 1..=8 {
                let all: Vec<u32> = (0..k).map(|r| share(n, k, r)).collect();
                assert_eq!(all.iter().sum::<u32>(), n, "n {n} k {k}");
                let (lo, hi) = (all.iter().min().unwrap(), all.iter().max().unwrap());
                assert!(hi - lo <= 1, "n {n} k {k}: {all:?}");
            }
        }
        assert_eq!(share(16, 3, 0), 6);
        assert_eq!(share(16, 3, 2), 5);
        assert_eq!(share(2, 4, 3), 0, "more members than shards");
    }

    #[test]
    fn an_instance_takes_up_to_its_share_and_gives_up_the_excess_patiently() {
        let look = |live: &[u32], own: Option<u32>, held: &[u32], over_for| Look {
            shards: 8,
            live_slots: live.to_vec(),
            own_slot: own,
            held: held.to_vec(),
            over_for,
        };
        // (look, share, first tries, released)
        type Row = (Look, u32, Vec<u32>, Vec<u32>);
        let table: Vec<Row> = vec![
            // Alone: all 8, starting at 0.
            (look(&[0], Some(0), &[], 0), 8, vec![0, 1, 2], vec![]),
            // Its own slot counts even before the look sees it live.
            (look(&[], Some(0), &[0], 0), 8, vec![1, 2, 3], vec![]),
            // Second of two: 4, starting where rank 1's would be.
            (look(&[0, 3], Some(3), &[], 0), 4, vec![4, 5, 6], vec![]),
            // Holds its share: nothing to do.
            (look(&[0, 3], Some(0), &[0, 1, 2, 3], 0), 4, vec![], vec![]),
            // Over its share for the first time: waits.
            (
                look(&[0, 1], Some(0), &[0, 1, 2, 3, 4, 5], 0),
                4,
                vec![],
                vec![],
            ),
            // Over again: gives up the highest shards beyond its share.
            (
                look(&[0, 1], Some(0), &[5, 0, 1, 2, 3, 4], 1),
                4,
                vec![],
                vec![4, 5],
            ),
            // Three alive, 8 shards: 3, 3, 2.
            (look(&[0, 1, 2], Some(2), &[], 0), 2, vec![6, 7, 0], vec![]),
            // No member slot: holds nothing, gives all up at once.
            (look(&[0, 1], None, &[3], 0), 0, vec![], vec![3]),
        ];
        for (i, (l, share, first, release)) in table.into_iter().enumerate() {
            let p = Plan::decide(&l);
            assert_eq!(p.share, share, "row {i}");
            assert_eq!(
                p.try_take.iter().take(3).copied().collect::<Vec<_>>(),
                first,
                "row {i}"
            );
            assert!(p.try_take.iter().all(|s| !l.held.contains(s)), "row {i}");
            assert_eq!(p.release, release, "row {i}");
        }
    }
}
