//! `stratbox backtest`.

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`stratbox backtest` is not built yet")
}
