//! Sync Sentinel: a proposal is only as good as the snapshot it was built on.
//!
//! Each proposal carries the watermark (`last_sync_block`) of the snapshot its strategy saw.
//! If the engine has moved on by more than `max_lag_blocks`, the strategy decided on prices
//! that are gone, and the proposal is refused. A watermark ahead of the engine's means the
//! strategy saw state the engine cannot simulate against yet; it is refused too unless
//! `max_lead_blocks` allows it.

use crate::config::SentinelConfig;
use crate::reason::{ReasonCode, Rejection};

/// The data-freshness gate. Exactly `max_lag_blocks` behind passes; one more is refused.
pub fn check(
    cfg: &SentinelConfig,
    engine_block: u64,
    proposal_block: u64,
) -> Result<(), Rejection> {
    if proposal_block <= engine_block {
        let lag = engine_block.saturating_sub(proposal_block);
        if lag > cfg.max_lag_blocks {
            return Err(Rejection::new(
                ReasonCode::StaleWatermark,
                format!(
                    "proposal watermark {proposal_block} is {lag} blocks behind the engine's {engine_block} (max {})",
                    cfg.max_lag_blocks
                ),
            ));
        }
    } else {
        let lead = proposal_block.saturating_sub(engine_block);
        if lead > cfg.max_lead_blocks {
            return Err(Rejection::new(
                ReasonCode::StaleWatermark,
                format!(
                    "proposal watermark {proposal_block} is {lead} blocks ahead of the engine's {engine_block} (max {})",
                    cfg.max_lead_blocks
                ),
            ));
        }
    }
    Ok(())
}

/// The same gate judged by time: data is stale when the engine has learned of no new block
/// for more than `max_age_ms`, however small the block lag. A node that stops producing or
/// serving blocks leaves every proposal at lag 0 against a head that no longer moves; only
/// the clock tells that the prices it is judged on are old. Exactly `max_age_ms` passes.
pub fn check_block_age(max_age_ms: u64, age_ms: u64) -> Result<(), Rejection> {
    if age_ms > max_age_ms {
        return Err(Rejection::new(
            ReasonCode::StaleWatermark,
            format!(
                "no new block for {age_ms} ms (max {max_age_ms} ms): the engine's data is stale"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lag: u64, lead: u64) -> SentinelConfig {
        SentinelConfig {
            max_lag_blocks: lag,
            max_lead_blocks: lead,
        }
    }

    #[test]
    fn lag_boundary() {
        let c = cfg(3, 0);
        assert!(check(&c, 100, 100).is_ok());
        assert!(check(&c, 100, 97).is_ok());
        let r = check(&c, 100, 96).err().map(|r| r.code);
        assert_eq!(r, Some(ReasonCode::StaleWatermark));
    }

    #[test]
    fn lead_boundary() {
        assert!(check(&cfg(3, 0), 100, 101).is_err());
        assert!(check(&cfg(3, 1), 100, 101).is_ok());
        assert!(check(&cfg(3, 1), 100, 102).is_err());
    }

    #[test]
    fn extremes_do_not_overflow() {
        let c = cfg(u64::MAX, 0);
        assert!(check(&c, u64::MAX, 0).is_ok());
        assert!(check(&cfg(0, 0), u64::MAX, 0).is_err());
        assert!(check(&cfg(0, u64::MAX), 0, u64::MAX).is_ok());
        // An unset watermark (0) against a live chain is stale.
        assert!(check(&cfg(3, 0), 1_000, 0).is_err());
    }

    #[test]
    fn block_age_boundary() {
        assert!(check_block_age(5_000, 0).is_ok());
        assert!(check_block_age(5_000, 5_000).is_ok());
        let r = check_block_age(5_000, 5_001).err().map(|r| r.code);
        assert_eq!(r, Some(ReasonCode::StaleWatermark));
        assert!(check_block_age(0, u64::MAX).is_err());
    }
}
