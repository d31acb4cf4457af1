//! What a proposal means once it has been checked, and its idempotency key.
//!
//! Everything that arrives over the wire is refused here if it is malformed (a float or
//! signed amount, a bad address, bps over 100%, a missing action, an absurd tick), so the
//! gates, the simulator and the ledger only ever see well-formed values. A refusal is a
//! per-proposal `bad_input`, never an RPC error.

use sha2::{Digest, Sha256};
use stratbox_proto::v1::{self, proposal::Action as WireAction};
use stratbox_proto::{U256, parse_address, parse_amount};

/// Uniswap V3's tick bounds; anything outside cannot be a position.
pub const MIN_TICK: i32 = -887_272;
/// Upper tick bound.
pub const MAX_TICK: i32 = 887_272;
/// Identifiers longer than this are refused: they only ever come from a broken or hostile
/// client and would bloat every log line and index.
pub const MAX_NAME_LEN: usize = 256;
/// The longest `reason` kept, in bytes: the host's own cap on a string a strategy returns
/// (`StrategyLimits::max_string_bytes`). Longer is refused, not truncated, as the host
/// refuses it: a proposal is stored whole or not at all.
pub const MAX_REASON_LEN: usize = 1024;
/// The longest account name that is not an address.
pub const MAX_ACCOUNT_LEN: usize = 128;

/// A 20-byte EVM address, parsed from the wire's checked form.
pub type Address = [u8; 20];

/// A checked trade action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TradeAction {
    /// Exact-input swap.
    Swap {
        /// The pool.
        pool: Address,
        /// True to pay token0 for token1.
        zero_for_one: bool,
        /// Raw units of the input token; nonzero.
        amount_in: U256,
        /// `None`: no limit beyond the pool's bounds.
        sqrt_price_limit_x96: Option<U256>,
    },
    /// Provide liquidity.
    AddLiquidity(Range),
    /// Withdraw liquidity.
    RemoveLiquidity(Range),
}

/// Liquidity on `[tick_lower, tick_upper)` of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Range {
    /// The pool.
    pub pool: Address,
    /// Lower tick (inclusive), within the tick bounds.
    pub tick_lower: i32,
    /// Upper tick (exclusive), above `tick_lower`.
    pub tick_upper: i32,
    /// Liquidity units; nonzero.
    pub liquidity: u128,
}

impl TradeAction {
    /// The pool acted on, whatever the kind.
    pub fn pool(&self) -> Address {
        match self {
            TradeAction::Swap { pool, .. } => *pool,
            TradeAction::AddLiquidity(r) | TradeAction::RemoveLiquidity(r) => r.pool,
        }
    }

    /// `swap`, `add_liquidity` or `remove_liquidity`: a stable label for metrics and limits.
    pub fn kind(&self) -> &'static str {
        match self {
            TradeAction::Swap { .. } => "swap",
            TradeAction::AddLiquidity(_) => "add_liquidity",
            TradeAction::RemoveLiquidity(_) => "remove_liquidity",
        }
    }
}

/// A proposal whose every field has been parsed strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProposal {
    /// The proposing strategy's name.
    pub strategy: String,
    /// The component version that proposed.
    pub strategy_version: String,
    /// The proposing instance.
    pub instance_id: String,
    /// The account traded for.
    pub account: String,
    /// The chain event that caused it.
    pub event_id: String,
    /// Position among the instance's answers to the event; part of the idempotency key.
    pub index: u32,
    /// The block the strategy saw; a proposal ahead of the engine's watermark is refused.
    pub last_sync_block: u64,
    /// What to do.
    pub action: TradeAction,
    /// Token0 magnitude the strategy expects (raw units); slippage is measured against it.
    pub expected_amount0: U256,
    /// As `expected_amount0`, for token1.
    pub expected_amount1: U256,
    /// Tolerated shortfall against the expected amounts, basis points (at most 10000).
    pub max_slippage_bps: u32,
}

/// Why a proposal is malformed; the message becomes the task's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct BadInput {
    /// The offending wire field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> BadInput {
    BadInput {
        field,
        problem: problem.into(),
    }
}

fn name(field: &'static str, s: &str, required: bool) -> Result<String, BadInput> {
    if required && s.is_empty() {
        return Err(bad(field, "is empty"));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(bad(field, format!("longer than {MAX_NAME_LEN} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(field, "has control characters"));
    }
    Ok(s.to_owned())
}

/// A strategy name as the registry admits it (1 to 64 of a-z 0-9 - _ . starting with a
/// letter or digit). Names become parts of ledger account names, so a separator in one
/// could make two books one.
pub fn check_strategy_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not 1 to 64 characters of a-z 0-9 - _ . starting with a letter or digit",
            s.chars().take(80).collect::<String>()
        ))
    }
}

/// An account: a 0x address (checksum checked, kept in lowercase so one account is one
/// book however it is written) or a name of 1 to 128 characters of A-Z a-z 0-9 - _ . :
/// (ledger account names are `strategy:<strategy>:<account>`; strategy names hold no `:`,
/// so the split is unambiguous).
fn account(s: &str) -> Result<String, BadInput> {
    if s.starts_with("0x") || s.starts_with("0X") {
        let a = parse_address(s).map_err(|e| bad("account", e.to_string()))?;
        return Ok(hex_address(&a));
    }
    let ok = !s.is_empty()
        && s.len() <= MAX_ACCOUNT_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(bad(
            "account",
            format!(
                "{:?} is neither a 0x address nor 1 to {MAX_ACCOUNT_LEN} characters of A-Z a-z 0-9 - _ . :",
                s.chars().take(80).collect::<String>()
            ),
        ))
    }
}

fn amount(field: &'static str, a: &Option<v1::Amount>) -> Result<U256, BadInput> {
    let a = a.as_ref().ok_or_else(|| bad(field, "missing"))?;
    parse_amount(&a.value).map_err(|e| bad(field, e.to_string()))
}

fn address(field: &'static str, a: &Option<v1::Address>) -> Result<Address, BadInput> {
    let a = a.as_ref().ok_or_else(|| bad(field, "missing"))?;
    parse_address(&a.value).map_err(|e| bad(field, e.to_string()))
}

fn range(r: &v1::RangeLiquidity) -> Result<Range, BadInput> {
    let pool = address("pool", &r.pool)?;
    if r.tick_lower < MIN_TICK || r.tick_upper > MAX_TICK {
        return Err(bad("tick", format!("outside [{MIN_TICK}, {MAX_TICK}]")));
    }
    if r.tick_lower >= r.tick_upper {
        return Err(bad("tick", "tick_lower must be below tick_upper"));
    }
    let liquidity = amount("liquidity", &r.liquidity)?;
    let liquidity: u128 = liquidity
        .try_into()
        .map_err(|_| bad("liquidity", "does not fit uint128"))?;
    if liquidity == 0 {
        return Err(bad("liquidity", "is zero"));
    }
    Ok(Range {
        pool,
        tick_lower: r.tick_lower,
        tick_upper: r.tick_upper,
        liquidity,
    })
}

/// Parses a wire proposal strictly.
pub fn check(p: &v1::Proposal) -> Result<CheckedProposal, BadInput> {
    let action = match p.action.as_ref().ok_or_else(|| bad("action", "missing"))? {
        WireAction::Swap(s) => {
            let pool = address("pool", &s.pool)?;
            let amount_in = amount("amount_in", &s.amount_in)?;
            if amount_in.is_zero() {
                return Err(bad("amount_in", "is zero"));
            }
            let sqrt_price_limit_x96 = match &s.sqrt_price_limit_x96 {
                None => None,
                Some(a) if a.value.is_empty() => None,
                Some(a) => Some(
                    parse_amount(&a.value)
                        .map_err(|e| bad("sqrt_price_limit_x96", e.to_string()))?,
                ),
            };
            if let Some(limit) = sqrt_price_limit_x96 {
                // sqrtPriceX96 is a uint160 in the pool; a larger limit can only be a mistake.
                if limit.bit_len() > 160 {
                    return Err(bad("sqrt_price_limit_x96", "does not fit uint160"));
                }
            }
            TradeAction::Swap {
                pool,
                zero_for_one: s.zero_for_one,
                amount_in,
                sqrt_price_limit_x96,
            }
        }
        WireAction::AddLiquidity(r) => TradeAction::AddLiquidity(range(r)?),
        WireAction::RemoveLiquidity(r) => TradeAction::RemoveLiquidity(range(r)?),
    };
    if p.max_slippage_bps > 10_000 {
        return Err(bad(
            "max_slippage_bps",
            format!("{} is more than 10000", p.max_slippage_bps),
        ));
    }
    check_strategy_name(&p.strategy).map_err(|e| bad("strategy", e))?;
    if p.reason.len() > MAX_REASON_LEN {
        return Err(bad(
            "reason",
            format!("{} bytes is more than {MAX_REASON_LEN}", p.reason.len()),
        ));
    }
    if p.reason.contains('\0') {
        return Err(bad("reason", "has a NUL character"));
    }
    Ok(CheckedProposal {
        strategy: p.strategy.clone(),
        strategy_version: name("strategy_version", &p.strategy_version, false)?,
        instance_id: name("instance_id", &p.instance_id, false)?,
        account: account(&p.account)?,
        event_id: name("event_id", &p.event_id, false)?,
        index: p.index,
        last_sync_block: p.last_sync_block,
        action,
        expected_amount0: amount("expected_amount0", &p.expected_amount0)?,
        expected_amount1: amount("expected_amount1", &p.expected_amount1)?,
        max_slippage_bps: p.max_slippage_bps,
    })
}

/// Feeds one length-prefixed field, so no two different field lists hash the same bytes.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// The idempotency key: sha256 of the proposal's identity (strategy, instance, account,
/// the event it answers and its index among that instance's answers), lowercase hex.
///
/// Identity, not content: when an event is re-delivered after a host crash, the restarted
/// instance no longer has the state its predecessor had and may answer the same event
/// differently. The engine must treat that answer as the same proposal and return the first
/// task, or a crash would let one event trade twice (`tests/pipeline_e2e.rs` shows it).
/// Also left out: the strategy version (a hot-swapped version replaying the same event must
/// not trade twice), the watermark and the free-text reason.
pub fn idempotency_key(p: &CheckedProposal) -> String {
    let mut h = Sha256::new();
    field(&mut h, b"stratbox.proposal.v2");
    field(&mut h, p.strategy.as_bytes());
    field(&mut h, p.instance_id.as_bytes());
    field(&mut h, p.account.as_bytes());
    field(&mut h, p.event_id.as_bytes());
    field(&mut h, &p.index.to_be_bytes());
    hex::encode(h.finalize())
}

/// The key of a malformed proposal: over the raw encoded message, in a separate domain, so
/// resubmitting the same garbage is still a duplicate and never collides with a real key.
pub fn raw_idempotency_key(p: &v1::Proposal) -> String {
    let mut h = Sha256::new();
    field(&mut h, b"stratbox.proposal.raw.v1");
    let mut bare = p.clone();
    // The same fields as the canonical key leave out.
    bare.strategy_version.clear();
    bare.last_sync_block = 0;
    bare.reason.clear();
    field(&mut h, &prost::Message::encode_to_vec(&bare));
    hex::encode(h.finalize())
}

/// Lowercase 0x form, used for pools, assets and ledger account names.
pub fn hex_address(a: &Address) -> String {
    format!("0x{}", hex::encode(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swap() -> v1::Proposal {
        v1::Proposal {
            strategy: "s".into(),
            strategy_version: "1".into(),
            instance_id: "i".into(),
            account: "a".into(),
            event_id: "e".into(),
            index: 0,
            last_sync_block: 5,
            action: Some(WireAction::Swap(v1::SwapAction {
                pool: Some(v1::Address {
                    value: format!("0x{}", "ab".repeat(20)),
                }),
                zero_for_one: true,
                amount_in: Some(v1::Amount {
                    value: "1000".into(),
                }),
                sqrt_price_limit_x96: None,
            })),
            expected_amount0: Some(v1::Amount {
                value: "1000".into(),
            }),
            expected_amount1: Some(v1::Amount {
                value: "990".into(),
            }),
            max_slippage_bps: 50,
            reason: "r".into(),
        }
    }

    #[test]
    fn refuses_malformed_fields() {
        let mut cases: Vec<v1::Proposal> = Vec::new();
        let mut p = swap();
        p.action = None;
        cases.push(p);
        let mut p = swap();
        p.max_slippage_bps = 10_001;
        cases.push(p);
        let mut p = swap();
        p.expected_amount1 = Some(v1::Amount {
            value: "1.5".into(),
        });
        cases.push(p);
        let mut p = swap();
        p.expected_amount0 = Some(v1::Amount { value: "-1".into() });
        cases.push(p);
        let mut p = swap();
        if let Some(WireAction::Swap(s)) = &mut p.action {
            s.pool = Some(v1::Address {
                value: "0x1234".into(),
            });
        }
        cases.push(p);
        let mut p = swap();
        p.strategy.clear();
        cases.push(p);
        let mut p = swap();
        p.action = Some(WireAction::AddLiquidity(v1::RangeLiquidity {
            pool: Some(v1::Address {
                value: format!("0x{}", "ab".repeat(20)),
            }),
            tick_lower: 10,
            tick_upper: 10,
            liquidity: Some(v1::Amount { value: "1".into() }),
        }));
        cases.push(p);
        for (i, p) in cases.iter().enumerate() {
            assert!(check(p).is_err(), "case {i} accepted");
        }
        assert!(check(&swap()).is_ok());
    }

    #[test]
    fn key_is_the_proposals_identity_not_its_content() {
        let base = check(&swap()).unwrap();
        let mut p = swap();
        p.strategy_version = "2".into();
        p.last_sync_block = 99;
        p.reason = "other".into();
        assert_eq!(idempotency_key(&check(&p).unwrap()), idempotency_key(&base));
        let mut p = swap();
        p.index = 1;
        assert_ne!(idempotency_key(&check(&p).unwrap()), idempotency_key(&base));
        let mut p = swap();
        p.event_id = "another-event".into();
        assert_ne!(idempotency_key(&check(&p).unwrap()), idempotency_key(&base));
        let mut p = swap();
        p.instance_id = "another-instance".into();
        assert_ne!(idempotency_key(&check(&p).unwrap()), idempotency_key(&base));
        // A restarted instance answering the same event differently is the same proposal.
        let mut p = swap();
        p.max_slippage_bps = 51;
        assert_eq!(idempotency_key(&check(&p).unwrap()), idempotency_key(&base));
        // Address case does not make a different proposal.
        let mut p = swap();
        if let Some(WireAction::Swap(s)) = &mut p.action {
            s.pool = Some(v1::Address {
                value: format!("0x{}", "AB".repeat(20)),
            });
        }
        assert_eq!(idempotency_key(&check(&p).unwrap()), idempotency_key(&base));
    }
}
