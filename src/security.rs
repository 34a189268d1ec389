//! One side's credentials: gRPC TLS (CA, client certificate and key, as
//! SeaweedFS configures mutual TLS) and the volume read-signing key, from a
//! SeaweedFS `security.toml` (`[grpc] ca`, `[grpc.client] cert`/`key`,
//! `[jwt.signing.read] key`/`expires_after_seconds`) and/or explicit files.
//! Loading checks every file before anything connects; secrets never appear
//! in `Debug` output or errors. Read tokens are minted here (HS256 JWTs with
//! the `fid` claim the volume server checks).

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// PEM bytes for a TLS channel. `cert`/`key` are empty for server-only TLS.
pub struct Tls {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl Tls {
    pub fn credentials(&self) -> grpcio::ChannelCredentials {
        let mut b = grpcio::ChannelCredentialsBuilder::new().root_cert(self.ca.clone());
        if !self.cert.is_empty() {
            b = b.cert(self.cert.clone(), self.key.clone());
        }
        b.build()
    }
}

/// Signs chunk reads for a cluster with `jwt.signing.read.key`.
pub struct ReadSigner {
    key: Vec<u8>,
    expires_secs: u64,
}

impl ReadSigner {
    /// `Bearer` token for reading `file_id` ("3,01637037d6" or with a `_N`
    /// suffix, which the volume server strips before comparing).
    pub fn token(&self, file_id: &str, now_secs: u64) -> String {
        let fid = match file_id.rfind('_') {
            Some(i) if file_id[..i].contains(',') => &file_id[..i],
            _ => file_id,
        };
        let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = format!(
            "{{\"exp\":{},\"fid\":{}}}",
            now_secs + self.expires_secs,
            crate::util::json_str(fid)
        );
        let signing_input = format!("{header}.{}", b64url(claims.as_bytes()));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", b64url(&mac.finalize().into_bytes()))
    }
}

/// Base64url without padding (RFC 7515).
fn b64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=group.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Everything one side needs beyond its address.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<Tls>>,
    pub read: Option<Arc<ReadSigner>>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.as_ref().map(|t| !t.cert.is_empty()))
            .field("read_key", &self.read.is_some())
            .finish()
    }
}

/// What the user gave for one side; `flag` is "a" or "b".
#[derive(Default)]
pub struct Given<'a> {
    pub flag: &'a str,
    pub file: Option<&'a Path>,
    pub ca: Option<&'a Path>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
}

impl Security {
    /// Reads the security.toml (if any), lets explicit files override its
    /// `[grpc]` entries, and checks that each file is there and is PEM.
    pub fn load(g: &Given) -> Result<Security> {
        let flag = g.flag;
        let mut ca: Option<(PathBuf, String)> = None;
        let mut cert = None;
        let mut key = None;
        let mut read = None;
        if let Some(file) = g.file {
            let what = format!("--{flag}-security {}", file.display());
            let text = std::fs::read_to_string(file).map_err(|e| {
                Error::usage(format!(
                    "{what}: cannot read it ({e}); give a SeaweedFS security.toml"
                ))
            })?;
            let t = parse_toml(&text).map_err(|e| Error::usage(format!("{what}: {e}")))?;
            // Relative paths in the file are taken from the file's folder.
            let base = file.parent().unwrap_or(Path::new("."));
            let from_file = |k: &str| {
                t.get(k)
                    .filter(|v| !v.is_empty())
                    .map(|v| (base.join(v), format!("{what}: {k}")))
            };
            ca = from_file("grpc.ca");
            cert = from_file("grpc.client.cert");
            key = from_file("grpc.client.key");
            if let Some(k) = t.get("jwt.signing.read.key").filter(|k| !k.is_empty()) {
                let expires_secs = match t.get("jwt.signing.read.expires_after_seconds") {
                    None => 10,
                    Some(v) => v.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                        Error::usage(format!(
                            "{what}: jwt.signing.read.expires_after_seconds is not a positive \
                             number"
                        ))
                    })?,
                };
                read = Some(Arc::new(ReadSigner {
                    key: k.as_bytes().to_vec(),
                    expires_secs,
                }));
            }
        }
        let explicit = |p: Option<&Path>, name: &str| {
            p.map(|p| (p.to_path_buf(), format!("--{flag}-grpc-{name}")))
        };
        ca = explicit(g.ca, "ca").or(ca);
        cert = explicit(g.cert, "cert").or(cert);
        key = explicit(g.key, "key").or(key);
        let pem = |(p, what): &(PathBuf, String), kind: &str| -> Result<Vec<u8>> {
            let bytes = std::fs::read(p)
                .map_err(|e| Error::usage(format!("{what}: cannot read {} ({e})", p.display())))?;
            if !bytes.windows(11).any(|w| w == b"-----BEGIN ") || bytes.contains(&0) {
                return Err(Error::usage(format!(
                    "{what}: {} is not a PEM {kind}",
                    p.display()
                )));
            }
            Ok(bytes)
        };
        let tls = match (&ca, &cert, &key) {
            (None, None, None) => None,
            (None, _, _) => {
                return Err(Error::usage(format!(
                    "side {}: a gRPC client certificate needs the CA too (--{flag}-grpc-ca, or \
                        [grpc] ca in --{flag}-security)",
                    flag.to_uppercase()
                )))
            }
            (Some(ca), None, None) => Some(Tls {
                ca: pem(ca, "CA certificate")?,
                cert: Vec::new(),
                key: Vec::new(),
            }),
            (Some(ca), Some(c), Some(k)) => Some(Tls {
                ca: pem(ca, "CA certificate")?,
                cert: pem(c, "certificate")?,
                key: pem(k, "private key")?,
            }),
            (Some(_), _, _) => {
                return Err(Error::usage(format!(
                    "side {}: give both the gRPC client certificate and its key \
                        (--{flag}-grpc-cert and --{flag}-grpc-key, or [grpc.client] cert and key)",
                    flag.to_uppercase()
                )))
            }
        };
        Ok(Security {
            tls: tls.map(Arc::new),
            read,
        })
    }
}

/// The subset of TOML that security.toml uses: `[dotted.tables]` and
/// `key = "string" | 'string' | number | bool`, `#` comments. Keys come back
/// dotted with their table ("grpc.client.cert").
fn parse_toml(text: &str) -> std::result::Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut table = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Errors name the line, never any of its text: a broken line may
        // hold a secret, and errors reach logs.
        let bad = |why: &str| format!("line {}: {why}", n + 1);
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .split_once(']')
                .map(|(t, after)| (t.trim(), after.trim()))
                .filter(|(t, after)| !t.is_empty() && (after.is_empty() || after.starts_with('#')))
                .ok_or_else(|| bad("not a [table] header"))?
                .0;
            table = name.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad("expected key = value"))?;
        let k = k.trim().trim_matches('"');
        let v = v.trim();
        let value = if let Some(q @ ('"' | '\'')) = v.chars().next() {
            let body = &v[1..];
            let end = body.find(q).ok_or_else(|| bad("unterminated string"))?;
            let after = body[end + 1..].trim();
            if !(after.is_empty() || after.starts_with('#')) {
                return Err(bad("text after the string"));
            }
            let s = &body[..end];
            if q == '"' {
                s.replace("\\\\", "\\").replace("\\\"", "\"")
            } else {
                s.to_string()
            }
        } else {
            v.split('#').next().unwrap_or("").trim().to_string()
        };
        let full = if table.is_empty() {
            k.to_string()
        } else {
            format!("{table}.{k}")
        };
        out.insert(full, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64url(input.as_bytes()), want, "{input:?}");
        }
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn read_token_is_an_hs256_jwt_over_the_fid_without_suffix() {
        let s = ReadSigner {
            key: b"secret".to_vec(),
            expires_secs: 10,
        };
        let t = s.token("3,01637037d6_2", 1_700_000_000);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
        assert_eq!(
            parts[1],
            b64url(br#"{"exp":1700000010,"fid":"3,01637037d6"}"#)
        );
        // Known answer computed independently (Python's hmac + base64).
        assert_eq!(
            t,
            concat!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.",
                "eyJleHAiOjE3MDAwMDAwMTAsImZpZCI6IjMsMDE2MzcwMzdkNiJ9.",
                "MPyP-f3u-UCHgktwxmzNutjpHhFW1TGBn8TSxIcd0Oo"
            )
        );
        assert_eq!(s.token("3,01637037d6", 1_700_000_000), t);
    }

    #[test]
    fn toml_subset_reads_what_security_toml_holds() {
        let t = parse_toml(
            "# comment\n[jwt.signing]\nkey = \"w\"\nexpires_after_seconds = 10 # ten\n\n\
             [jwt.signing.read]\nkey = 'r#1'\n[grpc]\nca = \"/c/ca.crt\"\n[grpc.client]\n\
             cert = \"client.crt\"\nkey = \"client.key\"\n",
        )
        .unwrap();
        assert_eq!(t["jwt.signing.key"], "w");
        assert_eq!(t["jwt.signing.expires_after_seconds"], "10");
        assert_eq!(t["jwt.signing.read.key"], "r#1");
        assert_eq!(t["grpc.ca"], "/c/ca.crt");
        assert_eq!(t["grpc.client.cert"], "client.crt");
        for bad in ["[grpc\n", "x\n", "k = \"open\n", "k = \"a\" b\n"] {
            assert!(parse_toml(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_never_echo_what_the_file_holds() {
        let secret = "s3cr3t-Zm9vYmFy";
        let dir = std::env::temp_dir().join(format!("fs-sec-echo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("security.toml");
        for text in [
            format!("[jwt.signing.read]\nkey = \"{secret}\n"),
            format!("[jwt.signing.read]\nkey = '{secret}' {secret}\n"),
            format!("[jwt.signing.read]\n{secret}\n"),
            format!("[{secret}\n"),
            format!("\"{secret}=\"x\n"),
            format!("[jwt.signing.read]\nkey = \"k\"\nexpires_after_seconds = {secret}\n"),
        ] {
            std::fs::write(&toml, &text).unwrap();
            let g = Given {
                flag: "a",
                file: Some(&toml),
                ..Given::default()
            };
            let e = Security::load(&g).expect_err(&text).to_string();
            assert!(!e.contains(secret), "{e}");
            assert!(e.contains("security.toml"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_names_the_missing_or_wrong_file() {
        let dir = std::env::temp_dir().join(format!("fs-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("security.toml");
        std::fs::write(
            &toml,
            "[grpc]\nca = \"ca.pem\"\n[grpc.client]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .unwrap();
        let g = Given {
            flag: "a",
            file: Some(&toml),
            ..Given::default()
        };
        let e = Security::load(&g).unwrap_err().to_string();
        assert!(e.contains("grpc.ca") && e.contains("ca.pem"), "{e}");
        std::fs::write(dir.join("ca.pem"), "not pem").unwrap();
        let e = Security::load(&g).unwrap_err().to_string();
        assert!(e.contains("not a PEM CA certificate"), "{e}");
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        for f in ["ca.pem", "c.pem", "k.pem"] {
            std::fs::write(dir.join(f), pem).unwrap();
        }
        let s = Security::load(&g).unwrap();
        assert!(s.tls.is_some() && s.read.is_none());
        let only_cert = Given {
            flag: "b",
            cert: Some(&toml),
            ..Given::default()
        };
        let e = Security::load(&only_cert).unwrap_err().to_string();
        assert!(e.contains("needs the CA"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
