//! What the process-level tests share: where the real services are, unique names for the
//! databases and streams a test makes, and reading the address a `stratbox` service prints.
//! Each test binary uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;

/// The PostgreSQL server tests create their databases on (`scripts/test` sets it).
pub fn postgres_admin() -> String {
    std::env::var("STRATBOX_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("STRATBOX_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A name no other run uses, so concurrent and repeated runs never share state.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// The `ADDR` of the first "… listening on ADDR …" line a service prints on stdout. The
/// rest of stdout is drained on a thread so the service never blocks on a full pipe.
pub fn listening_address(stdout: ChildStdout) -> String {
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the service printed its address before exiting")
            .expect("utf-8");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("an address")
                .to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    addr
}
