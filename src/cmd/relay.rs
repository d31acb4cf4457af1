//! `stratbox relay`: a local private relay that stands in for a real one (see
//! `stratbox::relay`): it takes `eth_sendBundle` over HTTP JSON-RPC and includes bundles
//! on an Anvil node at their target block.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::relay::{self, RelayConfig};

#[derive(clap::Args)]
pub struct Args {
    /// The chain's node (Anvil: the relay mines with its `evm_mine`).
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// Where the relay takes JSON-RPC (`eth_sendBundle`); port 0 for any free one.
    #[arg(long, default_value = "127.0.0.1:8547")]
    pub listen: SocketAddr,
    /// Produce a block this often (the relay turns the node's automine off and is its block
    /// producer, like a builder); without it, the relay mines a bundle's block as soon as
    /// the node's head is the block before it.
    #[arg(long, value_parser = super::up::parse_duration)]
    pub block_time: Option<Duration>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (listener, addr) = relay::bind(args.listen).await?;
    let config = RelayConfig {
        rpc: args.rpc.clone(),
        block_time: args.block_time,
        poll: Duration::from_millis(20),
    };
    let (stop_tx, stop) = watch::channel(false);
    let mut serving = tokio::spawn(relay::serve(config, listener, stop));
    println!(
        "stratbox relay listening on {addr} (eth_sendBundle; a stand-in for a private relay), node {}{}",
        args.rpc,
        match args.block_time {
            Some(d) => format!(", a block every {} ms", d.as_millis()),
            None => String::new(),
        }
    );
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        // The node unreachable at the start, or the server failing: the command fails.
        ended = &mut serving => return ended.context("the relay task")?,
    }
    let _ = stop_tx.send(true);
    serving.await.context("the relay task")?
}
