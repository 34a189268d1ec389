//! One module per subcommand, each turning a validated config into work and
//! an outcome (`Ok(true)` done, `Ok(false)` done with failures or
//! differences). Shared here: connecting to both filers of a pair and
//! checking them against a state file, the way every command does it.

pub mod bootstrap;
pub mod checkpoint;
pub mod ha;
pub mod log_start;
pub mod migrate;
pub mod render;
pub mod shards;
pub mod status;
pub mod sync;
pub mod term;
pub mod verify;

pub use sync::sync;

use crate::config::Side;
use crate::error::Result;
use crate::filer::{FilerAddr, FilerClient};
use crate::pb::filer::GetFilerConfigurationResponse;
use crate::security::Security;
use crate::state::State;
use crate::volume::{Http, Server};
use std::time::Duration;

/// Both filers of a pair, connected, and what each says of itself.
pub struct Peers {
    pub a: FilerClient,
    pub b: FilerClient,
    pub conf_a: GetFilerConfigurationResponse,
    pub conf_b: GetFilerConfigurationResponse,
}

/// One side of `Peers::connect`: its flag's letter, its filers (one
/// cluster), and how to reach them.
pub type SideFilers<'a> = (char, &'a [FilerAddr], &'a Security);

impl Peers {
    /// Connects to A and B (a deadline of `timeout` on every call) and asks
    /// each filer for its configuration: an unreachable filer fails here,
    /// before anything is read or written, and so does a list of filers
    /// that are not one cluster.
    pub fn connect(a: SideFilers, b: SideFilers, timeout: Duration) -> Result<Peers> {
        let (a, conf_a) = one_cluster(a, timeout)?;
        let (b, conf_b) = one_cluster(b, timeout)?;
        Ok(Peers {
            a,
            b,
            conf_a,
            conf_b,
        })
    }

    pub fn sig_a(&self) -> i32 {
        self.conf_a.signature
    }

    pub fn sig_b(&self) -> i32 {
        self.conf_b.signature
    }

    /// Fails (paused, for a human) when a side's filer now answers with
    /// another filer-store signature than when the pair was connected: its
    /// store was replaced (a lost disk, a wrong filer.toml, a pod without
    /// its volume), and what it holds must not be mirrored. See
    /// `same_source`.
    pub fn unchanged(&self, cancel: &crate::retry::Cancel) -> Result<()> {
        for (side, c, sig) in [('A', &self.a, self.sig_a()), ('B', &self.b, self.sig_b())] {
            crate::filer::same_source(side, c, sig, cancel)?;
        }
        Ok(())
    }

    /// Checks that each side's chunk servers speak what its security file
    /// says (`volume::probe`), with `http` (A's, B's agents): the servers
    /// its transfers use (its filers with `--X-filer-proxy`, else a volume
    /// server), and its filers too with `filers_too` (`verify --checksum`
    /// reads through them). A definite mismatch fails (exit 2) before
    /// anything is read or written.
    pub fn probe_http(
        &self,
        (a, b): (&Side, &Side),
        http: (&Http, &Http),
        filers_too: bool,
    ) -> Result<()> {
        for (side, c, http) in [(a, &self.a, http.0), (b, &self.b, http.1)] {
            let servers: &[Server] = match (side.proxy, filers_too) {
                (true, _) => &[Server::Filer],
                (false, false) => &[Server::Volume],
                (false, true) => &[Server::Volume, Server::Filer],
            };
            crate::volume::probe(c, http, servers)?;
        }
        Ok(())
    }

    /// Records both filers' signatures in `state`, or refuses a state file
    /// that knows one of these addresses as another cluster.
    pub fn check(&self, state: &State) -> Result<()> {
        state.check_side(&self.a.addr().to_string(), self.sig_a())?;
        state.check_side(&self.b.addr().to_string(), self.sig_b())
    }
}

/// Connects to the filers of one side and checks that they share one filer
/// store (one signature), as filers of one cluster do.
fn one_cluster(
    (label, addrs, security): SideFilers,
    timeout: Duration,
) -> Result<(FilerClient, GetFilerConfigurationResponse)> {
    let client = FilerClient::connect_all(addrs, security, timeout);
    let mut confs = client.configurations().into_iter();
    let (first, conf) = confs.next().expect("one filer at least");
    let conf = conf?;
    for (addr, other) in confs {
        let other = other?;
        if other.signature != conf.signature {
            return Err(crate::error::Error::usage(format!(
                "-{} lists filers of different clusters: {first} has filer store signature {}, \
                    {addr} has {}; list only filers that share one filer store",
                label.to_ascii_lowercase(),
                conf.signature,
                other.signature
            )));
        }
    }
    Ok((client, conf))
}
