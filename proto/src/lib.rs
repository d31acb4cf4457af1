//! stratbox's wire contracts: the Rust types and gRPC stubs generated from `proto/`.
//!
//! The `.proto` files are the source of truth and are versioned (`stratbox.v1`); this crate
//! only adds the conversions every service needs at its edge, so that an amount is parsed
//! the same strict way wherever it enters a process.

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("stratbox.v1");
}

/// The encoded `FileDescriptorSet` of what the engine serves (trading, registry), for its
/// gRPC server reflection.
pub const ENGINE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/engine_descriptor.bin"));

/// The encoded `FileDescriptorSet` of what the signer serves, for its reflection.
pub const SIGNER_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/signer_descriptor.bin"));

mod address;
mod amount;
pub mod trace;

pub use address::{AddressError, checksummed, parse_address};
pub use amount::{AmountParseError, U256, parse_amount};
