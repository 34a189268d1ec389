//! File ids: the text form `vid,hexkeycookie` and its pieces. Pure functions.

use crate::error::{Error, Result};
use crate::pb::filer::{FileChunk, FileId};

/// Formats a FileId the way weed does: `<vid>,` + hex(BE8(key) ‖ BE4(cookie))
/// with the key's leading zero bytes dropped.
pub fn format(f: &FileId) -> String {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&f.file_key.to_be_bytes());
    bytes[8..].copy_from_slice(&f.cookie.to_be_bytes());
    let skip = bytes[..8].iter().take_while(|b| **b == 0).count();
    let mut s = format!("{},", f.volume_id);
    for b in &bytes[skip..] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The id of a chunk: `file_id` when set, else built from `fid`.
pub fn of_chunk(c: &FileChunk) -> String {
    if !c.file_id.is_empty() {
        c.file_id.clone()
    } else {
        c.fid.as_ref().map(format).unwrap_or_default()
    }
}

/// The id of the chunk a chunk was copied from (empty for an original),
/// as text whichever form the filer stored it in.
pub fn source_of_chunk(c: &FileChunk) -> String {
    if !c.source_file_id.is_empty() {
        c.source_file_id.clone()
    } else {
        c.source_fid.as_ref().map(format).unwrap_or_default()
    }
}

/// The volume id part of a file id (text before the last comma).
pub fn volume_id(file_id: &str) -> Result<&str> {
    match file_id.rfind(',') {
        Some(i) if i > 0 => Ok(&file_id[..i]),
        _ => Err(Error::usage(format!("malformed file id {file_id:?}"))),
    }
}

/// The `i`-th id of a batch assign, in plain form. weed names it
/// `vid,hex_i` (the key plus i), but its filer cannot parse that form when
/// it deletes chunks (the needles would never be freed); the plain form
/// names the same needle.
pub fn nth(base: &str, i: u64) -> Result<String> {
    Ok(format(&parse(&format!("{base}_{i}"))?))
}

/// Parses `vid,hex` (or `vid,hex_N`, the N-th id of a batch assign, whose
/// key is N more) back into a FileId (inverse of `format`).
pub fn parse(file_id: &str) -> Result<FileId> {
    let bad = || Error::usage(format!("malformed file id {file_id:?}"));
    let vid = volume_id(file_id)?;
    let rest = &file_id[vid.len() + 1..];
    let (hex, delta) = match rest.split_once('_') {
        Some((h, d)) => (h, d.parse::<u64>().map_err(|_| bad())?),
        None => (rest, 0),
    };
    if hex.len() <= 8 || hex.len() > 24 || !hex.is_ascii() {
        return Err(bad());
    }
    let (key, cookie) = hex.split_at(hex.len() - 8);
    let mut f = FileId::new();
    f.volume_id = vid.parse().map_err(|_| bad())?;
    f.file_key = u64::from_str_radix(key, 16)
        .map_err(|_| bad())?
        .checked_add(delta)
        .ok_or_else(bad)?;
    f.cookie = u32::from_str_radix(cookie, 16).map_err(|_| bad())?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(v: u32, k: u64, c: u32) -> FileId {
        let mut f = FileId::new();
        f.volume_id = v;
        f.file_key = k;
        f.cookie = c;
        f
    }

    #[test]
    fn batch_ids_are_plain() {
        assert_eq!(nth("3,01637037d6", 2).unwrap(), "3,03637037d6");
        assert_eq!(nth("3,ff637037d6", 1).unwrap(), "3,0100637037d6");
        assert_eq!(
            parse("3,01637037d6_2").unwrap(),
            parse("3,03637037d6").unwrap()
        );
        assert!(nth("nonsense", 1).is_err());
    }

    #[test]
    fn formats_like_weed() {
        assert_eq!(format(&id(6, 4, 0x1f7b1d96)), "6,041f7b1d96");
        assert_eq!(format(&id(3, 0x1234, 0x01)), "3,123400000001");
        assert_eq!(format(&id(7, 0, 0xdeadbeef)), "7,deadbeef");
        assert_eq!(format(&id(1, u64::MAX, 0)), "1,ffffffffffffffff00000000");
    }

    #[test]
    fn parse_inverts_format() {
        for f in [
            id(6, 4, 0x1f7b1d96),
            id(12, 0xabcdef, 7),
            id(1, u64::MAX, 0),
        ] {
            assert_eq!(parse(&format(&f)).unwrap(), f);
        }
        assert_eq!(parse("6,041f7b1d96_3").unwrap(), id(6, 7, 0x1f7b1d96));
        assert_eq!(format(&parse("6,041f7b1d96_3").unwrap()), "6,071f7b1d96");
        for bad in [
            "",
            "6",
            ",ab",
            "6,xyz",
            "6,1234",
            "x,0123456789",
            "6,041f7b1d96_x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunk_id_prefers_file_id() {
        let mut c = FileChunk::new();
        c.fid = Some(id(6, 4, 0x1f7b1d96)).into();
        assert_eq!(of_chunk(&c), "6,041f7b1d96");
        c.file_id = "9,01".into();
        assert_eq!(of_chunk(&c), "9,01");
        assert_eq!(volume_id("9,01").unwrap(), "9");
    }
}
