//! Tree comparison for `verify` and `migrate`: walks the two folders level by
//! level (directories of a level listed in parallel, one listing in memory
//! per worker) and classifies every difference. `classify` is pure; the walk
//! only lists and hashes.

use crate::error::Result;
use crate::filer::FilerClient;
use crate::paths::join_path;
use crate::pb::filer::Entry;
use crate::replicate::conflict::{mtime_ns, size};
use crate::retry::{retry, Cancel, Policy};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    MissingOnB,
    OnlyOnB,
    Type,
    Size,
    Mtime,
    Etag,
    ChunkCoverage,
    Content,
    /// Same content, other attributes: a folder's mtime or mode, a file's
    /// mode, owner, mime or extended attributes (S3 tags and metadata).
    Attributes,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::MissingOnB,
        Class::OnlyOnB,
        Class::Type,
        Class::Size,
        Class::Mtime,
        Class::Etag,
        Class::ChunkCoverage,
        Class::Content,
        Class::Attributes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::MissingOnB => "missing on B",
            Class::OnlyOnB => "only on B",
            Class::Type => "type",
            Class::Size => "size",
            Class::Mtime => "mtime",
            Class::Etag => "etag",
            Class::ChunkCoverage => "chunk coverage",
            Class::Content => "content",
            Class::Attributes => "attributes",
        }
    }
}

/// One difference at a path relative to the compared folders.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub class: Class,
    pub rel: String,
    /// A's entry (when there is one), for repairs.
    pub a: Option<Entry>,
    /// B's entry (when there is one).
    pub b: Option<Entry>,
}

/// A version tag comparable across clusters: md5 when the filer kept one,
/// else the chunks' (offset, size, ETag), else the inline content.
fn etag(e: &Entry) -> Vec<u8> {
    if let Some(md5) = e
        .attributes
        .as_ref()
        .map(|a| &a.md5)
        .filter(|m| !m.is_empty())
    {
        return md5.clone();
    }
    if !e.chunks.is_empty() {
        let mut v = Vec::new();
        let mut cs: Vec<_> = e.chunks.iter().collect();
        cs.sort_by_key(|c| (c.offset, c.modified_ts_ns));
        for c in cs {
            v.extend_from_slice(&c.offset.to_be_bytes());
            v.extend_from_slice(&c.size.to_be_bytes());
            v.extend_from_slice(c.e_tag.as_bytes());
        }
        return v;
    }
    e.content.clone()
}

/// Whether the chunks (or the inline content) cover every byte of the file.
pub fn covered(e: &Entry) -> bool {
    let n = size(e);
    if e.is_directory || n == 0 || !e.content.is_empty() && e.content.len() as u64 >= n {
        return true;
    }
    let mut spans: Vec<(u64, u64)> = e
        .chunks
        .iter()
        .map(|c| (c.offset.max(0) as u64, c.offset.max(0) as u64 + c.size))
        .collect();
    spans.sort();
    let mut end = 0;
    for (s, t) in spans {
        if s > end {
            return false;
        }
        end = end.max(t);
    }
    end >= n
}

/// Classifies what differs between A's and B's entry at one path. Pure.
/// What a user sees of an entry besides its content and times: mode, uid,
/// gid, mime, symlink target, extended attributes in key order.
type Meta<'a> = (
    u32,
    u32,
    u32,
    String,
    String,
    Vec<(&'a String, &'a Vec<u8>)>,
);

fn meta(e: &Entry) -> Meta<'_> {
    let a = e.attributes.clone().unwrap_or_default();
    let mut ext: Vec<_> = e.extended.iter().collect();
    ext.sort();
    (a.file_mode, a.uid, a.gid, a.mime, a.symlink_target, ext)
}

pub fn classify(a: Option<&Entry>, b: Option<&Entry>) -> Vec<Class> {
    let (a, b) = match (a, b) {
        (None, None) => return vec![],
        (Some(_), None) => return vec![Class::MissingOnB],
        (None, Some(_)) => return vec![Class::OnlyOnB],
        (Some(a), Some(b)) => (a, b),
    };
    if a.is_directory != b.is_directory {
        return vec![Class::Type];
    }
    if a.is_directory {
        return if meta(a) != meta(b) || mtime_ns(a) != mtime_ns(b) {
            vec![Class::Attributes]
        } else {
            vec![]
        };
    }
    let mut out = Vec::new();
    if size(a) != size(b) {
        out.push(Class::Size);
    }
    if mtime_ns(a) != mtime_ns(b) {
        out.push(Class::Mtime);
    }
    if out.is_empty() && etag(a) != etag(b) {
        out.push(Class::Etag);
    }
    if !covered(a) || !covered(b) {
        out.push(Class::ChunkCoverage);
    }
    if out.is_empty() && meta(a) != meta(b) {
        out.push(Class::Attributes);
    }
    out
}

/// What to compare and how.
pub struct Walk<'a> {
    pub a: &'a FilerClient,
    pub b: &'a FilerClient,
    pub a_path: &'a str,
    pub b_path: &'a str,
    /// Also hash file bytes on both sides (through the filers' HTTP).
    pub checksum: bool,
    pub http: &'a crate::volume::Http,
    /// Lists folders; never the pool that `levels`' caller repairs on.
    pub pool: &'a rayon::ThreadPool,
    /// Ends the listings' retries.
    pub cancel: &'a Cancel,
    /// Paths (relative to the folders) left out, with all below them.
    pub skip: Option<&'a (dyn Fn(&str) -> bool + Sync)>,
    /// Entries listed per second at most, both sides together (a rescan's
    /// pace: a walk must not be a surprise load).
    pub pace: Option<&'a crate::volume::throttle::Throttle>,
    /// Counts the entries listed.
    pub listed: Option<&'a std::sync::atomic::AtomicU64>,
}

/// One folder's entries by name, retried as every listing is. Held whole:
/// the filer stores order names their own way (a Postgres store by its
/// collation, leveldb by bytes), so two listings can only be merged once
/// both are complete; memory grows with the largest folder, not the tree.
fn list(c: &FilerClient, dir: &str, cancel: &Cancel) -> Result<BTreeMap<String, Entry>> {
    retry(&format!("ListEntries {dir}"), Policy::SHORT, cancel, || {
        let mut m = BTreeMap::new();
        match c.list(dir, |e| {
            m.insert(e.name.clone(), e);
            Ok(())
        }) {
            Ok(()) => Ok(m),
            // A directory missing on one side lists as empty.
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Ok(m),
            Err(e) => Err(e),
        }
    })
}

impl Walk<'_> {
    /// Differences handed over at a time (a bound on what a walk holds).
    const BATCH: usize = 2048;

    /// Every difference, in path order.
    pub fn diffs(&self) -> Result<Vec<Diff>> {
        let mut out = Vec::new();
        self.levels(|d| {
            out.extend(d);
            Ok(())
        })?;
        out.sort_by(|x, y| x.rel.cmp(&y.rel).then(x.class.cmp(&y.class)));
        Ok(out)
    }

    /// Hands the differences to `each` in batches, one depth after the
    /// other, shallowest first (a folder comes before what is in it). The
    /// folders of a depth are compared in parallel, and their differences
    /// reach `each` (on this thread) through a short queue: a walk holds a
    /// few batches at a time, not a depth's or a folder's differences.
    pub fn levels(&self, mut each: impl FnMut(Vec<Diff>) -> Result<()>) -> Result<()> {
        let mut level = vec![String::new()];
        while !level.is_empty() {
            let next = std::sync::Mutex::new(Vec::new());
            let (tx, rx) = crossbeam_channel::bounded::<Result<Vec<Diff>>>(4);
            let mut failed = None;
            self.pool.in_place_scope(|s| {
                for rel in &level {
                    let (tx, next) = (tx.clone(), &next);
                    s.spawn(move |_| {
                        let send = |d: Vec<Diff>| tx.send(Ok(d)).is_ok();
                        match self.dir(rel, &send) {
                            Ok(sub) => next.lock().unwrap().extend(sub),
                            Err(e) => {
                                let _ = tx.send(Err(e));
                            }
                        }
                    });
                }
                drop(tx);
                // The first failure ends the walk: the queue goes, and the
                // folders still listing stop at their next batch.
                for msg in rx {
                    if let Err(e) = msg.and_then(&mut each) {
                        failed = Some(e);
                        break;
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            level = next.into_inner().unwrap();
            level.sort();
        }
        Ok(())
    }

    /// Compares one directory: its differences go to `send` in batches
    /// (false: the walk is ending); returns the subdirectories to walk.
    fn dir(&self, rel: &str, send: &dyn Fn(Vec<Diff>) -> bool) -> Result<Vec<String>> {
        let mut la = list(self.a, &crate::paths::under(self.a_path, rel), self.cancel)?;
        let mut lb = list(self.b, &crate::paths::under(self.b_path, rel), self.cancel)?;
        let n = (la.len() + lb.len()) as u64;
        if let Some(p) = self.pace {
            p.take(n);
        }
        if let Some(c) = self.listed {
            c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        let mut diffs = Vec::new();
        let mut sub = Vec::new();
        let names: std::collections::BTreeSet<String> =
            la.keys().chain(lb.keys()).cloned().collect();
        for name in names {
            // Taken out as compared: what is compared is not held twice.
            let (a, b) = (la.remove(&name), lb.remove(&name));
            let child = join_path(if rel.is_empty() { "/" } else { rel }, &name);
            if self.skip.is_some_and(|skip| skip(&child)) {
                continue;
            }
            let mut classes = classify(a.as_ref(), b.as_ref());
            if classes.is_empty() && self.checksum && a.as_ref().is_some_and(|e| !e.is_directory) {
                let ha = self.hash(self.a, &crate::paths::under(self.a_path, &child))?;
                let hb = self.hash(self.b, &crate::paths::under(self.b_path, &child))?;
                if ha != hb {
                    classes.push(Class::Content);
                }
            }
            if a.as_ref().is_some_and(|e| e.is_directory)
                || b.as_ref().is_some_and(|e| e.is_directory)
            {
                sub.push(child.clone());
            }
            for class in classes {
                diffs.push(Diff {
                    class,
                    rel: child.clone(),
                    a: a.clone(),
                    b: b.clone(),
                });
            }
            if diffs.len() >= Self::BATCH && !send(std::mem::take(&mut diffs)) {
                return Ok(sub);
            }
        }
        if !diffs.is_empty() {
            send(diffs);
        }
        Ok(sub)
    }

    /// FNV-1a over a file's bytes, read through the filer.
    fn hash(&self, c: &FilerClient, path: &str) -> Result<u64> {
        let url = format!(
            "http://{}{}",
            c.live_addr().http(),
            crate::volume::url_path(path)
        );
        let mut resp = self.http.agent().get(&url).call()?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(crate::error::Error::from(ureq::Error::StatusCode(status))
                .context(format!("GET {url}")));
        }
        let mut h = crate::util::Fnv::default();
        let mut r = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut r, &mut buf)?;
            if n == 0 {
                return Ok(h.finish());
            }
            h.write(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::filer::{FileChunk, FuseAttributes};

    fn file(size: u64, mtime: i64, etag: &str) -> Entry {
        let mut e = Entry::new();
        let mut a = FuseAttributes::new();
        a.file_size = size;
        a.mtime = mtime;
        e.attributes = Some(a).into();
        let mut c = FileChunk::new();
        c.size = size;
        c.e_tag = etag.into();
        e.chunks.push(c);
        e
    }

    fn dir() -> Entry {
        let mut e = Entry::new();
        e.is_directory = true;
        e
    }

    #[test]
    fn table() {
        use Class::*;
        let f = file(10, 5, "x");
        let mut gap = f.clone();
        gap.chunks[0].offset = 2;
        let mut tagged = f.clone();
        tagged
            .extended
            .insert("Seaweed-X-Amz-Tagging-k".into(), b"v".to_vec());
        let mut newer_dir = dir();
        newer_dir.attributes.mut_or_insert_default().mtime = 9;
        let cases: Vec<(Option<Entry>, Option<Entry>, Vec<Class>)> = vec![
            (Some(f.clone()), Some(f.clone()), vec![]),
            (Some(f.clone()), Some(tagged), vec![Attributes]),
            (Some(dir()), Some(newer_dir), vec![Attributes]),
            (Some(f.clone()), None, vec![MissingOnB]),
            (None, Some(f.clone()), vec![OnlyOnB]),
            (Some(f.clone()), Some(dir()), vec![Type]),
            (Some(dir()), Some(dir()), vec![]),
            (Some(f.clone()), Some(file(11, 5, "x")), vec![Size]),
            (Some(f.clone()), Some(file(10, 6, "x")), vec![Mtime]),
            (Some(f.clone()), Some(file(10, 5, "y")), vec![Etag]),
            (
                Some(f.clone()),
                Some(gap.clone()),
                vec![Etag, ChunkCoverage],
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(classify(a.as_ref(), b.as_ref()), want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn coverage_finds_gaps() {
        let mut e = file(10, 1, "x");
        e.chunks[0].size = 4;
        let mut c2 = e.chunks[0].clone();
        c2.offset = 6;
        e.chunks.push(c2);
        assert!(!covered(&e));
        e.chunks[1].offset = 4;
        e.chunks[1].size = 6;
        assert!(covered(&e));
        let mut inline = Entry::new();
        inline.content = b"abc".to_vec();
        let mut a = FuseAttributes::new();
        a.file_size = 3;
        inline.attributes = Some(a).into();
        assert!(covered(&inline));
    }
}
