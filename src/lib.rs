//! The `stratbox` command as a library, so tests reach its real argument parser
//! ([`cli::Cli`]) and parse the deploy files' command lines with it.

// Lets code in this package name its own items `stratbox::…`, the same path from the
// library, the binary and the tests.
extern crate self as stratbox;

pub mod cli;
pub mod cmd;
