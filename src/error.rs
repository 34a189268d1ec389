//! The one error type of filer-sync: a kind that decides what happens next
//! (retry, record and move on, or stop) plus the context a human needs to act.
//!
//! Rules: transport faults, timeouts, 5xx and gRPC UNAVAILABLE/DEADLINE/RESOURCE
//! are retryable; 4xx, size mismatches, bad input and protocol misuse are not.
//! Input a peer gives that would write outside the synced folder (a name
//! that is not one path component) is refused: never applied, never
//! retried, ledgered like any failure for good. A TLS failure no retry
//! cures (a certificate the CA does not sign, a client certificate missing,
//! HTTP against HTTPS or the reverse) is a usage error, worded by
//! `volume::Http::fail`/`refusal`: exit 2 at start, ledgered later.
//! Workers never print errors: they return them and the pipeline decides.
//! `main` prints the final error once and maps it to an exit code.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line or a derived value is unusable; nothing was touched.
    Usage,
    /// A transport-level fault (connect refused, reset, timeout, 5xx, UNAVAILABLE).
    Transient,
    /// The remote answered and refused (4xx, gRPC error with a definite status).
    Remote,
    /// The entry or chunk does not exist on the remote.
    NotFound,
    /// Bytes arrived but were not what the metadata promised.
    Corrupt,
    /// The local state file refused or failed.
    State,
    /// The process was asked to stop.
    Interrupted,
    /// Another process holds the state file.
    Busy,
    /// A safety rail stopped a direction (e.g. --max-delete).
    Paused,
    /// An exclusive create found the entry already there.
    Exists,
    /// A peer's input was not admitted (a name that is not one path
    /// component, a target path outside the synced folder): not applied.
    Refused,
}

#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error {
            kind,
            msg: msg.into(),
        }
    }
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, msg)
    }
    pub fn transient(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Transient, msg)
    }
    pub fn remote(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Remote, msg)
    }
    pub fn state(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::State, msg)
    }
    pub fn refused(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Refused, msg)
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
    /// Prefixes the message with what was being done, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error {
            kind: self.kind,
            msg: format!("{what}: {}", self.msg),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<grpcio::Error> for Error {
    fn from(e: grpcio::Error) -> Error {
        use grpcio::RpcStatusCode as C;
        match &e {
            grpcio::Error::RpcFailure(st) => {
                let code = st.code();
                let kind = if code == C::UNAVAILABLE
                    || code == C::DEADLINE_EXCEEDED
                    || code == C::RESOURCE_EXHAUSTED
                    || code == C::ABORTED
                    || code == C::CANCELLED
                    || code == C::UNKNOWN && is_transient_text(st.message())
                {
                    ErrorKind::Transient
                } else if st.message().contains("no entry is found") {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::Remote
                };
                let text = if st.message().is_empty() {
                    format!("gRPC status {code:?}")
                } else {
                    format!("gRPC status {code:?}: {}", st.message())
                };
                Error::new(kind, text)
            }
            grpcio::Error::RemoteStopped | grpcio::Error::QueueShutdown => {
                Error::transient(format!("gRPC: {e}"))
            }
            _ => Error::remote(format!("gRPC: {e}")),
        }
    }
}

/// Filer errors that come back as UNKNOWN (or in an answer's `error`) but
/// describe a passing fault.
pub(crate) fn is_transient_text(msg: &str) -> bool {
    [
        "connection refused",
        "context deadline exceeded",
        "transport",
        "EOF",
        "timeout",
        // A filer's own gRPC call (to a peer filer, a master) that failed
        // as passing, quoted in its error text.
        "code = Unavailable",
        "code = Canceled",
        "code = DeadlineExceeded",
        "code = ResourceExhausted",
        "code = Aborted",
    ]
    .iter()
    .any(|s| msg.contains(s))
}

impl From<ureq::Error> for Error {
    fn from(e: ureq::Error) -> Error {
        match &e {
            ureq::Error::StatusCode(c) if *c >= 500 => Error::transient(format!("HTTP status {c}")),
            ureq::Error::StatusCode(404) => Error::new(ErrorKind::NotFound, "HTTP status 404"),
            ureq::Error::StatusCode(c) => Error::remote(format!("HTTP status {c}")),
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => Error::usage(format!("HTTP: {e}")),
            _ => Error::transient(format!("HTTP: {e}")),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::transient(format!("I/O: {e}"))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode as C;
        let hint = match e.sqlite_error_code() {
            Some(C::DiskFull | C::SystemIoFailure) => {
                ": its disk is full or failing; free space and run again (the checkpoint stays at \
                    the last window that was committed)"
            }
            Some(C::ReadOnly | C::CannotOpen | C::PermissionDenied) => {
                ": check the permissions of the state file and its folder"
            }
            _ => "",
        };
        Error::state(format!("state file: {e}{hint}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_statuses_classify() {
        let unavailable = grpcio::Error::RpcFailure(grpcio::RpcStatus::with_message(
            grpcio::RpcStatusCode::UNAVAILABLE,
            "connect failed".into(),
        ));
        assert!(Error::from(unavailable).is_retryable());
        let missing = grpcio::Error::RpcFailure(grpcio::RpcStatus::with_message(
            grpcio::RpcStatusCode::UNKNOWN,
            "/a/b: filer: no entry is found in filer store".into(),
        ));
        assert_eq!(Error::from(missing).kind(), ErrorKind::NotFound);
        let denied = grpcio::Error::RpcFailure(grpcio::RpcStatus::new(
            grpcio::RpcStatusCode::PERMISSION_DENIED,
        ));
        assert!(!Error::from(denied).is_retryable());
        // A filer quoting its own call to a peer that went away (4.48,
        // a filer of a cluster whose owner filer for the path died).
        for quoted in [
            "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error \
             while dialing: dial tcp 127.0.0.1:24000: connect: connection refused\"",
            "rpc error: code = Canceled desc = grpc: the client connection is closing",
        ] {
            assert!(is_transient_text(quoted), "{quoted}");
        }
        assert!(!is_transient_text(
            "rpc error: code = PermissionDenied desc = no"
        ));
    }

    #[test]
    fn http_statuses_classify() {
        assert!(Error::from(ureq::Error::StatusCode(503)).is_retryable());
        assert!(!Error::from(ureq::Error::StatusCode(400)).is_retryable());
        assert_eq!(
            Error::from(ureq::Error::StatusCode(404)).kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn a_refusal_is_never_retried() {
        let e = Error::refused("name \"..\"").context("/src");
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(!e.is_retryable());
    }

    #[test]
    fn context_keeps_kind() {
        let e = Error::transient("reset").context("GET http://x/1,ab");
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "GET http://x/1,ab: reset");
    }
}
