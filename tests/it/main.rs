//! Integration tests against real SeaweedFS 4.48 clusters on 127.0.0.1.

mod chaos;
mod cli;
mod faults;
mod fidelity;
mod follow;
mod ha;
mod harness;
mod hostile;
mod https;
mod large;
mod multi;
mod operator;
mod peer;
mod safety;
mod security;
mod shards;
mod sync;
mod topology;
mod verify;
mod wire;
