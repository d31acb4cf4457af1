//! Compiles the protobuf contracts with protox (a pure-Rust protobuf compiler), so building
//! stratbox never needs a system `protoc`. Encoded descriptor sets are also written out for
//! gRPC server reflection: one per zone's server, so a server lists only the services it
//! serves (the engine must not advertise the signer's).

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "stratbox/v1/common.proto",
    "stratbox/v1/data_stream.proto",
    "stratbox/v1/trading.proto",
    "stratbox/v1/signer.proto",
    "stratbox/v1/registry.proto",
];

/// What the engine's port serves (Zone B).
const ENGINE_PROTOS: &[&str] = &[
    "stratbox/v1/common.proto",
    "stratbox/v1/data_stream.proto",
    "stratbox/v1/trading.proto",
    "stratbox/v1/registry.proto",
];

/// What the signer's ports serve (Zone C).
const SIGNER_PROTOS: &[&str] = &["stratbox/v1/common.proto", "stratbox/v1/signer.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let out = PathBuf::from(std::env::var("OUT_DIR")?);

    for (file, protos) in [
        ("engine_descriptor.bin", ENGINE_PROTOS),
        ("signer_descriptor.bin", SIGNER_PROTOS),
    ] {
        let fds = protox::compile(protos, [&root])?;
        std::fs::write(out.join(file), fds.encode_to_vec())?;
    }

    let fds = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
