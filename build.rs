//! Generates the filer_pb message types from `proto/filer.proto` with
//! protobuf-codegen's pure-Rust parser, so a fresh machine needs no `protoc`.
//! The gRPC method descriptors are written by hand in `src/filer/rpc.rs`:
//! a dozen constants are smaller than a generator and need no protobuf-2 build.

fn main() {
    println!("cargo:rerun-if-changed=proto/filer.proto");
    protobuf_codegen::Codegen::new()
        .pure()
        .include("proto")
        .input("proto/filer.proto")
        .cargo_out_dir("proto")
        .run_from_script();
}
