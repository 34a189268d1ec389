//! The checkpoint format of `weed filer.sync` (4.48), kept in the *target*
//! filer's KV store: key `"sync." + P + BE_u32(sourceSig)` where P is the
//! source folder ("" for "/") followed, when the target folder is not "/",
//! by `"\0" + targetFolder`; value 8 bytes big-endian ts_ns. 4.44 used
//! `"sync." + (src or "") + sig` without the target part. Pure.

/// The 4.48 key.
pub fn key(source_sig: i32, source_path: &str, target_path: &str) -> Vec<u8> {
    let mut k = b"sync.".to_vec();
    if source_path != "/" {
        k.extend_from_slice(source_path.as_bytes());
    }
    if target_path != "/" {
        k.push(0);
        k.extend_from_slice(target_path.as_bytes());
    }
    k.extend_from_slice(&(source_sig as u32).to_be_bytes());
    k
}

/// The 4.44 key, read as a fallback.
pub fn legacy_key(source_sig: i32, source_path: &str) -> Vec<u8> {
    let mut k = b"sync.".to_vec();
    if source_path != "/" {
        k.extend_from_slice(source_path.as_bytes());
    }
    k.extend_from_slice(&(source_sig as u32).to_be_bytes());
    k
}

pub fn encode(ts_ns: i64) -> Vec<u8> {
    (ts_ns.max(0) as u64).to_be_bytes().to_vec()
}

/// A value shorter than 8 bytes means no checkpoint.
pub fn decode(v: &[u8]) -> Option<i64> {
    let b: [u8; 8] = v.get(..8)?.try_into().ok()?;
    let ts = u64::from_be_bytes(b) as i64;
    (ts > 0).then_some(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_reference_table() {
        let sig = 0x0102_0304;
        let tail = [1u8, 2, 3, 4];
        let cases: [(&str, &str, &[u8]); 5] = [
            ("/", "/", b"sync."),
            ("/pa", "/pb", b"sync./pa\x00/pb"),
            ("/k1", "/k1", b"sync./k1\x00/k1"),
            ("/", "/kroot", b"sync.\x00/kroot"),
            ("/k3", "/", b"sync./k3"),
        ];
        for (s, t, want) in cases {
            let mut w = want.to_vec();
            w.extend_from_slice(&tail);
            assert_eq!(key(sig, s, t), w, "{s} -> {t}");
        }
        assert_eq!(
            &key(-1, "/", "/")[5..],
            &[0xff, 0xff, 0xff, 0xff],
            "two's complement"
        );
        assert_eq!(legacy_key(sig, "/pa"), b"sync./pa\x01\x02\x03\x04".to_vec());
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(
            decode(&encode(1_700_000_000_000_000_123)),
            Some(1_700_000_000_000_000_123)
        );
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[0; 8]), None);
        assert_eq!(decode(&[0, 0, 0]), None);
    }
}
