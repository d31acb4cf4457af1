//! clamm-maker: holds one concentrated-liquidity position around the current price and
//! moves it when the price walks away.
//!
//! Config (JSON):
//! `{"pool": "0x...", "half_width_ticks": 600, "margin_ticks": 120,
//!   "liquidity": "1000000000000000000", "max_slippage_bps": 50}`
//!
//! On each swap in its pool, and on each new block, it reads the pool from the snapshot:
//! - no position yet: propose adding `liquidity` on a range centred on the current tick,
//!   aligned to the pool's tick spacing;
//! - price more than `margin_ticks` outside the range: propose removing the old range and
//!   adding a new one centred on the current tick.
//!
//! Expected amounts come from the SDK's exact math: what the pool charges for the mint
//! (rounded up) and what `get_amounts_for_liquidity` says the burn returns (rounded down).
//!
//! The only state is the range it believes it holds, so the same events give the same
//! proposals. The host runs many instances: the hot path allocates only when proposing.

use serde::Deserialize;
use stratbox_sdk::math::liquidity_amounts::{amounts_for_mint, get_amounts_for_liquidity};
use stratbox_sdk::math::{MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick};
use stratbox_sdk::proposal::{add_liquidity, remove_liquidity};
use stratbox_sdk::types::{Event, PoolState, Proposal, Snapshot, same_address};
use stratbox_sdk::{Amount, Strategy, U256};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub pool: String,
    /// Half the range width, in ticks; rounded up to the pool's tick spacing.
    pub half_width_ticks: i32,
    /// How far past the range edge the price may go before the position is moved.
    pub margin_ticks: i32,
    /// Liquidity units to provide (the pool's `uint128`).
    pub liquidity: Amount,
    pub max_slippage_bps: u32,
}

/// A tick range `[lower, upper)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub lower: i32,
    pub upper: i32,
}

pub struct ClammMaker {
    config: Config,
    liquidity: u128,
    position: Option<Range>,
}

impl ClammMaker {
    /// The range the maker believes it holds (it assumes its proposals are executed).
    pub fn position(&self) -> Option<Range> {
        self.position
    }
}

impl Strategy for ClammMaker {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("bad clamm-maker config: {e}"))?;
        if config.half_width_ticks <= 0 || config.half_width_ticks > MAX_TICK {
            return Err(format!(
                "half_width_ticks must be in 1..={MAX_TICK}, got {}",
                config.half_width_ticks
            ));
        }
        if config.margin_ticks < 0 {
            return Err(format!(
                "margin_ticks must not be negative, got {}",
                config.margin_ticks
            ));
        }
        if config.max_slippage_bps > 10_000 {
            return Err(format!(
                "max_slippage_bps must be <= 10000, got {}",
                config.max_slippage_bps
            ));
        }
        let liquidity = u128::try_from(config.liquidity.into_u256())
            .map_err(|_| "liquidity must fit in uint128".to_owned())?;
        if liquidity == 0 {
            return Err("liquidity must be positive".to_owned());
        }
        Ok(ClammMaker {
            config,
            liquidity,
            position: None,
        })
    }

    fn on_event(&mut self, event: &Event, snapshot: &Snapshot) -> Result<Vec<Proposal>, String> {
        let relevant = match event {
            Event::NewBlock(_) => true,
            Event::Swap(s) => same_address(&s.pool, &self.config.pool),
            _ => false,
        };
        if !relevant {
            return Ok(Vec::new());
        }
        let Some(pool) = snapshot.pool(&self.config.pool) else {
            return Ok(Vec::new());
        };
        match self.position {
            None => {
                let range =
                    centred_range(pool.tick, pool.tick_spacing, self.config.half_width_ticks)?;
                let add = self.add(pool, range)?;
                self.position = Some(range);
                Ok(vec![add])
            }
            Some(held) if outside(pool.tick, held, self.config.margin_ticks) => {
                let range =
                    centred_range(pool.tick, pool.tick_spacing, self.config.half_width_ticks)?;
                let remove = self.remove(pool, held)?;
                let add = self.add(pool, range)?;
                self.position = Some(range);
                Ok(vec![remove, add])
            }
            Some(_) => Ok(Vec::new()),
        }
    }
}

stratbox_sdk::export_strategy!(ClammMaker);

impl ClammMaker {
    fn add(&self, pool: &PoolState, range: Range) -> Result<Proposal, String> {
        let (a, b) = range_prices(range)?;
        let (amount0, amount1) =
            amounts_for_mint(pool.sqrt_price()?.into_u256(), a, b, self.liquidity)?;
        Ok(add_liquidity(
            &self.config.pool,
            range.lower,
            range.upper,
            self.config.liquidity,
        )
        .expect(amount0.into(), amount1.into())
        .max_slippage_bps(self.config.max_slippage_bps)
        .reason(format!("centre liquidity on tick {}", pool.tick))
        .build()?)
    }

    fn remove(&self, pool: &PoolState, range: Range) -> Result<Proposal, String> {
        let (a, b) = range_prices(range)?;
        let (amount0, amount1) =
            get_amounts_for_liquidity(pool.sqrt_price()?.into_u256(), a, b, self.liquidity)?;
        Ok(remove_liquidity(
            &self.config.pool,
            range.lower,
            range.upper,
            self.config.liquidity,
        )
        .expect(amount0.into(), amount1.into())
        .max_slippage_bps(self.config.max_slippage_bps)
        .reason(format!(
            "tick {} left [{}, {}) by more than {}",
            pool.tick, range.lower, range.upper, self.config.margin_ticks
        ))
        .build()?)
    }
}

fn range_prices(range: Range) -> Result<(U256, U256), String> {
    Ok((
        get_sqrt_ratio_at_tick(range.lower)?,
        get_sqrt_ratio_at_tick(range.upper)?,
    ))
}

/// True once `tick` is more than `margin` ticks below the range or at/above its upper edge
/// by more than `margin` (the range is half-open, so `upper` itself is already outside).
pub fn outside(tick: i32, range: Range, margin: i32) -> bool {
    let tick = i64::from(tick);
    let margin = i64::from(margin);
    tick < i64::from(range.lower) - margin || tick >= i64::from(range.upper) + margin
}

/// A range of about `2 * half_width` ticks centred on `tick`, on tick-spacing multiples,
/// clamped to the ticks the pool can use. Computed in `i64`: tick and spacing come from the
/// host's snapshot, and no value of them may make this overflow.
pub fn centred_range(tick: i32, spacing: i32, half_width: i32) -> Result<Range, String> {
    if spacing <= 0 {
        return Err(format!("pool tick spacing {spacing} is not positive"));
    }
    let s = i64::from(spacing);
    let centre = i64::from(tick.clamp(MIN_TICK, MAX_TICK)).div_euclid(s) * s;
    let half = ((i64::from(half_width.max(1)) + s - 1) / s) * s;
    // `TickMath.MIN_TICK / spacing * spacing`: Solidity divides toward zero.
    let min_usable = i64::from(MIN_TICK) / s * s;
    let max_usable = i64::from(MAX_TICK) / s * s;
    let lower = (centre - half).max(min_usable);
    let upper = (centre + half).min(max_usable);
    if lower >= upper {
        return Err(format!(
            "no usable range around tick {tick} with spacing {spacing}"
        ));
    }
    // Both within [MIN_TICK, MAX_TICK] now, so they fit an i32.
    let lower = i32::try_from(lower).map_err(|_| "range bound out of i32".to_owned())?;
    let upper = i32::try_from(upper).map_err(|_| "range bound out of i32".to_owned())?;
    Ok(Range { lower, upper })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::types::{Action, BlockInfo, EventOrigin, SwapEvent};

    const POOL: &str = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8";

    fn config() -> String {
        format!(
            r#"{{"pool":"{POOL}","half_width_ticks":600,"margin_ticks":120,"liquidity":"1000000000000000000","max_slippage_bps":50}}"#
        )
    }

    fn snapshot(tick: i32) -> Snapshot {
        Snapshot {
            last_sync_block: 10,
            timestamp: 1_700_000_000,
            pools: vec![PoolState {
                pool: POOL.to_uppercase().replace("0X", "0x"),
                token0: "0x0000000000000000000000000000000000000010".into(),
                token1: "0x0000000000000000000000000000000000000020".into(),
                fee: 3000,
                tick_spacing: 60,
                sqrt_price_x96: get_sqrt_ratio_at_tick(tick).unwrap().to_string(),
                tick,
                liquidity: "5000000000000000000".into(),
            }],
            balances: Vec::new(),
        }
    }

    fn swap(tick: i32) -> Event {
        Event::Swap(SwapEvent {
            origin: EventOrigin {
                block: 10,
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

    fn ranges(proposals: &[Proposal]) -> Vec<(&'static str, i32, i32)> {
        proposals
            .iter()
            .map(|p| match &p.action {
                Action::AddLiquidity(r) => ("add", r.tick_lower, r.tick_upper),
                Action::RemoveLiquidity(r) => ("remove", r.tick_lower, r.tick_upper),
                Action::Swap(_) => ("swap", 0, 0),
            })
            .collect()
    }

    #[test]
    fn ranges_are_aligned_and_centred() {
        assert_eq!(
            centred_range(0, 60, 600),
            Ok(Range {
                lower: -600,
                upper: 600
            })
        );
        assert_eq!(
            centred_range(-1, 60, 600),
            Ok(Range {
                lower: -660,
                upper: 540
            })
        );
        assert_eq!(
            centred_range(125, 60, 100),
            Ok(Range {
                lower: 0,
                upper: 240
            })
        );
        assert_eq!(centred_range(MIN_TICK, 60, 600).unwrap().lower, -887_220);
        assert_eq!(centred_range(MAX_TICK - 1, 60, 600).unwrap().upper, 887_220);
        assert!(centred_range(0, 0, 600).is_err());
        // Hostile snapshot values: no overflow, just a refusal or a clamped range.
        assert!(centred_range(i32::MIN, 7, 600).is_ok());
        assert!(centred_range(i32::MAX, 1, i32::MAX).is_ok());
        assert!(centred_range(0, i32::MAX, 600).is_err());
    }

    #[test]
    fn opens_then_holds_then_moves() {
        let mut m = ClammMaker::init(&config()).unwrap();
        let first = m.on_event(&swap(10), &snapshot(10)).unwrap();
        assert_eq!(ranges(&first), vec![("add", -600, 600)]);
        // In range (and within the margin past the edge): nothing to do.
        assert!(m.on_event(&swap(650), &snapshot(650)).unwrap().is_empty());
        assert!(m.on_event(&swap(-700), &snapshot(-700)).unwrap().is_empty());
        // Past the margin: move.
        let moved = m.on_event(&swap(800), &snapshot(800)).unwrap();
        assert_eq!(
            ranges(&moved),
            vec![("remove", -600, 600), ("add", 180, 1380)]
        );
        assert_eq!(
            m.position(),
            Some(Range {
                lower: 180,
                upper: 1380
            })
        );
    }

    #[test]
    fn expected_amounts_follow_the_pool_math() {
        let mut m = ClammMaker::init(&config()).unwrap();
        let p = &m.on_event(&swap(0), &snapshot(0)).unwrap()[0];
        let (a0, a1) = amounts_for_mint(
            get_sqrt_ratio_at_tick(0).unwrap(),
            get_sqrt_ratio_at_tick(-600).unwrap(),
            get_sqrt_ratio_at_tick(600).unwrap(),
            10u128.pow(18),
        )
        .unwrap();
        assert_eq!(p.expected_amount0, a0.to_string());
        assert_eq!(p.expected_amount1, a1.to_string());
        assert_eq!(p.max_slippage_bps, 50);
        // Centred at tick 0, both sides are non-zero and about 3% of L.
        assert!(a0 > U256::from(29u64 * 10u64.pow(15)) && a0 < U256::from(31u64 * 10u64.pow(15)));
        // Price above the old range: the burn returns only token1.
        let moved = m.on_event(&swap(900), &snapshot(900)).unwrap();
        assert_eq!(moved[0].expected_amount0, "0");
        assert_ne!(moved[0].expected_amount1, "0");
    }

    #[test]
    fn ignores_other_pools_and_missing_state() {
        let mut m = ClammMaker::init(&config()).unwrap();
        let mut other = swap(0);
        if let Event::Swap(s) = &mut other {
            s.pool = "0x0000000000000000000000000000000000000bad".into();
        }
        assert!(m.on_event(&other, &snapshot(0)).unwrap().is_empty());
        let empty = Snapshot {
            pools: Vec::new(),
            ..snapshot(0)
        };
        let block = Event::NewBlock(BlockInfo {
            number: 11,
            timestamp: 0,
            hash: String::new(),
        });
        assert!(m.on_event(&block, &empty).unwrap().is_empty());
        assert_eq!(
            ranges(&m.on_event(&block, &snapshot(0)).unwrap()),
            vec![("add", -600, 600)]
        );
    }

    #[test]
    fn deterministic() {
        let run = || {
            let mut m = ClammMaker::init(&config()).unwrap();
            [0, 300, 900, 900, -2000, 5, 5000]
                .iter()
                .flat_map(|&t| m.on_event(&swap(t), &snapshot(t)).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert_eq!(a.len(), 9);
    }

    #[test]
    fn refuses_bad_config() {
        for bad in [
            r#"{"pool":"0x1","half_width_ticks":0,"margin_ticks":1,"liquidity":"1","max_slippage_bps":1}"#,
            r#"{"pool":"0x1","half_width_ticks":10,"margin_ticks":-1,"liquidity":"1","max_slippage_bps":1}"#,
            r#"{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"0","max_slippage_bps":1}"#,
            r#"{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"1.5","max_slippage_bps":1}"#,
            r#"{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"340282366920938463463374607431768211456","max_slippage_bps":1}"#,
            r#"{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":"1","max_slippage_bps":10001}"#,
            r#"{"pool":"0x1","half_width_ticks":10,"margin_ticks":1,"liquidity":1,"max_slippage_bps":1}"#,
        ] {
            assert!(ClammMaker::init(bad).is_err(), "accepted {bad}");
        }
    }
}
