//! `stratbox bench engine`: proposals per second and latency from submit to SIMULATED
//! (gates, revm simulation, storage), SQLite and PostgreSQL side by side in one run.
//!
//! Each backend gets a fresh database (a temporary SQLite file; a new PostgreSQL database
//! created for the run and dropped after) and a fresh embedded chain. Proposals are
//! distinct swaps that all pass, submitted in batches by concurrent clients, as hosts do.
//! A proposal's latency is its batch's (it is answered when its batch is).

use std::time::{Duration, Instant};

use anyhow::Context;
use stratbox_engine::chain::SimChain;
use stratbox_engine::gates::spot_price_e18;
use stratbox_engine::proposal::{TradeAction, hex_address};
use stratbox_engine::store::{create_postgres_database, drop_postgres_database, with_database};
use stratbox_engine::{Engine, EngineSettings, Store, market_key, sim_address};
use stratbox_proto::U256;
use stratbox_proto::v1::{self, proposal::Action};

#[derive(clap::Args)]
pub struct Args {
    /// Proposals per backend.
    #[arg(long, default_value_t = 10_000)]
    pub proposals: usize,
    /// PostgreSQL server to use (a fresh database is created on it and dropped after).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres: String,
    /// Proposals per submitted batch.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent submitting clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Skip PostgreSQL.
    #[arg(long)]
    pub sqlite_only: bool,
}

struct Measured {
    backend: &'static str,
    proposals: usize,
    simulated: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.proposals as f64 / self.elapsed.as_secs_f64()
    }
}

fn amount(v: U256) -> Option<v1::Amount> {
    Some(v1::Amount {
        value: v.to_string(),
    })
}

async fn run_one(backend: &'static str, url: &str, args: &Args) -> anyhow::Result<Measured> {
    let store = Store::connect(url)
        .await
        .with_context(|| format!("opening {backend}"))?;
    let chain = tokio::task::spawn_blocking(SimChain::embedded).await??;
    let engine = Engine::start(store, Box::new(chain), EngineSettings::default()).await?;
    let pool = engine
        .with_chain(|c| c.pools().first().copied())
        .context("no pool")?;
    let info = engine
        .with_chain(|c| c.pool(&pool))
        .context("no pool state")?;
    let market = market_key(&info.token0, &info.token1);
    for s in ["a", "b", "c"] {
        engine.update_oracle(&market, s, spot_price_e18(info.sqrt_price_x96));
    }
    let amount_in = U256::from(1_000_000_000_000u64);
    let action = TradeAction::Swap {
        pool,
        zero_for_one: true,
        amount_in,
        sqrt_price_limit_x96: None,
    };
    let q = engine
        .with_chain(|c| c.simulate(sim_address("bench-acct"), &action))
        .map_err(|e| anyhow::anyhow!("quote: {e}"))?;
    let watermark = engine.watermark();
    let run_id = uuid::Uuid::now_v7().to_string();
    let proposals: Vec<v1::Proposal> = (0..args.proposals)
        .map(|i| v1::Proposal {
            strategy: "bench".into(),
            strategy_version: "1".into(),
            instance_id: format!("i-{}", i % 16),
            account: "bench-acct".into(),
            event_id: format!("{run_id}:{}", i / 4),
            index: (i % 4) as u32,
            last_sync_block: watermark,
            action: Some(Action::Swap(v1::SwapAction {
                pool: Some(v1::Address {
                    value: hex_address(&pool),
                }),
                zero_for_one: true,
                amount_in: amount(amount_in),
                sqrt_price_limit_x96: None,
            })),
            expected_amount0: amount(q.amount0),
            expected_amount1: amount(q.amount1),
            max_slippage_bps: 50,
            reason: String::new(),
        })
        .collect();
    let batches: Vec<Vec<v1::Proposal>> = proposals
        .chunks(args.batch.max(1))
        .map(<[v1::Proposal]>::to_vec)
        .collect();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(batches.into_iter()));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.clients.max(1) {
        let engine = engine.clone();
        let queue = queue.clone();
        clients.push(tokio::spawn(async move {
            let mut lat: Vec<(Duration, usize)> = Vec::new();
            let mut simulated = 0usize;
            loop {
                let Some(batch) = queue.lock().await.next() else {
                    break;
                };
                let n = batch.len();
                let t = Instant::now();
                let results = engine.submit("", batch).await?;
                lat.push((t.elapsed(), n));
                simulated += results
                    .iter()
                    .filter(|r| r.state == v1::TaskState::Simulated as i32)
                    .count();
            }
            anyhow::Ok((lat, simulated))
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(args.proposals);
    let mut simulated = 0;
    for c in clients {
        let (lat, s) = c.await??;
        simulated += s;
        for (d, n) in lat {
            latencies.extend(std::iter::repeat_n(d, n));
        }
    }
    let elapsed = started.elapsed();
    engine
        .check_ledger()
        .await
        .context("ledger check after the run")?;
    engine.store().close().await;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Measured {
        backend,
        proposals: args.proposals,
        simulated,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("stratbox-bench-{}", uuid::Uuid::now_v7()));
    let sqlite_url = format!("sqlite://{}", dir.join("engine.db").display());
    let mut rows = vec![run_one("sqlite", &sqlite_url, &args).await];
    let _ = std::fs::remove_dir_all(&dir);
    if !args.sqlite_only {
        let name = format!("stratbox_bench_{}", uuid::Uuid::new_v4().simple());
        create_postgres_database(&args.postgres, &name)
            .await
            .context("creating the benchmark database")?;
        let r = run_one("postgres", &with_database(&args.postgres, &name), &args).await;
        let _ = drop_postgres_database(&args.postgres, &name).await;
        rows.push(r);
    }
    let rows: Vec<Measured> = rows.into_iter().collect::<anyhow::Result<_>>()?;
    println!(
        "engine: {} proposals per backend, batches of {}, {} clients; submit -> SIMULATED (gates + revm + storage)",
        args.proposals, args.batch, args.clients
    );
    println!(
        "{:<10} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "backend", "proposals/s", "p50 ms", "p99 ms", "simulated", "total s"
    );
    for r in &rows {
        println!(
            "{:<10} {:>12.0} {:>10.2} {:>10.2} {:>10} {:>10.2}",
            r.backend,
            r.rate(),
            ms(r.p50),
            ms(r.p99),
            r.simulated,
            r.elapsed.as_secs_f64()
        );
    }
    if let [s, p] = &rows[..] {
        println!(
            "{:<10} {:>12.2} {:>10.2} {:>10.2}",
            "pg/sqlite",
            p.rate() / s.rate(),
            ms(p.p50) / ms(s.p50).max(1e-9),
            ms(p.p99) / ms(s.p99).max(1e-9)
        );
    }
    Ok(())
}
