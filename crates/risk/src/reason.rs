//! Why a proposal was refused, as a stable machine-readable code.
//!
//! The strings returned by [`ReasonCode::as_str`] go into `ProposalResult.reason_code`, the
//! audit log and metric labels, so they are part of the public contract: never rename one,
//! only add new ones.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The code a proposal is accepted with (the proto's `reason_code` for a pass).
pub const OK: &str = "ok";

/// Every reason a proposal can be refused for, before or after simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The operator's kill switch is engaged.
    KillSwitch,
    /// The proposal's watermark is too far behind (or ahead of) the engine's.
    StaleWatermark,
    /// Fewer fresh oracle sources than required for the market.
    OracleMissing,
    /// A source deviates from the median by more than allowed; the market is now halted.
    OracleDisagreement,
    /// The market was halted by an earlier oracle failure and has not recovered.
    MarketHalted,
    /// The strategy's permission level does not allow trading (L0).
    PermissionLevel,
    /// The trade is larger than the strategy's level allows.
    LimitNotional,
    /// The proposal accepts more slippage than allowed.
    LimitSlippage,
    /// Drawdown from peak equity would reach the limit.
    LimitDrawdown,
    /// Today's loss would reach the limit.
    LimitDailyLoss,
    /// Gross exposure over equity would exceed the limit.
    LimitLeverage,
    /// Cash over equity would fall below the reserve.
    LimitCashReserve,
    /// Exposure to a single asset would exceed its share of equity.
    LimitExposure,
    /// The simulated transaction reverted (used by the engine after simulation).
    SimReverted,
    /// The simulated output is below the proposal's minimum (engine, after simulation).
    SimMinOut,
    /// The simulated input is above the proposal's maximum (engine, after simulation).
    SimMaxIn,
    /// The proposal or the risk inputs are malformed.
    BadInput,
    /// The network's gas price is over the configured cap (a spike): the trade would pay
    /// more to execute than the operator allows. Added after the others, so indexes of the
    /// older codes are unchanged.
    GasPrice,
    /// The proposal names a pool the engine does not trade.
    UnknownPool,
    /// The proposal names a strategy (or a version of it) the registry does not know.
    UnknownStrategy,
    /// The trade could not be simulated (the chain's node did not answer in time): nothing
    /// is known about its outcome, so it is refused, never passed.
    SimUnavailable,
    /// The governance sentinel saw an admin change (fee, owner, pause, upgrade, code) on a
    /// contract the proposal's market trades through; the market is halted until an
    /// operator clears it.
    GovernanceHalt,
}

impl ReasonCode {
    /// Every code, in gate order then the engine's post-simulation codes. Metric exports
    /// iterate this so each code has a series even at zero.
    pub const ALL: [ReasonCode; 22] = [
        ReasonCode::KillSwitch,
        ReasonCode::StaleWatermark,
        ReasonCode::OracleMissing,
        ReasonCode::OracleDisagreement,
        ReasonCode::MarketHalted,
        ReasonCode::PermissionLevel,
        ReasonCode::LimitNotional,
        ReasonCode::LimitSlippage,
        ReasonCode::LimitDrawdown,
        ReasonCode::LimitDailyLoss,
        ReasonCode::LimitLeverage,
        ReasonCode::LimitCashReserve,
        ReasonCode::LimitExposure,
        ReasonCode::SimReverted,
        ReasonCode::SimMinOut,
        ReasonCode::SimMaxIn,
        ReasonCode::BadInput,
        ReasonCode::GasPrice,
        ReasonCode::UnknownPool,
        ReasonCode::UnknownStrategy,
        ReasonCode::SimUnavailable,
        ReasonCode::GovernanceHalt,
    ];

    /// Number of codes; sizes the metric counter array.
    pub const COUNT: usize = Self::ALL.len();

    /// The stable snake_case string.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonCode::KillSwitch => "kill_switch",
            ReasonCode::StaleWatermark => "stale_watermark",
            ReasonCode::OracleMissing => "oracle_missing",
            ReasonCode::OracleDisagreement => "oracle_disagreement",
            ReasonCode::MarketHalted => "market_halted",
            ReasonCode::PermissionLevel => "permission_level",
            ReasonCode::LimitNotional => "limit_notional",
            ReasonCode::LimitSlippage => "limit_slippage",
            ReasonCode::LimitDrawdown => "limit_drawdown",
            ReasonCode::LimitDailyLoss => "limit_daily_loss",
            ReasonCode::LimitLeverage => "limit_leverage",
            ReasonCode::LimitCashReserve => "limit_cash_reserve",
            ReasonCode::LimitExposure => "limit_exposure",
            ReasonCode::SimReverted => "sim_reverted",
            ReasonCode::SimMinOut => "sim_min_out",
            ReasonCode::SimMaxIn => "sim_max_in",
            ReasonCode::BadInput => "bad_input",
            ReasonCode::GasPrice => "gas_price",
            ReasonCode::UnknownPool => "unknown_pool",
            ReasonCode::UnknownStrategy => "unknown_strategy",
            ReasonCode::SimUnavailable => "sim_unavailable",
            ReasonCode::GovernanceHalt => "governance_halt",
        }
    }

    /// Position in [`ReasonCode::ALL`]; indexes the metric counters.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True for the account-and-strategy hard limits (the `limit_*` codes except
    /// `limit_notional`, which is a per-level trade size rather than a hard limit).
    pub const fn is_hard_limit(self) -> bool {
        matches!(
            self,
            ReasonCode::LimitSlippage
                | ReasonCode::LimitDrawdown
                | ReasonCode::LimitDailyLoss
                | ReasonCode::LimitLeverage
                | ReasonCode::LimitCashReserve
                | ReasonCode::LimitExposure
        )
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the known reason codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason code {0:?}")]
pub struct UnknownReasonCode(pub String);

impl FromStr for ReasonCode {
    type Err = UnknownReasonCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReasonCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownReasonCode(s.to_owned()))
    }
}

/// A refused proposal: the code for machines, the detail for humans.
///
/// The detail is built only on the refusal path, so the accept path never allocates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Rejection {
    /// The stable code; goes into `ProposalResult.reason_code`, the audit log and metric labels.
    pub code: ReasonCode,
    /// Human-readable explanation (values, limits); not stable, never match on it.
    pub detail: String,
}

impl Rejection {
    /// A rejection with the given code and detail.
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Rejection {
            code,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case_and_round_trip() {
        let expected = [
            "kill_switch",
            "stale_watermark",
            "oracle_missing",
            "oracle_disagreement",
            "market_halted",
            "permission_level",
            "limit_notional",
            "limit_slippage",
            "limit_drawdown",
            "limit_daily_loss",
            "limit_leverage",
            "limit_cash_reserve",
            "limit_exposure",
            "sim_reverted",
            "sim_min_out",
            "sim_max_in",
            "bad_input",
            "gas_price",
            "unknown_pool",
            "unknown_strategy",
            "sim_unavailable",
            "governance_halt",
        ];
        assert_eq!(ReasonCode::ALL.len(), expected.len());
        for (i, (code, s)) in ReasonCode::ALL.iter().zip(expected).enumerate() {
            assert_eq!(code.as_str(), s);
            assert_eq!(code.index(), i);
            assert_eq!(s.parse::<ReasonCode>(), Ok(*code));
            assert_eq!(serde_json::to_string(code).ok(), Some(format!("\"{s}\"")));
        }
        assert!("ok".parse::<ReasonCode>().is_err());
    }

    #[test]
    fn hard_limit_classification() {
        assert!(ReasonCode::LimitDrawdown.is_hard_limit());
        assert!(ReasonCode::LimitExposure.is_hard_limit());
        assert!(!ReasonCode::LimitNotional.is_hard_limit());
        assert!(!ReasonCode::KillSwitch.is_hard_limit());
    }

    #[test]
    fn rejection_displays_code_and_detail() {
        let r = Rejection::new(ReasonCode::LimitLeverage, "6x > 5x");
        assert_eq!(r.to_string(), "limit_leverage: 6x > 5x");
    }
}
