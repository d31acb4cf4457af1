//! Compiles the protobuf contracts with protox (a pure-Rust protobuf compiler), so building
//! stratbox never needs a system `protoc`. The encoded descriptor set is also written out
//! for gRPC server reflection.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "stratbox/v1/common.proto",
    "stratbox/v1/data_stream.proto",
    "stratbox/v1/trading.proto",
    "stratbox/v1/signer.proto",
    "stratbox/v1/registry.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let fds = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("stratbox_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
