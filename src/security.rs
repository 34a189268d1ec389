//! One side's credentials, and the one place that turns them into TLS
//! settings for both transports: gRPC TLS (CA, client certificate and key,
//! as SeaweedFS configures mutual TLS; `Tls::credentials`), HTTPS toward the
//! side's volume servers and filers (`[https.client]`; `Https::tls`, for
//! ureq over native-tls, which is the system OpenSSL that grpcio links too)
//! and the volume read-signing key, from a SeaweedFS `security.toml`
//! (`[grpc] ca`, `[grpc.client] cert`/`key`, `[https.client] enabled`/`cert`/
//! `key`/`ca`/`insecure_skip_verify`, `[jwt.signing.read] key`/
//! `expires_after_seconds`) and/or explicit files. A side given no file at
//! all reads the first security.toml of weed's own search path. Loading
//! checks every file (and that a key belongs to its certificate) before
//! anything connects; secrets never appear in `Debug` output or errors.
//! Read tokens are minted here (HS256 JWTs with the `fid` claim the volume
//! server checks).

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

/// `[https.client]` of a side whose file turns it on: its volume servers
/// and filers are spoken to over HTTPS only. Servers are verified as
/// SeaweedFS's own Go clients verify them (crypto/tls with `RootCAs` and no
/// `ServerName` override): the chain up to `ca` (the system's roots when
/// there is none) and the host of the URL against the certificate's
/// subjectAltNames (an IP SAN for an address).
pub struct Https {
    tls: ureq::tls::TlsConfig,
    /// A client certificate is presented.
    pub client_cert: bool,
    /// `insecure_skip_verify`: nothing about the servers is checked.
    pub insecure: bool,
    /// Where the settings come from, for messages ("--b-security FILE").
    pub origin: String,
}

impl Https {
    /// The settings for ureq's agents (native-tls).
    pub fn tls(&self) -> ureq::tls::TlsConfig {
        self.tls.clone()
    }
}

/// Everything one side needs beyond its address.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<Tls>>,
    pub https: Option<Arc<Https>>,
    pub read: Option<Arc<ReadSigner>>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.as_ref().map(|t| !t.cert.is_empty()))
            .field("https", &self.https.as_ref().map(|h| h.client_cert))
            .field("read_key", &self.read.is_some())
            .finish()
    }
}

/// Where weed looks for security.toml when it is given none, in its order
/// (weed/util/config.go: the working folder, ~/.seaweedfs,
/// /usr/local/etc/seaweedfs, /etc/seaweedfs).
fn weed_search_path() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(".")];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".seaweedfs"));
    }
    dirs.push("/usr/local/etc/seaweedfs".into());
    dirs.push("/etc/seaweedfs".into());
    dirs
}

/// The first security.toml in `dirs`.
fn search(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join("security.toml"))
        .find(|f| f.is_file())
}

/// What the user gave for one side; `flag` is "a" or "b".
#[derive(Default, Clone, Copy)]
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
        let found;
        let g = &match (g.file, g.ca, g.cert, g.key) {
            (None, None, None, None) => {
                found = search(&weed_search_path());
                if let Some(f) = &found {
                    log::info!(
                        "side {}: reading {} (the first security.toml on weed's search path; \
                         --{}-security FILE chooses another, /dev/null none)",
                        g.flag.to_uppercase(),
                        f.display(),
                        g.flag
                    );
                }
                Given {
                    file: found.as_deref(),
                    ..*g
                }
            }
            _ => *g,
        };
        let flag = g.flag;
        let mut ca: Option<(PathBuf, String)> = None;
        let mut cert = None;
        let mut key = None;
        let mut read = None;
        let mut https = None;
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
            if flag_on(&t, "https.client.enabled", &what)? {
                let files = HttpsFiles {
                    ca: from_file("https.client.ca"),
                    cert: from_file("https.client.cert"),
                    key: from_file("https.client.key"),
                    insecure: flag_on(&t, "https.client.insecure_skip_verify", &what)?,
                };
                https = Some(Arc::new(files.load(flag, &what)?));
            }
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
            https,
            read,
        })
    }
}

/// A boolean of the file: absent is false.
fn flag_on(t: &HashMap<String, String>, k: &str, what: &str) -> Result<bool> {
    match t.get(k).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Error::usage(format!("{what}: {k} is not true or false"))),
    }
}

/// Reads a file that must hold PEM; `what` names where its path came from.
fn pem((p, what): &(PathBuf, String), kind: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(p)
        .map_err(|e| Error::usage(format!("{what}: cannot read {} ({e})", p.display())))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") || bytes.contains(&0) {
        return Err(Error::usage(format!(
            "{what}: {} is not a PEM {kind}",
            p.display()
        )));
    }
    Ok(bytes)
}

/// `[https.client]`'s files (each with where its path came from).
struct HttpsFiles {
    ca: Option<(PathBuf, String)>,
    cert: Option<(PathBuf, String)>,
    key: Option<(PathBuf, String)>,
    insecure: bool,
}

impl HttpsFiles {
    /// Reads and checks the files (certificates parse, the key is the
    /// certificate's) and builds the TLS settings. The key goes to
    /// native-tls as PKCS#8 whatever its form in the file (PKCS#1 and SEC1
    /// keys are common, cert-manager writes PKCS#1).
    fn load(self, flag: &str, origin: &str) -> Result<Https> {
        use openssl::pkey::PKey;
        use openssl::x509::X509;
        use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
        let certs = |f: &(PathBuf, String), kind: &str| -> Result<Vec<Certificate<'static>>> {
            let bytes = pem(f, kind)?;
            let bad = |e: &dyn fmt::Display| {
                Error::usage(format!("{}: {}: not a {kind} ({e})", f.1, f.0.display()))
            };
            let parsed = X509::stack_from_pem(&bytes).map_err(|e| bad(&e))?;
            if parsed.is_empty() {
                return Err(bad(&"no certificate in it"));
            }
            parsed
                .iter()
                .map(|c| Ok(Certificate::from_der(&c.to_der().map_err(|e| bad(&e))?).to_owned()))
                .collect()
        };
        let mut b = TlsConfig::builder()
            .provider(TlsProvider::NativeTls)
            .disable_verification(self.insecure);
        b = match &self.ca {
            Some(ca) => b.root_certs(RootCerts::new_with_certs(&certs(ca, "CA certificate")?)),
            None => b.root_certs(RootCerts::PlatformVerifier),
        };
        let client_cert = match (&self.cert, &self.key) {
            (None, None) => false,
            (Some(c), Some(k)) => {
                let chain = certs(c, "certificate")?;
                let key_pem = pem(k, "private key")?;
                let key = PKey::private_key_from_pem(&key_pem).map_err(|e| {
                    Error::usage(format!(
                        "{}: {}: not an unencrypted private key ({e})",
                        k.1,
                        k.0.display()
                    ))
                })?;
                let leaf = X509::from_der(chain[0].der()).and_then(|x| x.public_key());
                if !leaf.is_ok_and(|p| p.public_eq(&key)) {
                    return Err(Error::usage(format!(
                        "{}: {} is not the key of {} ({})",
                        k.1,
                        k.0.display(),
                        c.0.display(),
                        c.1
                    )));
                }
                let pkcs8 = key
                    .private_key_to_pem_pkcs8()
                    .map_err(|e| Error::usage(format!("{}: {e}", k.1)))?;
                let key = PrivateKey::from_pem(&pkcs8)
                    .map_err(|e| Error::usage(format!("{}: {e}", k.1)))?;
                b = b.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
                true
            }
            _ => {
                return Err(Error::usage(format!(
                    "{origin}: give both [https.client] cert and key, or neither"
                )))
            }
        };
        if self.insecure {
            log::warn!(
                "side {}: {origin} sets [https.client] insecure_skip_verify: {}'s volume servers \
                 and filers are not verified; anyone on the way can read and change the chunks",
                flag.to_uppercase(),
                flag.to_uppercase()
            );
        }
        Ok(Https {
            tls: b.build(),
            client_cert,
            insecure: self.insecure,
            origin: origin.to_string(),
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

    /// A self-signed EC certificate and its key, in SEC1 ("EC PRIVATE
    /// KEY") form: (certificate PEM, key PEM).
    fn self_signed(cn: &str) -> (Vec<u8>, Vec<u8>) {
        use openssl::{asn1, bn, ec, hash, nid, pkey, x509};
        let group = ec::EcGroup::from_curve_name(nid::Nid::X9_62_PRIME256V1).unwrap();
        let ec = ec::EcKey::generate(&group).unwrap();
        let key = pkey::PKey::from_ec_key(ec.clone()).unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = bn::BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&asn1::Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        b.sign(&key, hash::MessageDigest::sha256()).unwrap();
        (
            b.build().to_pem().unwrap(),
            ec.private_key_to_pem().unwrap(),
        )
    }

    #[test]
    fn https_client_is_read_checked_and_named_in_errors() {
        let dir = std::env::temp_dir().join(format!("fs-sec-https-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = self_signed("client");
        let (_, other_key) = self_signed("other");
        std::fs::write(dir.join("ca.crt"), &cert).unwrap();
        std::fs::write(dir.join("c.crt"), &cert).unwrap();
        std::fs::write(dir.join("c.key"), &key).unwrap();
        std::fs::write(dir.join("other.key"), &other_key).unwrap();
        let toml = dir.join("security.toml");
        let load = |text: &str| {
            std::fs::write(&toml, text).unwrap();
            Security::load(&Given {
                flag: "b",
                file: Some(&toml),
                ..Given::default()
            })
        };
        let full = "[https.client]\nenabled = true\ncert = \"c.crt\"\nkey = \"c.key\"\n\
                    ca = \"ca.crt\"\n";
        // A SEC1 key (not PKCS#8) is taken: it is converted for native-tls.
        let s = load(full).unwrap();
        let h = s.https.as_ref().unwrap();
        assert!(h.client_cert && !h.insecure && h.origin.contains("--b-security"));
        assert!(s.tls.is_none(), "HTTPS alone turns no gRPC TLS on");
        // Off, or absent: plain HTTP, whatever else the section holds.
        for text in [
            "[https.client]\nenabled = false\ncert = \"missing.crt\"\n",
            "[grpc]\n",
        ] {
            assert!(load(text).unwrap().https.is_none(), "{text}");
        }
        // Server-only TLS: a CA and no client certificate.
        let s = load("[https.client]\nenabled = true\nca = \"ca.crt\"\n").unwrap();
        assert!(!s.https.unwrap().client_cert);
        for (text, want) in [
            (full.replace("c.key", "missing.key"), "https.client.key"),
            (full.replace("c.key", "other.key"), "is not the key of"),
            (
                full.replace("key = \"c.key\"\n", ""),
                "both [https.client] cert and key",
            ),
            (full.replace("ca.crt", "c.key"), "not a CA certificate"),
            (full.replace("= true", "= yes"), "not true or false"),
        ] {
            let e = load(&text).map(|_| ()).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Usage);
            let e = e.to_string();
            assert!(
                e.contains(want) && e.contains("--b-security"),
                "{want}: {e}"
            );
        }
        let s = load(&format!("{full}insecure_skip_verify = true\n")).unwrap();
        assert!(s.https.unwrap().insecure);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_side_given_nothing_reads_weeds_search_path_in_order() {
        let dir = std::env::temp_dir().join(format!("fs-sec-search-{}", std::process::id()));
        let dirs: Vec<PathBuf> = ["cwd", "home", "etc"].iter().map(|d| dir.join(d)).collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        assert_eq!(search(&dirs), None);
        std::fs::write(dirs[2].join("security.toml"), "").unwrap();
        assert_eq!(search(&dirs), Some(dirs[2].join("security.toml")));
        std::fs::write(dirs[1].join("security.toml"), "").unwrap();
        assert_eq!(search(&dirs), Some(dirs[1].join("security.toml")));
        let path = weed_search_path();
        assert_eq!(path.first(), Some(&PathBuf::from(".")));
        assert_eq!(path.last(), Some(&PathBuf::from("/etc/seaweedfs")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
