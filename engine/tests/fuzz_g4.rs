//! Gate G4: 1,000 rounds of extreme inputs against the real embedded chain (revm running
//! the Uniswap V3 bytecode), on SQLite and on PostgreSQL.
//!
//! Each round may move the market (50% price jumps, liquidity drained to near zero and
//! restored), skew one oracle source, engage the kill switch, let the engine's watermark
//! run ahead, spike the gas price (to just over the cap, far over it, or 2^256-1), and then
//! submits a batch of hostile proposals: dust and 2^256-1 amounts,
//! greedy or nonsense expectations, any bps, misaligned ticks, malformed strings. After
//! every round it checks, independently of the engine's own code:
//! - every task that reached SIMULATED meets its limits: slippage within the configured
//!   maximum, the simulated amounts within the proposal's bounds (exact integer
//!   comparison), a fresh watermark, agreeing oracles, kill switch off, a gas price within
//!   the cap, a size within the L1 policy of the book's equity, and not a malformed
//!   proposal;
//! - nothing panicked (the submit returned normally), every proposal got a result;
//! - the ledger balances per posting and per asset.
//!
//! The gas price is the engine's (`Engine::set_gas_price`, what a chain follower reports),
//! not the proposal's: a spike refuses every trade with `gas_price`. What gas can do inside
//! a trade, a revert (out of gas included), is covered by `sim_reverted` outcomes, which
//! never reach SIMULATED.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ruint::aliases::U512;
use stratbox_engine::gates::token0_in_token1;
use stratbox_engine::proposal::{Range, TradeAction};
use stratbox_engine::{Engine, RiskConfig};
use stratbox_proto::U256;
use stratbox_proto::v1::{self, TaskState as W};
use stratbox_sim::{Action, DEFAULT_MARKET_MAKER};

const ROUNDS: usize = 1_000;
const WHALE: [u8; 20] = [0x77; 20];

struct Round {
    watermark: u64,
    kill: bool,
    oracle_skew_bps: i64,
    sqrt_price_before: U256,
    gas_price_wei: U256,
    /// The fuzz book's equity before the batch (what the per-level size is a share of).
    equity_before: U256,
}

fn u(v: u128) -> U256 {
    U256::from(v)
}

fn wide(v: U256) -> U512 {
    U512::from(v)
}

/// Moves the price by about 50% up or down with a committed whale swap.
fn jump(engine: &Engine, rng: &mut StdRng) {
    let p = pool(engine);
    let _ = engine.update_chain(|chain| {
        let Some(state) = chain.pool_state(p.into()).ok() else {
            return;
        };
        let up = rng.random_bool(0.5);
        // sqrt(1.5) ~ 1.2247
        let limit = if up {
            state.sqrt_price_x96 * u(12_247) / u(10_000)
        } else {
            state.sqrt_price_x96 * u(10_000) / u(12_247)
        };
        let _ = chain.execute(
            WHALE.into(),
            &Action::Swap {
                pool: p.into(),
                zero_for_one: !up,
                amount_in: U256::from(1u8) << 120,
                sqrt_price_limit_x96: Some(limit),
            },
        );
        chain.next_block();
    });
}

/// The market maker pulls (almost) all of the seed liquidity, or puts it back.
fn drain_or_restore(engine: &Engine, drain: bool) {
    let p = pool(engine);
    let _ = engine.update_chain(|chain| {
        let (lower, upper) = (-887_220, 887_220);
        let seed: u128 = 1_000_000_000_000_000_000_000_000;
        let l = seed - 1_000;
        let action = if drain {
            Action::RemoveLiquidity {
                pool: p.into(),
                tick_lower: lower,
                tick_upper: upper,
                liquidity: l,
            }
        } else {
            Action::AddLiquidity {
                pool: p.into(),
                tick_lower: lower,
                tick_upper: upper,
                liquidity: l,
            }
        };
        let _ = chain.execute(DEFAULT_MARKET_MAKER, &action);
        chain.next_block();
    });
}

fn garbage(rng: &mut StdRng) -> String {
    let options = [
        "",
        "-1",
        "1.5",
        "1e18",
        "0x10",
        "01",
        " 1",
        "١٢",
        "NaN",
        "115792089237316195423570985008687907853269984665640564039457584007913129639936",
    ];
    options[rng.random_range(0..options.len())].to_owned()
}

fn hostile_amount(rng: &mut StdRng, sensible: U256) -> U256 {
    match rng.random_range(0..6) {
        0 => U256::ZERO,
        1 => U256::from(1u8),
        2 => U256::MAX,
        3 => sensible,
        4 => sensible * u(2),
        _ => U256::from(rng.random::<u64>()) * U256::from(rng.random::<u32>()),
    }
}

fn build(engine: &Engine, rng: &mut StdRng, round: usize, index: u32, wm: u64) -> v1::Proposal {
    let p = pool(engine);
    let kind = rng.random_range(0..3);
    let action = match kind {
        0 => {
            let amount_in = match rng.random_range(0..5) {
                0 => U256::from(1u8),
                1 => U256::MAX,
                2 => U256::from(rng.random_range(1u64..1_000_000_000_000_000_000)),
                3 => U256::from(1u8) << rng.random_range(60..200),
                _ => U256::from(rng.random_range(1u64..1_000_000)),
            };
            TradeAction::Swap {
                pool: p,
                zero_for_one: rng.random_bool(0.5),
                amount_in,
                sqrt_price_limit_x96: None,
            }
        }
        _ => {
            let spacing = if rng.random_bool(0.8) { 60 } else { 7 };
            let lower = rng.random_range(-200..200) * spacing;
            let width = rng.random_range(1..100) * spacing;
            let liquidity: u128 = match rng.random_range(0..4) {
                0 => 1,
                1 => u128::MAX,
                _ => rng.random_range(1..1_000_000_000_000_000_000u128),
            };
            let r = Range {
                pool: p,
                tick_lower: lower,
                tick_upper: lower + width,
                liquidity,
            };
            if kind == 1 {
                TradeAction::AddLiquidity(r)
            } else {
                TradeAction::RemoveLiquidity(r)
            }
        }
    };
    let q = quote(engine, "fuzz-acct", &action);
    let e0 = hostile_amount(rng, q.amount0);
    let e1 = hostile_amount(rng, q.amount1);
    let bps = match rng.random_range(0..4) {
        0 => 0,
        1 => rng.random_range(0..=100),
        2 => rng.random_range(0..=10_000),
        _ => rng.random_range(10_000..=u32::MAX),
    };
    let mut prop = proposal(
        engine,
        "fuzz",
        &format!("round-{round}"),
        index,
        &action,
        e0,
        e1,
        bps,
    );
    prop.account = "fuzz-acct".into();
    prop.last_sync_block = match rng.random_range(0..5) {
        0 => wm.saturating_sub(rng.random_range(0..10)),
        1 => wm + rng.random_range(0..3),
        _ => wm,
    };
    // Malformed strings, one field at a time.
    if rng.random_ratio(1, 6) {
        match rng.random_range(0..5) {
            0 => {
                prop.expected_amount0 = Some(v1::Amount {
                    value: garbage(rng),
                })
            }
            1 => prop.expected_amount1 = None,
            2 => prop.action = None,
            3 => prop.strategy = "\u{0}bad".into(),
            _ => {
                if let Some(v1::proposal::Action::Swap(s)) = &mut prop.action {
                    s.pool = Some(v1::Address {
                        value: format!("0x{}", garbage(rng)),
                    });
                } else {
                    prop.account = String::new();
                }
            }
        }
    }
    prop
}

/// The independent re-check of one SIMULATED task.
fn recheck(task: &v1::Task, r: &Round, cfg: &RiskConfig) -> Result<(), String> {
    let p = task.proposal.as_ref().ok_or("no proposal")?;
    if r.kill {
        return Err("simulated while the kill switch was engaged".into());
    }
    let gas_cap = U256::from(cfg.gas.max_gas_price_gwei) * U256::from(1_000_000_000u64);
    if r.gas_price_wei > gas_cap {
        return Err(format!(
            "simulated at gas price {} wei, over the cap",
            r.gas_price_wei
        ));
    }
    let mean_skew = r.oracle_skew_bps.abs();
    // Two sources at the price, one skewed: the median is the price, so a skew beyond the
    // allowed deviation must stop everything.
    if mean_skew > i64::from(cfg.oracle.max_deviation_bps) {
        return Err(format!("simulated with an oracle {mean_skew} bps off"));
    }
    if p.last_sync_block > r.watermark
        || r.watermark - p.last_sync_block > cfg.sentinel.max_lag_blocks
    {
        return Err(format!(
            "simulated with watermark {} vs engine {}",
            p.last_sync_block, r.watermark
        ));
    }
    if p.max_slippage_bps > cfg.limits.max_slippage_bps {
        return Err(format!(
            "slippage {} bps over the limit",
            p.max_slippage_bps
        ));
    }
    let parse = |a: &Option<v1::Amount>| {
        a.as_ref()
            .and_then(|a| stratbox_proto::parse_amount(&a.value).ok())
    };
    let e0 = parse(&p.expected_amount0).ok_or("malformed expected_amount0 simulated")?;
    let e1 = parse(&p.expected_amount1).ok_or("malformed expected_amount1 simulated")?;
    let s0 = parse(&task.sim_amount0).ok_or("no sim amount0")?;
    let s1 = parse(&task.sim_amount1).ok_or("no sim amount1")?;
    let bps = u64::from(p.max_slippage_bps);
    let down = wide(u(u128::from(10_000 - bps.min(10_000))));
    let upb = wide(u(u128::from(10_000 + bps)));
    let t = wide(u(10_000));
    let l1_cap = r.equity_before * u(u128::from(cfg.permission.levels.l1.max_trade_bps_of_equity))
        / u(10_000);
    match p.action.as_ref().ok_or("no action simulated")? {
        v1::proposal::Action::Swap(s) => {
            let amount_in = parse(&s.amount_in).ok_or("malformed amount_in")?;
            let (out, exp) = if s.zero_for_one { (s1, e1) } else { (s0, e0) };
            if wide(out) * t < wide(exp) * down {
                return Err(format!("swap out {out} below {exp} less {bps} bps"));
            }
            let notional = if s.zero_for_one {
                token0_in_token1(amount_in, r.sqrt_price_before)
            } else {
                amount_in
            };
            if notional > l1_cap {
                return Err(format!("notional {notional} over the L1 cap {l1_cap}"));
            }
        }
        v1::proposal::Action::AddLiquidity(_) => {
            if wide(s0) * t > wide(e0) * upb || wide(s1) * t > wide(e1) * upb {
                return Err(format!(
                    "add paid ({s0}, {s1}) over ({e0}, {e1}) plus {bps} bps"
                ));
            }
        }
        v1::proposal::Action::RemoveLiquidity(_) => {
            if wide(s0) * t < wide(e0) * down || wide(s1) * t < wide(e1) * down {
                return Err(format!(
                    "remove got ({s0}, {s1}) under ({e0}, {e1}) less {bps} bps"
                ));
            }
        }
    }
    Ok(())
}

async fn fuzz(db: &Db, seed: u64) {
    let engine = engine(db).await;
    let cfg = RiskConfig::default();
    let _ = engine.update_chain(|chain| {
        let p = chain.pools()[0];
        let _ = chain.fund(WHALE.into(), p.token0, U256::from(1u8) << 200);
        let _ = chain.fund(WHALE.into(), p.token1, U256::from(1u8) << 200);
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let mut drained = false;
    let mut simulated = 0usize;
    let mut rejected: std::collections::BTreeMap<String, usize> = Default::default();
    let rounds: usize = std::env::var("STRATBOX_G4_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    for round in 0..rounds {
        if round % 100 == 0 {
            eprintln!("round {round} of {rounds}");
        }
        // Market and control-plane extremes.
        if rng.random_ratio(1, 8) {
            jump(&engine, &mut rng);
        }
        if rng.random_ratio(1, 15) {
            drain_or_restore(&engine, !drained);
            drained = !drained;
        }
        let chain_block = engine.chain().block_number();
        // The engine's watermark only moves forward (as a feed's does), sometimes jumping
        // ahead of the simulated chain.
        let wm = if rng.random_ratio(1, 10) {
            chain_block + rng.random_range(1..20)
        } else {
            chain_block
        };
        let wm = wm.max(engine.watermark());
        engine.set_watermark(wm);
        let skew = if rng.random_ratio(1, 6) {
            rng.random_range(-300..=300)
        } else {
            0
        };
        feed_oracles(&engine, skew);
        let gwei = |g: u64| U256::from(g) * U256::from(1_000_000_000u64);
        let gas_price_wei = match rng.random_range(0..12) {
            0 => gwei(cfg.gas.max_gas_price_gwei) + U256::from(1u8),
            1 => gwei(rng.random_range(cfg.gas.max_gas_price_gwei..1_000_000)),
            2 => U256::MAX,
            3 => gwei(cfg.gas.max_gas_price_gwei),
            _ => gwei(rng.random_range(0..100)),
        };
        engine.set_gas_price(gas_price_wei);
        let kill = rng.random_ratio(1, 12);
        if kill {
            engine.set_kill_switch("", "fuzz", "fuzz").await.unwrap();
        }
        let the_pool = pool(&engine);
        let sqrt_price_before = engine
            .chain()
            .pool(&the_pool)
            .map(|i| i.sqrt_price_x96)
            .unwrap_or_default();
        let capital = U256::from(10u64).pow(U256::from(24u64));
        let equity_before = engine
            .book("fuzz", "fuzz-acct")
            .map(|(v, _, _)| v.equity)
            .unwrap_or(capital);
        let n = rng.random_range(1..=4);
        let batch: Vec<_> = (0..n)
            .map(|i| build(&engine, &mut rng, round, i, wm))
            .collect();
        let results = engine
            .submit("", batch)
            .await
            .unwrap_or_else(|e| panic!("round {round}: submit failed: {e}"));
        assert_eq!(
            results.len(),
            n as usize,
            "round {round}: one result per proposal"
        );
        let r = Round {
            watermark: wm,
            kill,
            oracle_skew_bps: skew,
            sqrt_price_before,
            gas_price_wei,
            equity_before,
        };
        for res in &results {
            // Only malformed input is answered without a task (it is never stored).
            if res.task_id.is_empty() {
                assert_eq!(res.reason_code, "bad_input", "round {round}: {res:?}");
            }
            match state(res) {
                W::Simulated => {
                    simulated += 1;
                    let task = engine.get_task(&res.task_id).await.unwrap().expect("task");
                    if let Err(why) = recheck(&task, &r, &cfg) {
                        panic!(
                            "round {round} (seed {seed}): task {} broke a limit yet reached SIMULATED: {why}",
                            res.task_id
                        );
                    }
                }
                W::Rejected => *rejected.entry(res.reason_code.clone()).or_default() += 1,
                other => panic!("round {round}: unexpected state {other:?}"),
            }
        }
        if kill {
            engine.clear_kill_switch("", "fuzz").await.unwrap();
        }
        engine
            .check_ledger()
            .await
            .unwrap_or_else(|e| panic!("round {round}: ledger out of balance: {e}"));
        // A halted market recovers only by rules of its own; start each round's oracle fresh
        // enough that later rounds still exercise the later gates.
    }
    eprintln!(
        "{}: {simulated} simulated, rejected by reason: {rejected:?}",
        db.name()
    );
    assert!(
        simulated > 0,
        "the fuzz never produced a passing trade: it tests nothing past the gates"
    );
    assert!(
        rejected.contains_key("bad_input")
            && rejected.contains_key("sim_min_out")
            && rejected.contains_key("gas_price"),
        "{rejected:?}"
    );
    engine.store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_fuzz_sqlite() {
    let db = sqlite().await;
    fuzz(&db, 0x5eed_0001).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_fuzz_postgres() {
    let db = postgres().await;
    fuzz(&db, 0x5eed_0002).await;
    db.cleanup().await;
}
