//! Tree comparison for `verify` and `migrate`: walks the two folders level by
//! level (directories of a level listed in parallel, B's names and a print
//! of each entry in memory per worker while A's entries stream past) and
//! classifies every difference. `classify` is pure; the walk only lists,
//! looks up and hashes. A listed name that is not one path component
//! (`paths::admit_name`) is refused where the listing enters: left out of
//! the comparison (never copied, never deleted) and kept for the caller to
//! report or ledger (`Walk::refused`).

use crate::error::Result;
use crate::filer::FilerClient;
use crate::paths::join_path;
use crate::pb::filer::Entry;
use crate::replicate::conflict::{mtime_ns, size};
use crate::retry::{retry, Cancel, Policy};
use std::collections::HashMap;

pub mod deletes;

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
    /// A's and B's HTTP agents (each in its cluster's scheme).
    pub http: (&'a crate::volume::Http, &'a crate::volume::Http),
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
    /// Counts B's entries listed (the size of the target folder a delete
    /// is weighed against; folders only on B are not walked into).
    pub listed_b: Option<&'a std::sync::atomic::AtomicU64>,
    /// What a missing A folder means (see `MissingA`).
    pub missing_a: MissingA,
    /// Listed entries whose names were refused: (the path as listed, with
    /// control characters escaped; why).
    pub refused: std::sync::Mutex<Vec<(String, String)>>,
}

/// What a walk does when A has no folder at its path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MissingA {
    /// Refused (a migration of nothing is a mistake).
    Refused,
    /// Refused when B's folder holds anything: read as empty, a missing
    /// source would make B empty one way (a mistyped `--a-path`, a folder
    /// gone from A); with nothing on B, the folder may simply come later.
    RefusedIfBHolds,
    /// Walked as empty: both ways nothing is deleted, and a folder one side
    /// lacks is made from the other's (a new cluster joining).
    Empty,
}

/// Whether `path` is a folder on `c` (the root always is); an error names
/// a file found there.
fn is_folder(c: &FilerClient, path: &str, cancel: &Cancel) -> Result<bool> {
    if path == "/" {
        return Ok(true);
    }
    let (dir, name) = crate::paths::split_path(path);
    let e = retry(
        &format!("LookupDirectoryEntry {path}"),
        Policy::SHORT,
        cancel,
        || c.lookup(dir, name),
    )?;
    match e {
        Some(e) if !e.is_directory => Err(crate::error::Error::usage(format!(
            "{path} is a file, not a folder"
        ))),
        e => Ok(e.is_some()),
    }
}

/// What `classify` looks at of an entry, in a few bytes: two entries with
/// equal prints whose chunks cover them classify as equal (the content
/// tag and the attributes are hashed).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Print {
    dir: bool,
    covered: bool,
    size: u64,
    mtime: i64,
    rest: u64,
}

fn print(e: &Entry) -> Print {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta(e).hash(&mut h);
    if !e.is_directory {
        etag(e).hash(&mut h);
    }
    Print {
        dir: e.is_directory,
        covered: covered(e),
        size: if e.is_directory { 0 } else { size(e) },
        mtime: mtime_ns(e),
        rest: h.finish(),
    }
}

/// What one folder's comparison has found so far.
struct Found<'s> {
    diffs: Vec<Diff>,
    sub: Vec<String>,
    send: &'s dyn Fn(Vec<Diff>) -> bool,
    /// `send` said the walk is ending.
    ended: bool,
}

impl Walk<'_> {
    /// Differences handed over at a time (a bound on what a walk holds).
    const BATCH: usize = 2048;

    /// B's entries of one folder held whole at most; a larger folder is
    /// held as prints.
    const HOLD: usize = 10_000;

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
    /// other, shallowest first (a folder comes before what is in it), and
    /// an empty batch once a depth is done (the batches since the last one
    /// may be applied together). The folders of a depth are compared in
    /// parallel, and their differences reach `each` (on this thread)
    /// through a queue of one: a walk holds a batch per folder listing
    /// (`pool`'s threads), the one waiting and `each`'s, never a depth's
    /// differences; a wide tree therefore holds no more than a tree of a
    /// few folders.
    pub fn levels(&self, mut each: impl FnMut(Vec<Diff>) -> Result<()>) -> Result<()> {
        self.check_roots()?;
        let mut level = vec![String::new()];
        while !level.is_empty() {
            let next = std::sync::Mutex::new(Vec::new());
            let (tx, rx) = crossbeam_channel::bounded::<Result<Vec<Diff>>>(1);
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
            if failed.is_none() {
                failed = each(Vec::new()).err();
            }
            if let Some(e) = failed {
                return Err(e);
            }
            level = next.into_inner().unwrap();
            level.sort();
        }
        Ok(())
    }

    /// A walk never reads a missing source folder as empty where that
    /// would cost B its files (see `MissingA`).
    fn check_roots(&self) -> Result<()> {
        let on = |side: char| format!("--{side}-path on {}", side.to_ascii_uppercase());
        let a = is_folder(self.a, self.a_path, self.cancel).map_err(|e| e.context(on('a')))?;
        let refused = match self.missing_a {
            _ if a => false,
            MissingA::Empty => false,
            MissingA::Refused => true,
            MissingA::RefusedIfBHolds => {
                let first = retry("ListEntries", Policy::SHORT, self.cancel, || {
                    self.b.first(self.b_path)
                });
                first.map_err(|e| e.context(on('b')))?.is_some()
            }
        };
        if refused {
            return Err(crate::error::Error::usage(format!(
                "A has no folder {}: nothing was compared or written. Check --a-path (a typo, or \
                 the wrong cluster?); if the folder is new, create it on A first",
                self.a_path
            )));
        }
        Ok(())
    }

    /// Compares one directory: its differences go to `send` in batches
    /// (false: the walk is ending); returns the subdirectories to walk.
    ///
    /// The two filers may order names differently (a Postgres store by its
    /// collation, leveldb by bytes), so listings cannot be merged as they
    /// come: B's side is held by name while A's streams past it. A folder
    /// of up to `HOLD` entries is held whole. Past that, only a print of
    /// each entry is kept (a few bytes a name): an A entry whose print
    /// differs is looked up on B, and the names only B holds are picked
    /// from a second listing of B. Memory grows with the largest folder's
    /// names, never its entries.
    fn dir(&self, rel: &str, send: &dyn Fn(Vec<Diff>) -> bool) -> Result<Vec<String>> {
        let (a_dir, b_dir) = (
            crate::paths::under(self.a_path, rel),
            crate::paths::under(self.b_path, rel),
        );
        let mut held: HashMap<String, (Print, Option<Entry>)> = HashMap::new();
        let mut whole = true;
        self.each(self.b, &b_dir, |e| {
            if let Some(n) = self.listed_b {
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if whole && held.len() >= Self::HOLD {
                whole = false;
                held.values_mut().for_each(|(_, e)| *e = None);
            }
            held.insert(e.name.clone(), (print(&e), whole.then_some(e)));
            Ok(true)
        })?;
        let mut out = Found {
            diffs: Vec::new(),
            sub: Vec::new(),
            send,
            ended: false,
        };
        let child = |name: &str| join_path(if rel.is_empty() { "/" } else { rel }, name);
        let skipped = |name: &str| {
            let own =
                |root: &str| crate::replicate::left_out(&[], &crate::paths::under(root, name));
            own(self.a_path) || own(self.b_path) || self.skip.is_some_and(|skip| skip(name))
        };
        self.each(self.a, &a_dir, |a| {
            let (name, b) = (child(&a.name), held.remove(&a.name));
            if skipped(&name) {
                return Ok(true);
            }
            match b {
                Some((p, b)) if p == print(&a) && p.covered => {
                    self.found(&mut out, name, Some(a), b, true)
                }
                Some((_, Some(b))) => self.found(&mut out, name, Some(a), Some(b), false),
                Some((_, None)) => {
                    let b = self.lookup_b(&name)?;
                    self.found(&mut out, name, Some(a), b, false)
                }
                None => self.found(&mut out, name, Some(a), None, false),
            }
        })?;
        let only_b = |b: Entry, out: &mut Found| {
            let name = child(&b.name);
            match skipped(&name) {
                true => Ok(true),
                false => self.found(out, name, None, Some(b), false),
            }
        };
        if whole {
            for (_, b) in held.into_values() {
                if out.ended || !only_b(b.expect("held whole"), &mut out)? {
                    break;
                }
            }
        } else if !held.is_empty() && !out.ended {
            self.each(self.b, &b_dir, |b| {
                if held.remove(&b.name).is_some() && !only_b(b, &mut out)? {
                    return Ok(false);
                }
                Ok(!held.is_empty())
            })?;
        }
        if !out.diffs.is_empty() && !out.ended {
            send(out.diffs);
        }
        Ok(out.sub)
    }

    /// One name compared (`same`: its prints showed A's and B's entries
    /// equal; B's may not be at hand); false when the walk is ending.
    fn found(
        &self,
        out: &mut Found,
        rel: String,
        a: Option<Entry>,
        b: Option<Entry>,
        same: bool,
    ) -> Result<bool> {
        let scaffold = [self.a_path, self.b_path]
            .iter()
            .any(|root| crate::replicate::is_scaffold(&crate::paths::under(root, &rel)));
        let mut classes = match same || scaffold {
            true => Vec::new(),
            false => classify(a.as_ref(), b.as_ref()),
        };
        let file = |e: &Option<Entry>| e.as_ref().is_some_and(|e| !e.is_directory);
        if classes.is_empty() && self.checksum && file(&a) {
            let ha = self.hash(self.a, &crate::paths::under(self.a_path, &rel))?;
            let hb = self.hash(self.b, &crate::paths::under(self.b_path, &rel))?;
            if ha != hb {
                classes.push(Class::Content);
            }
        }
        // Bytes differ under equal prints: B's entry, for the repair.
        let b = match (same && !classes.is_empty(), b) {
            (true, None) => self.lookup_b(&rel)?,
            (_, b) => b,
        };
        let dir = |e: &Option<Entry>| e.as_ref().is_some_and(|e| e.is_directory);
        if dir(&a) || dir(&b) {
            out.sub.push(rel.clone());
        }
        for class in classes {
            out.diffs.push(Diff {
                class,
                rel: rel.clone(),
                a: a.clone(),
                b: b.clone(),
            });
        }
        if out.diffs.len() >= Self::BATCH {
            out.ended = !(out.send)(std::mem::take(&mut out.diffs));
        }
        Ok(!out.ended)
    }

    /// B's entry at `rel`, retried as every call is.
    fn lookup_b(&self, rel: &str) -> Result<Option<Entry>> {
        let path = crate::paths::under(self.b_path, rel);
        let (dir, name) = crate::paths::split_path(&path);
        retry(
            &format!("LookupDirectoryEntry {path}"),
            Policy::SHORT,
            self.cancel,
            || self.b.lookup(dir, name),
        )
    }

    /// Lists `dir` page by page in the store's order, handing each entry
    /// to `f` until it answers false. Each page is retried as every call
    /// is (a broken listing resumes after the last name it gave); a folder
    /// missing (or gone meanwhile) lists as empty. Paced and counted.
    fn each(
        &self,
        c: &FilerClient,
        dir: &str,
        mut f: impl FnMut(Entry) -> Result<bool>,
    ) -> Result<()> {
        let page = |start: &str, n: u32| {
            let what = format!("ListEntries {dir}");
            let page = match retry(&what, Policy::SHORT, self.cancel, || {
                c.list_after(dir, start, n)
            }) {
                Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Vec::new(),
                page => page?,
            };
            let listed = page.len() as u64;
            if let Some(p) = self.pace {
                p.take(listed);
            }
            if let Some(c) = self.listed {
                c.fetch_add(listed, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(page)
        };
        let side = if std::ptr::eq(c, self.a) { 'A' } else { 'B' };
        crate::filer::paged(page, |e| match crate::paths::admit_name(&e.name) {
            Ok(()) => f(e),
            Err(why) => {
                let path = join_path(dir, &e.name).escape_debug().to_string();
                let why = format!(
                    "refused from {side}'s listing: the name {:?} is not one path component \
                     ({why}); not compared, copied or deleted",
                    e.name
                );
                self.refused.lock().unwrap().push((path, why));
                Ok(true)
            }
        })
    }

    /// The listed entries refused so far (see `refused`), taken.
    pub fn take_refused(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.refused.lock().unwrap())
    }

    /// FNV-1a over a file's bytes, read through the filer.
    fn hash(&self, c: &FilerClient, path: &str) -> Result<u64> {
        use crate::volume::Server;
        let http = if std::ptr::eq(c, self.a) {
            self.http.0
        } else {
            self.http.1
        };
        let host = c.live_addr().http();
        let url = http.url(&host, &crate::volume::url_path(path));
        let mut resp = http
            .agent()
            .get(&url)
            .call()
            .map_err(|e| http.fail(Server::Filer, &host, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = crate::volume::transfer::short_body(&mut resp);
            return Err(http
                .refusal(Server::Filer, &host, status, &body)
                .unwrap_or_else(|| crate::error::Error::from(ureq::Error::StatusCode(status)))
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
            // The walk skips the comparison where the prints agree.
            if let (Some(a), Some(b)) = (&a, &b) {
                let same = print(a) == print(b) && print(a).covered;
                assert_eq!(same, want.is_empty(), "prints of {a:?} vs {b:?}");
            }
        }
        // Both sides with the same gap: equal prints, yet a difference.
        assert!(!print(&gap).covered);
        assert_eq!(classify(Some(&gap), Some(&gap)), vec![ChunkCoverage]);
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
