//! A chain forked from a real node (Anvil with stratbox's contracts) predicts that node exactly.

use alloy::providers::ProviderBuilder;
use alloy_primitives::U256;
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig};
use stratbox_evm::pool_events::{PoolEvent, decode_receipt_logs};
use stratbox_sim::{Action, Chain};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_of_anvil_simulates_what_anvil_then_does() -> TestResult {
    let anvil = Anvil::spawn()?;
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse()?);
    let deployer = anvil.accounts()[0];
    let trader = anvil.accounts()[1];
    let d = deploy::deploy(&provider, deployer, &DeployConfig::default()).await?;
    let amount = U256::from(10u128.pow(22));
    d.fund(&provider, trader, amount, amount).await?;

    let chain = Chain::fork(&anvil.endpoint(), &[d.pool], None).await?;
    let info = chain.pools()[0];
    assert_eq!(
        (info.token0, info.token1, info.fee, info.tick_spacing),
        (d.token0, d.token1, 3000, 60)
    );

    let swap = Action::Swap {
        pool: d.pool,
        zero_for_one: false,
        amount_in: U256::from(3 * 10u128.pow(18)),
        sqrt_price_limit_x96: None,
    };
    // The fork fetches state by blocking on the runtime: run it on a blocking thread.
    let (chain, predicted, approved) = tokio::task::spawn_blocking(move || {
        let mut chain = chain;
        // The executor on the fork is ours, at another address: approve it there.
        chain.approve_executor(trader, info.token1)?;
        let approved = chain.simulate(trader, &[swap])?.remove(0);
        let balance = chain.balance_of(info.token1, trader)?;
        Ok::<_, stratbox_sim::SimError>((chain, approved, balance))
    })
    .await??;
    assert_eq!(approved, amount, "the fork reads the node's balances");
    assert!(predicted.success, "{:?}", predicted.revert_reason);

    d.approve_executor(&provider, trader).await?;
    let receipt = d
        .swap(
            &provider,
            trader,
            false,
            U256::from(3 * 10u128.pow(18)),
            None,
        )
        .await?;
    let logs: Vec<_> = receipt
        .inner
        .logs()
        .iter()
        .map(|l| l.inner.clone())
        .collect();
    let real = decode_receipt_logs(&logs, d.executor)
        .into_iter()
        .find_map(|(_, e)| match e {
            PoolEvent::Swap(s) => Some(s),
            _ => None,
        })
        .ok_or("no Swap log")?;
    assert_eq!(predicted.amount1, real.amount_in());
    assert_eq!(predicted.amount0, real.amount_out());
    assert_eq!(predicted.sqrt_price_after, real.sqrt_price_x96);
    assert_eq!(predicted.tick_after, real.tick);
    assert_eq!(predicted.liquidity_after, real.liquidity);
    drop(chain);
    Ok(())
}
