//! filer-sync as a library: the binary (`main.rs`) and the integration tests
//! use the same modules. See the `//!` paragraph atop each module for what it owns.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod filer;
pub mod ha;
pub mod metrics;
pub mod paths;
pub mod pb;
pub mod pipeline;
pub mod replicate;
pub mod retry;
pub mod security;
pub mod shard;
pub mod state;
pub mod stats;
pub mod util;
pub mod verify;
pub mod volume;
