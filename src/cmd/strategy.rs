//! `stratbox strategy ...`: inspect and manage strategy components.
//!
//! Only `check` exists so far; `upload`, `list`, `show`, `deploy`, `scale` and `rollback`
//! join this enum as the engine grows the endpoints behind them.

use anyhow::Context;
use stratbox_host::check::{DEFAULT_MAX_COMPONENT_BYTES, check_component};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check that a file is a component of the stratbox strategy world.
    ///
    /// Prints the world it targets, its imports, size and sha256; exits non-zero with a
    /// one-line reason for anything else.
    Check {
        file: std::path::PathBuf,
        /// Refuse files larger than this many bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_COMPONENT_BYTES)]
        max_bytes: usize,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check {
            file,
            max_bytes,
            json,
        } => check(&file, max_bytes, json),
    }
}

fn check(file: &std::path::Path, max_bytes: usize, json: bool) -> anyhow::Result<()> {
    let bytes = stratbox_host::runtime::read_capped(file, max_bytes)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("{}", file.display()))?;
    let report = check_component(&bytes, max_bytes)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("{}", file.display()))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!("world:   {}", report.world);
    println!("size:    {} bytes", report.size);
    println!("sha256:  {}", report.sha256);
    println!("exports: {}", report.exports.join(", "));
    println!("imports:");
    for import in &report.imports {
        println!("  {import}");
    }
    Ok(())
}
