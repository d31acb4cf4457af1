//! `stratbox strategy ...`.

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check that a file is a component of the stratbox strategy world.
    Check { file: std::path::PathBuf },
}

pub async fn run(_command: Command) -> anyhow::Result<()> {
    anyhow::bail!("`stratbox strategy` is not built yet")
}
