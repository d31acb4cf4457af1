//! Real Anvil (the npm-pinned binary): deploy stratbox's contracts and trade on them.

use alloy::providers::{Provider, ProviderBuilder};
use alloy_primitives::U256;
use stratbox_evm::anvil::Anvil;
use stratbox_evm::deploy::{self, DeployConfig};
use stratbox_evm::pool_events::{PoolEvent, decode_receipt_logs};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test]
async fn deploys_on_anvil_and_a_swap_emits_a_swap_log() -> TestResult {
    let anvil = Anvil::spawn()?;
    assert_eq!(anvil.chain_id(), 31337);
    assert_eq!(anvil.accounts().len(), 10);
    assert_eq!(anvil.private_keys().len(), 10);
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse()?);
    assert_eq!(provider.get_chain_id().await?, 31337);
    let deployer = anvil.accounts()[0];
    let trader = anvil.accounts()[1];

    let cfg = DeployConfig::default();
    let d = deploy::deploy(&provider, deployer, &cfg).await?;
    assert!(d.token0 < d.token1);
    assert_eq!(d.tick_spacing, 60);
    assert!(!provider.get_code_at(d.pool).await?.is_empty());
    assert!(!provider.get_code_at(d.executor).await?.is_empty());
    let (sqrt_price, tick, liquidity) = d.pool_state(&provider).await?;
    assert_eq!((sqrt_price, tick), (cfg.sqrt_price_x96, 0));
    assert_eq!(liquidity, cfg.seed_liquidity);

    let amount = U256::from(10u128.pow(21));
    d.fund(&provider, trader, amount, amount).await?;
    d.approve_executor(&provider, trader).await?;
    let receipt = d
        .swap(&provider, trader, true, U256::from(10u128.pow(18)), None)
        .await?;
    let logs: Vec<_> = receipt
        .inner
        .logs()
        .iter()
        .map(|l| l.inner.clone())
        .collect();
    let events = decode_receipt_logs(&logs, d.executor);
    let swaps: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match e {
            PoolEvent::Swap(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(swaps.len(), 1, "{events:?}");
    let swap = swaps[0];
    assert_eq!(swap.pool, d.pool);
    assert_eq!(swap.recipient, trader);
    assert!(swap.zero_for_one());
    assert_eq!(swap.amount_in(), U256::from(10u128.pow(18)));
    assert_eq!(
        d.balance_of(&provider, d.token0, trader).await?,
        amount - swap.amount_in()
    );
    assert_eq!(
        d.balance_of(&provider, d.token1, trader).await?,
        amount + swap.amount_out()
    );
    let (after, _, _) = d.pool_state(&provider).await?;
    assert_eq!(after, swap.sqrt_price_x96);

    // Liquidity through the executor is attributed to the trader.
    let receipt = d
        .add_liquidity(&provider, trader, -600, 600, 10u128.pow(18))
        .await?;
    let logs: Vec<_> = receipt
        .inner
        .logs()
        .iter()
        .map(|l| l.inner.clone())
        .collect();
    let mint = decode_receipt_logs(&logs, d.executor)
        .into_iter()
        .find_map(|(_, e)| match e {
            PoolEvent::Mint(m) => Some(m),
            _ => None,
        })
        .ok_or("no Mint log")?;
    assert_eq!(mint.owner, trader);
    assert_eq!(mint.liquidity, 10u128.pow(18));
    d.remove_liquidity(&provider, trader, -600, 600, 10u128.pow(18))
        .await?;
    Ok(())
}

#[test]
fn anvil_stops_when_dropped() -> TestResult {
    let anvil = Anvil::spawn()?;
    let port = anvil.port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(anvil);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    Ok(())
}

/// Anvils started at the same moment each get their own node: every one answers on its own
/// port with the chain id it was started with, never another's.
#[test]
fn anvils_started_at_once_are_distinct_nodes() -> TestResult {
    use stratbox_evm::anvil::AnvilOptions;
    let anvils = std::thread::scope(|s| {
        let starts: Vec<_> = (0..6u64)
            .map(|i| {
                s.spawn(move || {
                    Anvil::spawn_with(&AnvilOptions {
                        chain_id: Some(4_000 + i),
                        ..AnvilOptions::default()
                    })
                })
            })
            .collect();
        starts
            .into_iter()
            .map(|h| h.join().expect("spawn thread"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut ports: Vec<u16> = anvils.iter().map(Anvil::port).collect();
    for (i, anvil) in anvils.iter().enumerate() {
        assert_eq!(
            anvil.chain_id(),
            4_000 + i as u64,
            "node {i} answers as itself"
        );
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), anvils.len(), "one port per node");
    Ok(())
}
