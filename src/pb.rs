//! The generated filer_pb message types (see build.rs).
#![allow(clippy::all, unused, non_camel_case_types, non_snake_case)]
include!(concat!(env!("OUT_DIR"), "/proto/mod.rs"));
