//! Filer addresses as `weed` writes them: `host:port` (the HTTP port; gRPC is
//! port+10000) or `host:port.grpcPort`, and lists of them separated by
//! commas (several filers of one cluster). Parsing is strict so that a typo
//! is reported before anything connects.

use crate::error::{Error, Result};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilerAddr {
    pub host: String,
    pub http_port: u16,
    pub grpc_port: u16,
}

impl FilerAddr {
    pub fn parse(s: &str) -> Result<FilerAddr> {
        let bad = |why: &str| {
            Error::usage(format!(
                "filer address {s:?}: {why}; expected HOST:PORT (gRPC on PORT+10000) or \
                    HOST:PORT.GRPCPORT, e.g. 127.0.0.1:8888"
            ))
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.contains("://") || s.contains('/') {
            return Err(bad("give host and port only, without a scheme or path"));
        }
        let (host, ports) = match s.rfind(':') {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => return Err(bad("no port")),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c == ',') {
            return Err(bad("the host has a space or comma"));
        }
        let port = |p: &str, what: &str| -> Result<u16> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(&format!("{what} {p:?} is not a port number (1-65535)"))),
            }
        };
        let (http_port, grpc_port) = match ports.split_once('.') {
            Some((h, g)) => (port(h, "HTTP port")?, port(g, "gRPC port")?),
            None => {
                let h = port(ports, "HTTP port")?;
                let g = u32::from(h) + 10000;
                if g > 65535 {
                    return Err(bad(&format!(
                        "HTTP port {h} + 10000 is past 65535; name the gRPC port as \
                            {host}:{h}.GRPCPORT"
                    )));
                }
                (h, g as u16)
            }
        };
        Ok(FilerAddr {
            host: host.to_string(),
            http_port,
            grpc_port,
        })
    }

    /// A comma-separated list of filers of one cluster (one at least, none
    /// twice).
    pub fn parse_list(s: &str) -> Result<Vec<FilerAddr>> {
        let mut out: Vec<FilerAddr> = Vec::new();
        for part in s.split(',') {
            if part.trim().is_empty() && s.contains(',') {
                return Err(Error::usage(format!(
                    "filer list {s:?}: an empty item; separate filers with single commas, e.g. \
                        10.0.0.1:8888,10.0.0.2:8888"
                )));
            }
            let a = FilerAddr::parse(part)?;
            if out.contains(&a) {
                return Err(Error::usage(format!(
                    "filer list {s:?}: {a} is named twice"
                )));
            }
            out.push(a);
        }
        Ok(out)
    }

    pub fn http(&self) -> String {
        format!("{}:{}", self.host, self.http_port)
    }

    pub fn grpc(&self) -> String {
        format!("{}:{}", self.host, self.grpc_port)
    }
}

impl fmt::Display for FilerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if u32::from(self.grpc_port) == u32::from(self.http_port) + 10000 {
            write!(f, "{}:{}", self.host, self.http_port)
        } else {
            write!(f, "{}:{}.{}", self.host, self.http_port, self.grpc_port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_forms() {
        let cases = [
            ("127.0.0.1:8888", "127.0.0.1", 8888, 18888),
            ("localhost:8888.19999", "localhost", 8888, 19999),
            (" filer.local:80 ", "filer.local", 80, 10080),
            ("[::1]:8888", "::1", 8888, 18888),
        ];
        for (s, host, h, g) in cases {
            let a = FilerAddr::parse(s).unwrap();
            assert_eq!(
                (a.host.as_str(), a.http_port, a.grpc_port),
                (host, h, g),
                "{s}"
            );
        }
        assert_eq!(FilerAddr::parse("h:1.2").unwrap().to_string(), "h:1.2");
        assert_eq!(FilerAddr::parse("h:8888").unwrap().grpc(), "h:18888");
    }

    #[test]
    fn lists() {
        let l = FilerAddr::parse_list("h:1, h:2.3").unwrap();
        assert_eq!(
            l.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            ["h:1", "h:2.3"]
        );
        assert_eq!(FilerAddr::parse_list("h:1").unwrap().len(), 1);
        for (s, says) in [
            ("h:1,,h:2", "empty item"),
            ("h:1,", "empty item"),
            ("h:1,h:1", "named twice"),
            ("h:1,h", "no port"),
        ] {
            let e = FilerAddr::parse_list(s).unwrap_err();
            assert!(e.to_string().contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn bad_forms() {
        for s in [
            "",
            "nonsense",
            "host:",
            ":8888",
            "host:port",
            "host:0",
            "host:70000",
            "host:60000",
            "host:8888.",
            "host:8888.x",
            "http://host:8888",
            "host:8888/path",
            "a b:1",
        ] {
            let e = FilerAddr::parse(s).unwrap_err();
            assert!(e.to_string().contains("filer address"), "{s}: {e}");
        }
    }
}
