//! tally: the witness strategy of the hot-swap tests.
//!
//! Config (JSON): `{"pool": "0x...", "amount_in": "1000"}`.
//!
//! It counts every event it is given. On each swap in its pool it proposes a minimal
//! counter-swap of `amount_in` whose reason is `tally <count>`, so every such event leaves
//! a task in the engine saying which version handled it. The count is its state
//! (`save`/`restore`, world `stratbox:strategy/strategy@0.1.1`): after a hot swap the new
//! version goes on counting where the old one stopped, which a test can read off the
//! reasons.

use serde::Deserialize;
use stratbox_sdk::proposal::swap;
use stratbox_sdk::types::{Event, Proposal, Snapshot, same_address};
use stratbox_sdk::{Amount, Stateful, Strategy};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub pool: String,
    pub amount_in: Amount,
}

pub struct Tally {
    config: Config,
    count: u64,
}

impl Tally {
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl Strategy for Tally {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("bad tally config: {e}"))?;
        if config.amount_in.is_zero() {
            return Err("amount_in must be positive".to_owned());
        }
        Ok(Tally { config, count: 0 })
    }

    fn on_event(&mut self, event: &Event, _snapshot: &Snapshot) -> Result<Vec<Proposal>, String> {
        self.count += 1;
        let Event::Swap(s) = event else {
            return Ok(Vec::new());
        };
        if !same_address(&s.pool, &self.config.pool) {
            return Ok(Vec::new());
        }
        let (amount0, amount1) = if s.zero_for_one {
            (Amount::ZERO, self.config.amount_in)
        } else {
            (self.config.amount_in, Amount::ZERO)
        };
        let p = swap(&self.config.pool, !s.zero_for_one, self.config.amount_in)
            .expect(amount0, amount1)
            .max_slippage_bps(10_000)
            .reason(format!("tally {}", self.count))
            .build()?;
        Ok(vec![p])
    }
}

impl Stateful for Tally {
    fn save(&self) -> Vec<u8> {
        self.count.to_le_bytes().to_vec()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let bytes: [u8; 8] = state
            .try_into()
            .map_err(|_| format!("tally state is 8 bytes, got {}", state.len()))?;
        self.count = u64::from_le_bytes(bytes);
        Ok(())
    }
}

stratbox_sdk::export_stateful_strategy!(Tally);

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::types::{BlockInfo, EventOrigin, SwapEvent};

    const POOL: &str = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8";

    fn swap_event(zero_for_one: bool) -> Event {
        Event::Swap(SwapEvent {
            origin: EventOrigin {
                block: 1,
                log_index: 0,
                tx_hash: String::new(),
            },
            pool: POOL.into(),
            zero_for_one,
            amount_in: "1".into(),
            amount_out: "1".into(),
            sqrt_price_x96: "79228162514264337593543950336".into(),
            liquidity: "1".into(),
            tick: 0,
        })
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            last_sync_block: 1,
            timestamp: 0,
            pools: Vec::new(),
            balances: Vec::new(),
        }
    }

    #[test]
    fn counts_and_proposes_on_swaps_only() {
        let mut t = Tally::init(&format!(r#"{{"pool":"{POOL}","amount_in":"1000"}}"#)).unwrap();
        let block = Event::NewBlock(BlockInfo {
            number: 1,
            timestamp: 0,
            hash: String::new(),
        });
        assert!(t.on_event(&block, &snapshot()).unwrap().is_empty());
        let out = t.on_event(&swap_event(true), &snapshot()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, "tally 2");
        assert_eq!(t.count(), 2);
    }

    #[test]
    fn count_travels() {
        let config = format!(r#"{{"pool":"{POOL}","amount_in":"1000"}}"#);
        let mut old = Tally::init(&config).unwrap();
        for _ in 0..5 {
            old.on_event(&swap_event(false), &snapshot()).unwrap();
        }
        let mut new = Tally::init(&config).unwrap();
        new.restore(&old.save()).unwrap();
        let out = new.on_event(&swap_event(false), &snapshot()).unwrap();
        assert_eq!(out[0].reason, "tally 6");
        assert!(new.restore(b"short").is_err());
        assert_eq!(new.count(), 6);
    }
}
