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
pub mod status;
pub mod sync;
pub mod verify;

pub use sync::sync;

use crate::error::Result;
use crate::filer::{FilerAddr, FilerClient};
use crate::pb::filer::GetFilerConfigurationResponse;
use crate::security::Security;
use crate::state::State;
use std::time::Duration;

/// Both filers of a pair, connected, and what each says of itself.
pub struct Peers {
    pub a: FilerClient,
    pub b: FilerClient,
    pub conf_a: GetFilerConfigurationResponse,
    pub conf_b: GetFilerConfigurationResponse,
}

impl Peers {
    /// Connects to A and B (a deadline of `timeout` on every call) and asks
    /// each for its configuration: an unreachable filer fails here, before
    /// anything is read or written.
    pub fn connect(
        (a, a_sec): (&FilerAddr, &Security),
        (b, b_sec): (&FilerAddr, &Security),
        timeout: Duration,
    ) -> Result<Peers> {
        let a = FilerClient::connect_with(a, a_sec, timeout);
        let b = FilerClient::connect_with(b, b_sec, timeout);
        let (conf_a, conf_b) = (a.configuration()?, b.configuration()?);
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

    /// Records both filers' signatures in `state`, or refuses a state file
    /// that knows one of these addresses as another cluster.
    pub fn check(&self, state: &State) -> Result<()> {
        state.check_side(&self.a.addr().to_string(), self.sig_a())?;
        state.check_side(&self.b.addr().to_string(), self.sig_b())
    }
}
