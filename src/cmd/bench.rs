//! `stratbox bench ...`: each target prints a table of medians and ratios.

#[derive(clap::Subcommand)]
pub enum Command {
    /// The strategy host: warm calls, rebuilds, fan-out, fuel cost, memory per instance.
    Host,
}

pub async fn run(_command: Command) -> anyhow::Result<()> {
    anyhow::bail!("`stratbox bench` is not built yet")
}
