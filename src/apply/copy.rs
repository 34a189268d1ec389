//! Chunk bytes from the source's volume servers (or filer) to the target's:
//! every chunk of an entry mapped to a target chunk, reused when the target
//! already holds a copy of that very source chunk, copied otherwise (in
//! parallel on the chunk pool), manifests rewritten to name the copies. A
//! copy that fails frees the copies it made. Manifests come from the peer:
//! they nest a bounded depth, each is opened once per entry, and their
//! blobs are read up to a bounded size. A batch's small chunks are copied
//! ahead together first (`Applier::copy_ahead`).

use super::Applier;
use crate::error::{Error, ErrorKind, Result};
use crate::paths::join_path;
use crate::pb::filer::*;
use crate::replicate::{Action, Change};
use crate::retry::retry;
use crate::volume::{fid, Size, Upload};
use protobuf::Message;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// How one apply moves chunk bytes.
#[derive(Clone, Copy)]
pub struct Transfer<'a> {
    /// Where chunks are copied in parallel (owned by the pipeline).
    pub pool: &'a rayon::ThreadPool,
    /// Also read chunks the source has deleted: a volume serves their bytes
    /// until it is vacuumed. Without it, such a chunk is `NotFound`: most
    /// often the version was replaced or removed since (see
    /// `source_replaced`), and its bytes need not travel.
    pub deleted_too: bool,
    /// A creation may be left unanswered (`Outcome::parked`) for the
    /// caller to settle later (`Applier::settle`): one thread sends many,
    /// rather than a thread each waiting for its answer.
    pub park: bool,
}

/// A chunk copied onto the target for one write (not reused): its id and,
/// for a manifest, the ids of the copies it lists, which go with it.
#[derive(Debug, Clone)]
pub(super) struct Fresh {
    pub id: String,
    pub within: Vec<String>,
}

/// The target version of a source entry, and what making it cost.
pub(super) struct Copied {
    pub entry: Entry,
    /// Chunk bytes moved.
    pub bytes: u64,
    /// Copies made for it: to be freed if the write does not keep them.
    pub fresh: Vec<Fresh>,
}

/// How deep manifests may nest. weed writes one level (MaybeManifestize
/// merges data chunks only, 10,000 to a manifest); a manifest that lists
/// itself, or a longer chain, is corrupt rather than recursed into.
const MANIFEST_DEPTH: usize = 4;

/// The longest manifest blob read: weed's hold at most 10,000 chunks,
/// well under 1 MiB.
const MANIFEST_BYTES: u64 = 16 << 20;

/// How much longer than its plaintext an encrypted chunk may be stored:
/// AES-GCM adds its nonce and tag (28 bytes).
const CIPHER_SLACK: u64 = 4096;

/// The manifests opened so far while copying one entry, and how deep the
/// chunk list at hand sits among them. Each manifest is opened once: one
/// met again (a cycle, or listed twice) would repeat or never end.
#[derive(Clone, Copy)]
struct Manifests<'a> {
    seen: &'a Mutex<HashSet<String>>,
    depth: usize,
}

impl Manifests<'_> {
    /// Admits manifest `id` of `path`, or says why it is corrupt.
    fn open(&self, id: &str, path: &str) -> Result<()> {
        let corrupt = |why: String| {
            Err(Error::new(
                ErrorKind::Corrupt,
                format!("chunk manifest {id} of {path}: {why}"),
            ))
        };
        if self.depth >= MANIFEST_DEPTH {
            return corrupt(format!("manifests nest deeper than {MANIFEST_DEPTH}"));
        }
        if !self.seen.lock().unwrap().insert(id.to_string()) {
            return corrupt("listed again within the same file".into());
        }
        Ok(())
    }
}

/// Chunks larger than this are streamed from the download into the upload;
/// smaller ones are read whole (the fastest for the many small files).
const STREAM_ABOVE: u64 = 1 << 20;

/// Chunks at most this large are read ahead for a batch.
const AHEAD_MAX: u64 = 64 * 1024;
/// The most bytes read ahead for one batch (the rest are read one by one).
const AHEAD_BUDGET: u64 = 32 << 20;
/// A batch with fewer chunks to read than this reads them one by one: a
/// live change gains nothing from a round trip of its own.
const AHEAD_LEAST: usize = 4;
/// A batch's chunks are copied ahead in groups of this many, on the chunk
/// pool: one group's reads go while another's writes do, each on its own
/// connections, so that neither cluster's volume server works one request
/// at a time (Go answers one connection's requests in turn).
const AHEAD_GROUP: usize = 4 * crate::volume::AHEAD_DEPTH;

/// What a batch copied ahead: what its writes did not take is dropped
/// (read chunks) and freed (written copies) when the batch is done.
pub struct Ahead<'a> {
    applier: &'a Applier,
    read: Vec<String>,
    written: Vec<(String, String)>,
}

impl Drop for Ahead<'_> {
    fn drop(&mut self) {
        self.applier.chunks_in.forget_ahead(&self.read);
        self.applier.chunks_out.forget_ahead(&self.written);
    }
}

/// A chunk worth copying ahead: its file's target path, name and MIME
/// type, its file id and size.
struct Wanted<'a> {
    path: String,
    name: &'a str,
    mime: &'a str,
    id: String,
    size: u64,
}

/// The chunks worth copying ahead for `actions`, within `AHEAD_BUDGET`:
/// the small plain chunks of the files the target most likely lacks (new,
/// rewritten, or missing from a walk's listing), which their writes would
/// copy whole. A changed file may reuse the target's copies, and a
/// manifest or an encrypted chunk is copied otherwise.
fn ahead_of<'a>(actions: impl IntoIterator<Item = &'a Action>) -> Vec<Wanted<'a>> {
    let mut budget = AHEAD_BUDGET;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for a in actions {
        let Action::Upsert {
            dir,
            entry,
            change: Change::Created | Change::Rewritten | Change::Missing,
            ..
        } = a
        else {
            continue;
        };
        let mime = entry.attributes.as_ref().map_or("", |a| a.mime.as_str());
        let path = join_path(dir, &entry.name);
        for c in entry
            .chunks
            .iter()
            .filter(|c| !c.is_chunk_manifest && c.cipher_key.is_empty() && c.size <= AHEAD_MAX)
        {
            let id = fid::of_chunk(c);
            if !seen.insert((path.clone(), id.clone())) {
                continue;
            }
            let Some(left) = budget.checked_sub(c.size) else {
                return out;
            };
            budget = left;
            out.push(Wanted {
                path: path.clone(),
                name: &entry.name,
                mime,
                id,
                size: c.size,
            });
        }
    }
    out
}

impl Applier {
    /// Copies ahead the small chunks that `actions` (a batch about to be
    /// applied) will most likely copy, many per round trip, in groups side
    /// by side on `pool`: each read from the source's volume servers
    /// (`ChunkSource::read_ahead`), then written to the target's
    /// (`ChunkSink::write_ahead`); the writes take the copies
    /// (`copy_chunk`), or the bytes where a copy could not be written. Per
    /// small file this halves both volume servers' CPU and saves the sync
    /// two requests of their own.
    pub fn copy_ahead<'a>(
        &self,
        actions: impl IntoIterator<Item = &'a Action>,
        pool: &rayon::ThreadPool,
    ) -> Ahead<'_> {
        let mut ahead = Ahead {
            applier: self,
            read: Vec::new(),
            written: Vec::new(),
        };
        if self.dry_run {
            return ahead;
        }
        let wanted = ahead_of(actions);
        if wanted.len() < AHEAD_LEAST {
            return ahead;
        }
        let groups: Vec<&[Wanted]> = wanted.chunks(AHEAD_GROUP).collect();
        let copied: Vec<_> = match groups.len() {
            1 => vec![self.copy_group_ahead(groups[0])],
            _ => pool.install(|| {
                groups
                    .par_iter()
                    .map(|g| self.copy_group_ahead(g))
                    .collect()
            }),
        };
        for (read, written) in copied {
            ahead.read.extend(read);
            ahead.written.extend(written);
        }
        ahead
    }

    /// Copies one group of chunks ahead: returns the ids of the chunks
    /// kept read (not written ahead) and the (path, source id) of those
    /// written.
    fn copy_group_ahead(&self, wanted: &[Wanted]) -> (Vec<String>, Vec<(String, String)>) {
        let ids: Vec<(String, u64)> = wanted.iter().map(|w| (w.id.clone(), w.size)).collect();
        let mut bodies = self.chunks_in.read_ahead(&ids);
        let to_write: Vec<crate::volume::WriteAhead> = wanted
            .iter()
            .filter_map(|w| {
                Some(crate::volume::WriteAhead {
                    path: &w.path,
                    name: w.name,
                    mime: w.mime,
                    source: &w.id,
                    data: bodies.get(&w.id)?,
                })
            })
            .collect();
        let written: Vec<(String, String)> = self
            .chunks_out
            .write_ahead(&to_write)
            .into_iter()
            .map(|i| (to_write[i].path.to_string(), to_write[i].source.to_string()))
            .collect();
        drop(to_write);
        for (_, id) in &written {
            bodies.remove(id);
        }
        (self.chunks_in.keep_ahead(bodies), written)
    }
}

impl Applier {
    /// Frees the copies in `fresh` that the target does not name (`kept`):
    /// a write that failed, or that the target's own version won over.
    pub(super) fn free_unkept(&self, fresh: &[Fresh], kept: &HashSet<String>) {
        let unused: Vec<String> = fresh
            .iter()
            .filter(|f| !kept.contains(&f.id))
            .flat_map(|f| std::iter::once(f.id.clone()).chain(f.within.iter().cloned()))
            .collect();
        if !unused.is_empty() {
            self.chunks_out.discard(&unused);
        }
    }

    /// The target version of `src`: its chunks mapped by `copy_chunks`.
    pub(super) fn copy_entry(
        &self,
        via: Transfer,
        src: &Entry,
        reuse: &HashMap<String, FileChunk>,
        path: &str,
    ) -> Result<Copied> {
        let mime = src
            .attributes
            .as_ref()
            .map(|a| a.mime.clone())
            .unwrap_or_default();
        let seen = Mutex::new(HashSet::new());
        let top = Manifests {
            seen: &seen,
            depth: 0,
        };
        let (chunks, bytes, fresh) =
            self.copy_chunks((via, top), &src.chunks, reuse, path, (&src.name, &mime))?;
        let mut entry = src.clone();
        entry.chunks = chunks;
        // Target chunks belong to this entry alone: hard links become copies.
        entry.hard_link_id.clear();
        entry.hard_link_counter = 0;
        Ok(Copied {
            entry,
            bytes,
            fresh,
        })
    }

    /// Maps every source chunk to a target chunk: reused when the target
    /// already holds a copy of it, copied otherwise (in parallel). Should one
    /// fail, the copies made here are freed.
    fn copy_chunks(
        &self,
        (via, nest): (Transfer, Manifests),
        src: &[FileChunk],
        reuse: &HashMap<String, FileChunk>,
        path: &str,
        (name, mime): (&str, &str),
    ) -> Result<(Vec<FileChunk>, u64, Vec<Fresh>)> {
        // A chunk, its bytes copied, and the copy made for it (if any).
        let one = |c: &FileChunk| -> Result<(FileChunk, u64, Option<Fresh>)> {
            let id = fid::of_chunk(c);
            if let Some(t) = reuse
                .get(&id)
                .filter(|t| t.offset == c.offset && t.size == c.size)
            {
                let mut kept = c.clone();
                kept.file_id = fid::of_chunk(t);
                kept.fid = Default::default();
                kept.source_file_id = id;
                kept.source_fid = Default::default();
                kept.is_compressed = t.is_compressed;
                return Ok((kept, 0, None));
            }
            let (copy, bytes, within) = if c.is_chunk_manifest {
                self.copy_manifest((via, nest), c, path, (name, mime))?
            } else {
                let (copy, bytes) = self.copy_chunk(c, path, name, mime, via.deleted_too)?;
                (copy, bytes, Vec::new())
            };
            let fresh = Fresh {
                id: copy.file_id.clone(),
                within,
            };
            Ok((copy, bytes, Some(fresh)))
        };
        // One chunk (most files) is copied right here: a hop to the chunk
        // pool would only add two thread switches.
        let results: Vec<Result<(FileChunk, u64, Option<Fresh>)>> = if src.len() <= 1 {
            src.iter().map(one).collect()
        } else {
            via.pool.install(|| src.par_iter().map(one).collect())
        };
        let mut out = Vec::with_capacity(src.len());
        let mut bytes = 0;
        let mut failed = None;
        let mut copies = Vec::new();
        for r in results {
            match r {
                Ok((c, b, fresh)) => {
                    copies.extend(fresh);
                    out.push(c);
                    bytes += b;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => {
                self.free_unkept(&copies, &HashSet::new());
                Err(e)
            }
            None => Ok((out, bytes, copies)),
        }
    }

    fn copy_chunk(
        &self,
        c: &FileChunk,
        path: &str,
        name: &str,
        mime: &str,
        deleted_too: bool,
    ) -> Result<(FileChunk, u64)> {
        let id = fid::of_chunk(c);
        // Encrypted chunks are stored as ciphertext (+28 bytes): copy them verbatim.
        let plain = c.cipher_key.is_empty();
        let size = match plain {
            true => Size::Exact(c.size),
            false => Size::AtMost(c.size.saturating_add(CIPHER_SLACK)),
        };
        let (new_id, bytes) = if plain && c.size > STREAM_ABOVE {
            // Streamed from the download into the upload: memory stays flat
            // whatever the chunk size. A cut on either side starts the chunk
            // again (the same file id, see `upload`).
            let mut up = Upload::default();
            let r = retry(&format!("copy {id}"), self.calls, &self.cancel, || {
                self.chunks_in
                    .stream(&id, Some(c.size), deleted_too, |body, len| {
                        self.chunks_out
                            .upload_stream(path, (name, mime), (body, len), &mut up)
                    })
            });
            if r.is_err() {
                self.chunks_out.abandon(up);
            }
            (r, c.size)
        } else if let Some(copy) = plain
            .then(|| self.chunks_out.take_ahead(path, &id))
            .flatten()
        {
            (Ok(copy), c.size)
        } else {
            let data = retry(&format!("download {id}"), self.calls, &self.cancel, || {
                self.chunks_in.download(&id, size, deleted_too)
            })
            .map_err(|e| e.context(format!("chunk {id} of {path}")))?;
            let r = self.upload(&format!("upload {id}"), path, (name, mime), &data);
            (r, data.len() as u64)
        };
        let new_id = new_id.map_err(|e| e.context(format!("chunk {id} of {path}")))?;
        let mut out = c.clone();
        out.file_id = new_id;
        out.fid = Default::default();
        out.source_file_id = id;
        out.source_fid = Default::default();
        if plain {
            // Downloaded without Accept-Encoding, the volume server sent plain bytes.
            out.is_compressed = false;
        }
        Ok((out, bytes))
    }

    /// Uploads `data` as a chunk of `path`, retried as every call is; each
    /// attempt after a failed one writes the same file id while it may
    /// (see `ChunkSink::upload_with`), and one given up is freed.
    fn upload(
        &self,
        what: &str,
        path: &str,
        (name, mime): (&str, &str),
        data: &[u8],
    ) -> Result<String> {
        let mut up = Upload::default();
        let r = retry(what, self.calls, &self.cancel, || {
            self.chunks_out.upload_with(path, name, mime, data, &mut up)
        });
        if r.is_err() {
            self.chunks_out.abandon(up);
        }
        r
    }

    /// A manifest chunk lists further chunks: copy those, then upload a
    /// manifest that names the target copies. Returns the manifest's copy,
    /// the bytes moved, and every copy it lists (nested manifests' too).
    fn copy_manifest(
        &self,
        (via, nest): (Transfer, Manifests),
        c: &FileChunk,
        path: &str,
        (name, mime): (&str, &str),
    ) -> Result<(FileChunk, u64, Vec<String>)> {
        let id = fid::of_chunk(c);
        if !c.cipher_key.is_empty() {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("chunk manifest {id} of {path} is encrypted; filer-sync cannot rewrite it"),
            ));
        }
        nest.open(&id, path)?;
        let blob = retry(
            &format!("download manifest {id}"),
            self.calls,
            &self.cancel,
            || {
                let size = Size::AtMost(MANIFEST_BYTES);
                self.chunks_in.download(&id, size, via.deleted_too)
            },
        )?;
        let manifest = FileChunkManifest::parse_from_bytes(&blob).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("chunk manifest {id} of {path}: {e}"),
            )
        })?;
        let below = Manifests {
            depth: nest.depth + 1,
            ..nest
        };
        let (children, bytes, fresh) = self.copy_chunks(
            (via, below),
            &manifest.chunks,
            &HashMap::new(),
            path,
            (name, mime),
        )?;
        let within: Vec<String> = fresh
            .into_iter()
            .flat_map(|f| std::iter::once(f.id).chain(f.within))
            .collect();
        let mut out_manifest = FileChunkManifest::new();
        out_manifest.chunks = children
            .into_iter()
            .map(|mut ch| {
                // weed stores manifest children by FileId message, not text.
                ch.fid = fid::parse(&ch.file_id).ok().into();
                ch.file_id.clear();
                ch.source_fid = fid::parse(&ch.source_file_id).ok().into();
                ch.source_file_id.clear();
                ch
            })
            .collect();
        let data = out_manifest
            .write_to_bytes()
            .map_err(|e| Error::remote(format!("encode manifest: {e}")))?;
        let uploaded = self.upload(
            &format!("upload manifest {id}"),
            path,
            ("", "application/octet-stream"),
            &data,
        );
        let new_id = match uploaded {
            Ok(new_id) => new_id,
            Err(e) => {
                self.chunks_out.discard(&within);
                return Err(e);
            }
        };
        let mut out = c.clone();
        out.file_id = new_id;
        out.fid = Default::default();
        out.source_file_id = id;
        out.source_fid = Default::default();
        out.is_compressed = false;
        out.cipher_key.clear();
        Ok((out, bytes, within))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_opened_once_and_nests_a_bounded_depth() {
        let seen = Mutex::new(HashSet::new());
        let top = Manifests {
            seen: &seen,
            depth: 0,
        };
        top.open("3,01", "/f").unwrap();
        // Listed by itself, or twice: the second opening is refused.
        let again = top.open("3,01", "/f").unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Corrupt);
        assert!(!again.is_retryable());
        let deep = Manifests {
            depth: MANIFEST_DEPTH,
            ..top
        };
        let e = deep.open("3,02", "/f").unwrap_err();
        assert!(e.to_string().contains("nest deeper"), "{e}");
        let below = Manifests { depth: 1, ..top };
        below.open("3,03", "/f").unwrap();
    }

    fn chunk(id: &str, size: u64) -> FileChunk {
        let mut c = FileChunk::new();
        (c.file_id, c.size) = (id.into(), size);
        c
    }

    fn upsert(name: &str, change: Change, chunks: Vec<FileChunk>) -> Action {
        let mut entry = Entry::new();
        entry.name = name.into();
        entry.attributes.mut_or_insert_default().mime = "text/plain".into();
        entry.chunks = chunks;
        Action::Upsert {
            dir: "/d".into(),
            entry,
            signatures: vec![1],
            source: format!("/s/{name}"),
            change,
            base: None,
        }
    }

    #[test]
    fn the_small_plain_chunks_of_files_the_target_lacks_are_copied_ahead() {
        let manifest = FileChunk {
            is_chunk_manifest: true,
            ..chunk("3,0a", 100)
        };
        let cipher = FileChunk {
            cipher_key: vec![1; 32],
            ..chunk("3,0b", 100)
        };
        let actions = [
            upsert(
                "new",
                Change::Created,
                vec![chunk("3,01", 10), chunk("3,02", 20)],
            ),
            upsert("again", Change::Rewritten, vec![chunk("3,03", 30)]),
            upsert("listed", Change::Missing, vec![chunk("3,04", AHEAD_MAX)]),
            // May reuse the target's copies.
            upsert("changed", Change::Changed, vec![chunk("3,05", 10)]),
            // Too large, a manifest, encrypted.
            upsert("big", Change::Created, vec![chunk("3,06", AHEAD_MAX + 1)]),
            upsert("odd", Change::Created, vec![manifest, cipher]),
            // The same chunk for the same path twice: once.
            upsert("new", Change::Created, vec![chunk("3,01", 10)]),
            Action::Delete {
                dir: "/d".into(),
                name: "gone".into(),
                signatures: vec![1],
                base: None,
            },
        ];
        let got: Vec<(String, &str, &str, String, u64)> = ahead_of(&actions)
            .into_iter()
            .map(|w| (w.path, w.name, w.mime, w.id, w.size))
            .collect();
        let want = |p: &str, n: &'static str, id: &str, size| {
            (p.to_string(), n, "text/plain", id.to_string(), size)
        };
        assert_eq!(
            got,
            [
                want("/d/new", "new", "3,01", 10),
                want("/d/new", "new", "3,02", 20),
                want("/d/again", "again", "3,03", 30),
                want("/d/listed", "listed", "3,04", AHEAD_MAX),
            ]
        );
        // The budget ends the list.
        let many: Vec<Action> = (0..AHEAD_BUDGET / AHEAD_MAX + 5)
            .map(|i| {
                upsert(
                    &format!("f{i}"),
                    Change::Created,
                    vec![chunk("3,01", AHEAD_MAX)],
                )
            })
            .collect();
        assert_eq!(ahead_of(&many).len() as u64, AHEAD_BUDGET / AHEAD_MAX);
    }
}
