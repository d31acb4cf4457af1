//! momentum: trades with the trend of a pool's price.
//!
//! Config (JSON):
//! `{"pool": "0x...", "lookback_blocks": 20, "threshold_bps": 30,
//!   "amount_in": "100000000000000000", "max_slippage_bps": 100}`, optionally with
//! `"toxic_markout_bps": 20, "widen_step_bps": 10, "max_widen_bps": 500` (those defaults).
//!
//! At most once per block (on a swap in its pool or a new block) it asks the host for the
//! pool's events since `watermark - lookback_blocks`, takes the oldest swap's price as the
//! reference and compares it with the snapshot's price, all in integers. If the price of
//! token0 rose by at least `threshold_bps` it buys token0 (pays `amount_in` of token1); if it
//! fell that much it sells `amount_in` of token0. After a trade it waits `lookback_blocks`
//! so one move is not traded twice.
//!
//! Its state is which blocks it last decided and traded on: it travels to the next
//! version in a hot swap (`save`/`restore`), so a new version does not trade again a move
//! the old one already traded.
//!
//! It is built for world 0.2.0: it is told what became of each proposal (`on-outcome`) and
//! learns from fills' markouts. A fill whose markout is worse than `-toxic_markout_bps` (the
//! price ran against it: toxic flow) widens its threshold by `widen_step_bps`, up to
//! `max_widen_bps`; a markout that is not negative narrows it back by one step. The widening
//! and a count of outcomes by state live in the deployment's memory (`widen_bps`,
//! `outcomes:<state>`), so every instance, the next version after a hot swap and the
//! strategy after a restart of host or engine trade on what it learnt.
//!
//! The expected output is one `compute_swap_step` against the snapshot's in-range liquidity,
//! bounded by a price limit derived from `max_slippage_bps`; that is exact while the swap
//! stays inside the current tick range, and the price limit keeps the pool from going
//! further.

use serde::{Deserialize, Serialize};
use stratbox_sdk::math::{MAX_SQRT_RATIO, MIN_SQRT_RATIO, compute_swap_step, mul_div};
use stratbox_sdk::proposal::swap;
use stratbox_sdk::types::{
    Event, FinalState, Outcome, PoolState, Proposal, Snapshot, same_address,
};
use stratbox_sdk::{Amount, Outcomes, Stateful, Strategy, U256, host, memory};

/// Events asked of the host per decision; the reference is the oldest swap among them.
const HISTORY_LIMIT: u32 = 64;

/// 10^18: fixed-point one for the price ratio.
const ONE_E18: u64 = 1_000_000_000_000_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub pool: String,
    pub lookback_blocks: u64,
    pub threshold_bps: u32,
    pub amount_in: Amount,
    pub max_slippage_bps: u32,
    /// A fill whose markout is below minus this is toxic.
    #[serde(default = "default_toxic_markout_bps")]
    pub toxic_markout_bps: u32,
    /// How much one toxic fill widens the threshold (and a good one narrows it).
    #[serde(default = "default_widen_step_bps")]
    pub widen_step_bps: u32,
    /// The most the threshold is widened.
    #[serde(default = "default_max_widen_bps")]
    pub max_widen_bps: u32,
}

fn default_toxic_markout_bps() -> u32 {
    20
}

fn default_widen_step_bps() -> u32 {
    10
}

fn default_max_widen_bps() -> u32 {
    500
}

/// Memory key of the widening, in basis points (u64, little-endian).
pub const WIDEN_KEY: &str = "widen_bps";

/// Memory key counting outcomes in `state` (u64, little-endian).
pub fn outcome_key(state: FinalState) -> String {
    let name = match state {
        FinalState::Simulated => "simulated",
        FinalState::Confirmed => "confirmed",
        FinalState::Rejected => "rejected",
        FinalState::Failed => "failed",
        FinalState::Expired => "expired",
    };
    format!("outcomes:{name}")
}

/// Which way the price of token0 (in token1) moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    Up,
    Down,
    Flat,
}

pub struct Momentum {
    config: Config,
    last_decision_block: Option<u64>,
    last_trade_block: Option<u64>,
}

impl Strategy for Momentum {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("bad momentum config: {e}"))?;
        if config.lookback_blocks == 0 {
            return Err("lookback_blocks must be positive".to_owned());
        }
        if config.threshold_bps == 0 || config.threshold_bps >= 10_000 {
            return Err(format!(
                "threshold_bps must be in 1..10000, got {}",
                config.threshold_bps
            ));
        }
        if config.max_slippage_bps == 0 || config.max_slippage_bps > 10_000 {
            return Err(format!(
                "max_slippage_bps must be in 1..=10000, got {}",
                config.max_slippage_bps
            ));
        }
        if config.amount_in.is_zero() {
            return Err("amount_in must be positive".to_owned());
        }
        if u64::from(config.threshold_bps) + u64::from(config.max_widen_bps) >= 10_000 {
            return Err(format!(
                "threshold_bps + max_widen_bps must stay under 10000, got {} + {}",
                config.threshold_bps, config.max_widen_bps
            ));
        }
        Ok(Momentum {
            config,
            last_decision_block: None,
            last_trade_block: None,
        })
    }

    fn on_event(&mut self, event: &Event, snapshot: &Snapshot) -> Result<Vec<Proposal>, String> {
        let relevant = match event {
            Event::NewBlock(_) => true,
            Event::Swap(s) => same_address(&s.pool, &self.config.pool),
            _ => false,
        };
        let block = snapshot.last_sync_block;
        if !relevant || self.last_decision_block.is_some_and(|b| b >= block) {
            return Ok(Vec::new());
        }
        if self
            .last_trade_block
            .is_some_and(|t| block < t.saturating_add(self.config.lookback_blocks))
        {
            return Ok(Vec::new());
        }
        let Some(pool) = snapshot.pool(&self.config.pool) else {
            return Ok(Vec::new());
        };
        self.last_decision_block = Some(block);

        let from = block.saturating_sub(self.config.lookback_blocks);
        let history = host::history(&self.config.pool, from, HISTORY_LIMIT);
        let Some(reference) = history.iter().find_map(|e| match e {
            Event::Swap(s) if e.block() <= block => Some(s),
            _ => None,
        }) else {
            return Ok(Vec::new());
        };
        let then = reference.sqrt_price()?.into_u256();
        let now = pool.sqrt_price()?.into_u256();
        let trend = trend(then, now, self.threshold_bps())?;
        let zero_for_one = match trend {
            Trend::Flat => return Ok(Vec::new()),
            Trend::Up => false,
            Trend::Down => true,
        };
        let token_in = if zero_for_one {
            &pool.token0
        } else {
            &pool.token1
        };
        let balance = snapshot.balance(token_in)?;
        if balance < self.config.amount_in {
            host::debug(&format!(
                "{trend:?} signal but balance {balance} < {}",
                self.config.amount_in
            ));
            return Ok(Vec::new());
        }
        let Some(proposal) = self.propose(pool, zero_for_one, trend, then, now)? else {
            return Ok(Vec::new());
        };
        self.last_trade_block = Some(block);
        Ok(vec![proposal])
    }
}

/// What `save` writes: JSON, versioned, tied to the pool it was learnt on.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct SavedState {
    format: u32,
    pool: String,
    last_decision_block: Option<u64>,
    last_trade_block: Option<u64>,
}

const STATE_FORMAT: u32 = 1;

impl Stateful for Momentum {
    fn save(&self) -> Vec<u8> {
        let state = SavedState {
            format: STATE_FORMAT,
            pool: self.config.pool.clone(),
            last_decision_block: self.last_decision_block,
            last_trade_block: self.last_trade_block,
        };
        // Serialising plain integers and a string cannot fail; an empty state would only
        // make the next version start fresh.
        serde_json::to_vec(&state).unwrap_or_default()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let state: SavedState =
            serde_json::from_slice(state).map_err(|e| format!("unreadable momentum state: {e}"))?;
        if state.format != STATE_FORMAT {
            return Err(format!("momentum state format {} is unknown", state.format));
        }
        // State learnt on another pool says nothing about this one.
        if !same_address(&state.pool, &self.config.pool) {
            return Err(format!(
                "state is for pool {}, this instance trades {}",
                state.pool, self.config.pool
            ));
        }
        self.last_decision_block = state.last_decision_block;
        self.last_trade_block = state.last_trade_block;
        Ok(())
    }
}

impl Outcomes for Momentum {
    fn on_outcome(&mut self, outcome: &Outcome) -> Result<(), String> {
        let key = outcome_key(outcome.state);
        let Some(markout) = &outcome.markout else {
            // The task's end: counted once (its markout comes later, for a fill).
            let seen = memory::get_u64(&key).unwrap_or(0);
            return memory::set_u64(&key, seen.saturating_add(1));
        };
        let widen = self.widen_bps();
        let toxic = i64::from(markout.bps) < -i64::from(self.config.toxic_markout_bps);
        let next = if toxic {
            widen
                .saturating_add(self.config.widen_step_bps)
                .min(self.config.max_widen_bps)
        } else if markout.bps >= 0 {
            widen.saturating_sub(self.config.widen_step_bps)
        } else {
            widen
        };
        if next != widen {
            host::info(&format!(
                "markout {} bps after {} blocks on task {}: threshold widened by {next} bps (was {widen})",
                markout.bps, markout.blocks, outcome.task_id
            ));
            memory::set_u64(WIDEN_KEY, u64::from(next))?;
        }
        Ok(())
    }
}

stratbox_sdk::export_outcome_strategy!(Momentum);

impl Momentum {
    /// What the threshold has been widened by after toxic fills (the deployment's memory).
    pub fn widen_bps(&self) -> u32 {
        memory::get_u64(WIDEN_KEY)
            .map_or(0, |w| u32::try_from(w).unwrap_or(u32::MAX))
            .min(self.config.max_widen_bps)
    }

    /// The threshold in effect: the configured one, widened.
    pub fn threshold_bps(&self) -> u32 {
        self.config.threshold_bps + self.widen_bps()
    }

    fn propose(
        &self,
        pool: &PoolState,
        zero_for_one: bool,
        trend: Trend,
        then: U256,
        now: U256,
    ) -> Result<Option<Proposal>, String> {
        let liquidity = pool.liquidity_u128()?;
        if liquidity == 0 {
            return Ok(None);
        }
        let limit = price_limit(now, zero_for_one, self.config.max_slippage_bps)?;
        let amount_in = self.config.amount_in.into_u256();
        let step = compute_swap_step(now, limit, liquidity, amount_in, true, pool.fee)?;
        if step.amount_out.is_zero() {
            return Ok(None);
        }
        let paid = step
            .amount_in
            .checked_add(step.fee_amount)
            .ok_or("swap step overflowed")?;
        let (amount0, amount1) = if zero_for_one {
            (paid, step.amount_out)
        } else {
            (step.amount_out, paid)
        };
        let p = swap(&self.config.pool, zero_for_one, self.config.amount_in)
            .sqrt_price_limit(limit.into())
            .expect(amount0.into(), amount1.into())
            .max_slippage_bps(self.config.max_slippage_bps)
            .reason(format!(
                "{trend:?}: sqrt price {then} -> {now} over {} blocks",
                self.config.lookback_blocks
            ))
            .build()?;
        Ok(Some(p))
    }
}

/// Compares the price ratio `(now / then)^2`, as 18-decimal fixed point, with the
/// threshold. Rounding is down, so a move exactly at the threshold may read as flat.
pub fn trend(then: U256, now: U256, threshold_bps: u32) -> Result<Trend, String> {
    if then.is_zero() {
        return Err("reference price is zero".to_owned());
    }
    let one = U256::from(ONE_E18);
    let ratio = mul_div(mul_div(now, one, then)?, now, then)?;
    let bps = U256::from(10_000u32);
    let up = mul_div(one, U256::from(10_000 + threshold_bps), bps)?;
    let down = mul_div(
        one,
        U256::from(10_000u32.saturating_sub(threshold_bps)),
        bps,
    )?;
    Ok(if ratio >= up {
        Trend::Up
    } else if ratio <= down {
        Trend::Down
    } else {
        Trend::Flat
    })
}

/// The sqrt-price limit for a swap tolerating `bps` of price impact: the price may move by
/// at most `bps`, so the sqrt price by about half that. Clamped inside the pool's bounds.
pub fn price_limit(now: U256, zero_for_one: bool, bps: u32) -> Result<U256, String> {
    let denom = U256::from(20_000u32);
    if zero_for_one {
        let limit = mul_div(now, U256::from(20_000 - bps), denom)?;
        Ok(limit.max(MIN_SQRT_RATIO + U256::from(1u8)))
    } else {
        let limit = mul_div(now, U256::from(20_000 + bps), denom)?;
        Ok(limit.min(MAX_SQRT_RATIO - U256::from(1u8)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::host::testing;
    use stratbox_sdk::math::{Q96, get_sqrt_ratio_at_tick};
    use stratbox_sdk::types::{Action, BlockInfo, EventOrigin, SwapEvent, TokenBalance};

    const POOL: &str = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8";
    const T0: &str = "0x0000000000000000000000000000000000000010";
    const T1: &str = "0x0000000000000000000000000000000000000020";

    fn config() -> String {
        format!(
            r#"{{"pool":"{POOL}","lookback_blocks":20,"threshold_bps":30,"amount_in":"100000000000000000","max_slippage_bps":100}}"#
        )
    }

    fn swap_at(block: u64, tick: i32) -> Event {
        Event::Swap(SwapEvent {
            origin: EventOrigin {
                block,
                log_index: 0,
                tx_hash: String::new(),
            },
            pool: POOL.into(),
            zero_for_one: true,
            amount_in: "1".into(),
            amount_out: "1".into(),
            sqrt_price_x96: get_sqrt_ratio_at_tick(tick).unwrap().to_string(),
            liquidity: "1".into(),
            tick,
        })
    }

    fn snapshot(block: u64, tick: i32) -> Snapshot {
        Snapshot {
            last_sync_block: block,
            timestamp: 0,
            pools: vec![PoolState {
                pool: POOL.into(),
                token0: T0.into(),
                token1: T1.into(),
                fee: 3000,
                tick_spacing: 60,
                sqrt_price_x96: get_sqrt_ratio_at_tick(tick).unwrap().to_string(),
                tick,
                liquidity: "100000000000000000000".into(),
            }],
            balances: vec![
                TokenBalance {
                    token: T0.into(),
                    amount: "1000000000000000000".into(),
                },
                TokenBalance {
                    token: T1.into(),
                    amount: "1000000000000000000".into(),
                },
            ],
        }
    }

    fn block(n: u64) -> Event {
        Event::NewBlock(BlockInfo {
            number: n,
            timestamp: 0,
            hash: String::new(),
        })
    }

    #[test]
    fn trend_in_integers() {
        let p = Q96;
        let up = get_sqrt_ratio_at_tick(31).unwrap(); // +0.31%
        let down = get_sqrt_ratio_at_tick(-31).unwrap();
        assert_eq!(trend(p, up, 30), Ok(Trend::Up));
        assert_eq!(trend(p, down, 30), Ok(Trend::Down));
        assert_eq!(
            trend(p, get_sqrt_ratio_at_tick(20).unwrap(), 30),
            Ok(Trend::Flat)
        );
        assert_eq!(trend(p, p, 30), Ok(Trend::Flat));
        assert!(trend(U256::ZERO, p, 30).is_err());
    }

    #[test]
    fn buys_token0_when_price_rises() {
        testing::set_history(vec![swap_at(81, 0), swap_at(90, 50)]);
        let mut m = Momentum::init(&config()).unwrap();
        let out = m.on_event(&block(100), &snapshot(100, 100)).unwrap();
        assert_eq!(out.len(), 1);
        let Action::Swap(s) = &out[0].action else {
            panic!("not a swap")
        };
        assert!(!s.zero_for_one);
        assert_eq!(s.amount_in, "100000000000000000");
        let limit: U256 = s.sqrt_price_limit_x96.as_deref().unwrap().parse().unwrap();
        assert!(limit > get_sqrt_ratio_at_tick(100).unwrap());
        // Expected: pays all of amount_in in token1, receives token0 per the swap step.
        assert_eq!(out[0].expected_amount1, "100000000000000000");
        let now = get_sqrt_ratio_at_tick(100).unwrap();
        let step = compute_swap_step(
            now,
            limit,
            10u128.pow(20),
            U256::from(10u64.pow(17)),
            true,
            3000,
        )
        .unwrap();
        assert_eq!(out[0].expected_amount0, step.amount_out.to_string());
        // Cooldown: the next blocks within the lookback do nothing.
        assert!(
            m.on_event(&block(101), &snapshot(101, 200))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn sells_token0_when_price_falls() {
        testing::set_history(vec![swap_at(85, 0)]);
        let mut m = Momentum::init(&config()).unwrap();
        let out = m.on_event(&block(100), &snapshot(100, -100)).unwrap();
        let Action::Swap(s) = &out[0].action else {
            panic!("not a swap")
        };
        assert!(s.zero_for_one);
        assert_eq!(out[0].expected_amount0, "100000000000000000");
    }

    #[test]
    fn quiet_without_signal_history_or_balance() {
        let mut m = Momentum::init(&config()).unwrap();
        testing::set_history(Vec::new());
        assert!(
            m.on_event(&block(100), &snapshot(100, 500))
                .unwrap()
                .is_empty()
        );
        testing::set_history(vec![swap_at(95, 0)]);
        assert!(
            m.on_event(&block(101), &snapshot(101, 10))
                .unwrap()
                .is_empty()
        );
        // Signal, but no balance of the input token.
        let mut poor = snapshot(102, 500);
        poor.balances.clear();
        assert!(m.on_event(&block(102), &poor).unwrap().is_empty());
        assert!(!testing::take_logs().is_empty());
        // History outside the lookback window is not served.
        testing::set_history(vec![swap_at(10, 0)]);
        assert!(
            m.on_event(&block(103), &snapshot(103, 500))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn deterministic() {
        let run = || {
            testing::set_history(vec![swap_at(85, 0), swap_at(130, -300)]);
            let mut m = Momentum::init(&config()).unwrap();
            [(100, 100), (101, 200), (125, -50), (140, -400), (160, 0)]
                .iter()
                .flat_map(|&(b, t)| m.on_event(&block(b), &snapshot(b, t)).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(!a.is_empty());
    }

    #[test]
    fn state_travels_and_stops_a_second_trade_of_the_same_move() {
        testing::set_history(vec![swap_at(95, 0)]);
        let mut old = Momentum::init(&config()).unwrap();
        assert_eq!(
            old.on_event(&block(100), &snapshot(100, 500))
                .unwrap()
                .len(),
            1
        );
        let state = old.save();

        // A fresh instance trades the same move again; a restored one does not.
        let mut fresh = Momentum::init(&config()).unwrap();
        assert_eq!(
            fresh
                .on_event(&block(101), &snapshot(101, 500))
                .unwrap()
                .len(),
            1
        );
        let mut restored = Momentum::init(&config()).unwrap();
        restored.restore(&state).unwrap();
        assert!(
            restored
                .on_event(&block(101), &snapshot(101, 500))
                .unwrap()
                .is_empty()
        );
        assert_eq!(restored.save(), state);
    }

    #[test]
    fn refuses_state_it_cannot_use() {
        let mut m = Momentum::init(&config()).unwrap();
        let before = m.save();
        assert!(m.restore(b"not json").is_err());
        let other = config().replace(POOL, "0x0000000000000000000000000000000000000099");
        let foreign = Momentum::init(&other).unwrap().save();
        assert!(m.restore(&foreign).unwrap_err().contains("is for pool"));
        assert_eq!(m.save(), before, "a refused restore changed the state");
    }

    fn outcome(state: FinalState, markout_bps: Option<i32>) -> Outcome {
        Outcome {
            task_id: "task-1".into(),
            event_id: "event-1".into(),
            index: 0,
            state,
            reason_code: "ok".into(),
            simulated_amount0: "1".into(),
            simulated_amount1: "1".into(),
            filled_amount0: "1".into(),
            filled_amount1: "1".into(),
            slippage_bps: 0,
            gas_used: 100_000,
            block: 100,
            markout: markout_bps.map(|bps| stratbox_sdk::types::Markout { blocks: 5, bps }),
        }
    }

    #[test]
    fn toxic_markouts_widen_the_threshold_in_memory_for_the_next_instance() {
        stratbox_sdk::memory::testing::clear();
        let mut m = Momentum::init(&config()).unwrap();
        m.on_outcome(&outcome(FinalState::Simulated, None)).unwrap();
        m.on_outcome(&outcome(FinalState::Rejected, None)).unwrap();
        assert_eq!(memory::get_u64("outcomes:simulated"), Some(1));
        assert_eq!(memory::get_u64("outcomes:rejected"), Some(1));
        assert_eq!(m.threshold_bps(), 30);
        // Three fills the price ran 50 bps against: toxic (beyond -20), 10 bps each.
        for _ in 0..3 {
            m.on_outcome(&outcome(FinalState::Simulated, Some(-50)))
                .unwrap();
        }
        // A mildly negative markout changes nothing.
        m.on_outcome(&outcome(FinalState::Simulated, Some(-5)))
            .unwrap();
        assert_eq!(m.threshold_bps(), 60);
        // A +0.5% move, a trade at 30 bps, is flat at 60.
        testing::set_history(vec![swap_at(81, 0), swap_at(90, 10)]);
        assert!(
            m.on_event(&block(100), &snapshot(100, 50))
                .unwrap()
                .is_empty()
        );
        // A new instance (the next version after a hot swap) reads the same memory.
        let mut next = Momentum::init(&config()).unwrap();
        assert_eq!(next.threshold_bps(), 60);
        next.on_outcome(&outcome(FinalState::Simulated, Some(3)))
            .unwrap();
        assert_eq!(next.threshold_bps(), 50);
        assert_eq!(memory::get_u64(WIDEN_KEY), Some(20));
    }

    #[test]
    fn refuses_bad_config() {
        for bad in [
            r#"{"pool":"0x1","lookback_blocks":0,"threshold_bps":30,"amount_in":"1","max_slippage_bps":100}"#,
            r#"{"pool":"0x1","lookback_blocks":5,"threshold_bps":0,"amount_in":"1","max_slippage_bps":100}"#,
            r#"{"pool":"0x1","lookback_blocks":5,"threshold_bps":30,"amount_in":"0","max_slippage_bps":100}"#,
            r#"{"pool":"0x1","lookback_blocks":5,"threshold_bps":30,"amount_in":"1e17","max_slippage_bps":100}"#,
            r#"{"pool":"0x1","lookback_blocks":5,"threshold_bps":30,"amount_in":"1","max_slippage_bps":10001}"#,
        ] {
            assert!(Momentum::init(bad).is_err(), "accepted {bad}");
        }
    }
}
