//! Chunk bytes from the source's volume servers (or filer) to the target's:
//! every chunk of an entry mapped to a target chunk, reused when the target
//! already holds a copy of that very source chunk, copied otherwise (in
//! parallel on the chunk pool), manifests rewritten to name the copies. A
//! copy that fails frees the copies it made. Manifests come from the peer:
//! they nest a bounded depth, each is opened once per entry, and their
//! blobs are read up to a bounded size.

use super::Applier;
use crate::error::{Error, ErrorKind, Result};
use crate::pb::filer::*;
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
}
