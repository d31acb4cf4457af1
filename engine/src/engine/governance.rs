//! The engine's side of the governance sentinel ([`crate::sentinel`]): halting markets for an
//! admin change seen on a contract they trade through, reloading the stored halts into the
//! gates, and an operator's clear.
//!
//! The store is what counts: the gates hold a copy ([`crate::gates::RiskBook`]), loaded at
//! start and again at each of the sentinel's passes, so a halt survives a restart and a
//! clear made through another engine on the same database applies here too.

use std::collections::HashMap;

use stratbox_proto::parse_address;
use tracing::{error, warn};

use super::{Engine, EngineError, clip, lock};
use crate::proposal::{Address, hex_address};
use crate::store::{Baseline, GovernanceHalt};

/// The stored halts as the gates hold them: by pool, with why.
pub(super) fn halts_by_pool(halts: &[GovernanceHalt]) -> HashMap<Address, String> {
    halts
        .iter()
        .filter_map(|h| {
            let pool = parse_address(&h.market).ok()?;
            Some((pool, why(h)))
        })
        .collect()
}

fn why(h: &GovernanceHalt) -> String {
    if h.tx_hash.is_empty() {
        format!("{} changed on {} at block {}", h.kind, h.contract, h.block)
    } else {
        format!(
            "{} on {} in tx {} (block {})",
            h.kind, h.contract, h.tx_hash, h.block
        )
    }
}

impl Engine {
    /// Every market halted by the governance sentinel, as stored.
    pub async fn governance_halts(&self) -> Result<Vec<GovernanceHalt>, EngineError> {
        Ok(self.inner.store.governance_halts().await?)
    }

    /// Reloads the stored halts into the gates; returns how many markets are halted.
    pub async fn sync_governance_halts(&self) -> Result<usize, EngineError> {
        let halts = self.inner.store.governance_halts().await?;
        let by_pool = halts_by_pool(&halts);
        let n = by_pool.len();
        lock(&self.inner.risk).set_market_halts(by_pool);
        self.inner
            .metrics
            .governance_halted_markets
            .set(i64::try_from(n).unwrap_or(i64::MAX));
        Ok(n)
    }

    /// Halts the markets in `halts` (one change seen, the markets that trade through its
    /// contract): stored and audited (see [`crate::store::Store::halt_governance`] for
    /// `audit_repeats` and `unless_rebaselined`), logged at error level and counted.
    ///
    /// For an event the gates refuse the markets before the write (fail safe: trading stops
    /// even if the database is down); for a changed reading only once the write says the
    /// baseline it was compared with still stands, so a reading raced by an operator's
    /// clear does not halt the market again. Returns the markets newly halted.
    pub async fn halt_for_governance(
        &self,
        halts: &[GovernanceHalt],
        audit_repeats: bool,
        unless_rebaselined: Option<&Baseline>,
    ) -> Result<Vec<String>, EngineError> {
        let in_memory = |markets: &mut dyn Iterator<Item = &GovernanceHalt>| {
            let mut book = lock(&self.inner.risk);
            for h in markets {
                if let Ok(pool) = parse_address(&h.market) {
                    book.halt_market(pool, why(h));
                }
            }
            book.market_halts()
        };
        if unless_rebaselined.is_none() {
            in_memory(&mut halts.iter());
        }
        let trace_id = crate::trace::fresh();
        let halted = self
            .inner
            .store
            .halt_governance(halts, audit_repeats, unless_rebaselined, &trace_id)
            .await?;
        let n = if unless_rebaselined.is_some() {
            in_memory(&mut halts.iter().filter(|h| halted.contains(&h.market)))
        } else {
            lock(&self.inner.risk).market_halts()
        };
        let m = &self.inner.metrics;
        m.governance_halted_markets
            .set(i64::try_from(n).unwrap_or(i64::MAX));
        for h in halts {
            let new = halted.contains(&h.market);
            if !new && !audit_repeats {
                continue;
            }
            m.governance_hits
                .get_or_create(&[("kind", crate::admin_change::kind_label(&h.kind))])
                .inc();
            error!(
                trace_id = %trace_id,
                market = %h.market,
                contract = %h.contract,
                kind = %h.kind,
                tx_hash = %h.tx_hash,
                block = h.block,
                detail = %h.detail,
                newly_halted = new,
                "governance change on a contract the market trades through: market halted until an operator clears it"
            );
            if new {
                self.inner.alerts.raise(crate::alert::Alert::market_halted(
                    &h.market,
                    "governance",
                    &why(h),
                ));
            }
        }
        Ok(halted)
    }

    /// An operator lifts `market`'s governance halt (`market`: its pool address). Stored
    /// and audited (actor: `operator`, with `reason`) before the gates let it trade; the
    /// market's contracts are re-baselined at the sentinel's next check. `None` when the
    /// market is not halted.
    pub async fn clear_governance_halt(
        &self,
        trace_id: &str,
        market: &str,
        reason: &str,
        operator: &str,
    ) -> Result<Option<GovernanceHalt>, EngineError> {
        let pool = parse_address(market.trim())
            .map_err(|e| EngineError::Invalid(format!("market {:?}: {e}", clip(market, 64))))?;
        if reason.trim().is_empty() {
            return Err(EngineError::Invalid(
                "clearing a governance halt needs a reason".into(),
            ));
        }
        if operator.trim().is_empty() {
            return Err(EngineError::Invalid("no operator".into()));
        }
        let cleared = self
            .inner
            .store
            .clear_governance_halt(
                &hex_address(&pool),
                &clip(operator, 128),
                &clip(reason, 512),
                trace_id,
            )
            .await?;
        if cleared.is_some() {
            let n = {
                let mut book = lock(&self.inner.risk);
                book.lift_market_halt(&pool);
                book.market_halts()
            };
            self.inner
                .metrics
                .governance_halted_markets
                .set(i64::try_from(n).unwrap_or(i64::MAX));
            warn!(trace_id, market = %hex_address(&pool), operator, reason, "governance halt cleared");
        }
        Ok(cleared)
    }
}
