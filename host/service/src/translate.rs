//! Crossings between the three vocabularies a trade passes through: the bus's
//! `ChainEvent` (proto), the strategy world's `Event` (WIT), and the engine's `Proposal`
//! (proto).
//!
//! Amounts are re-parsed strictly at each crossing and re-printed in canonical form, so a
//! strategy never sees a string the engine would read differently.

use stratbox_host::wit::{BlockInfo, Event, EventOrigin, LiquidityEvent, OraclePrice, SwapEvent};
use stratbox_host::{Action, ValidatedProposal};
use stratbox_proto::v1::{self, chain_event::Kind};
use stratbox_proto::{parse_address, parse_amount};

/// Why a bus event could not be given to strategies.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    /// A field the event's kind requires is absent.
    #[error("event {event_id}: field {field} is missing")]
    Missing {
        /// The chain event's id.
        event_id: String,
        /// The absent field.
        field: &'static str,
    },
    /// A field is present but not valid (a bad address or amount, a value out of range).
    #[error("event {event_id}: field {field}: {reason}")]
    Invalid {
        /// The chain event's id.
        event_id: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a bus event means to the host.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// Deliver to strategies.
    Event(Event),
    /// Blocks after `common_ancestor` were replaced: forget what was derived from them.
    Reorg {
        /// The last block still canonical.
        common_ancestor: u64,
    },
}

struct Fields<'a> {
    event_id: &'a str,
}

impl Fields<'_> {
    fn amount(
        &self,
        field: &'static str,
        value: &Option<v1::Amount>,
    ) -> Result<String, TranslateError> {
        let value = value.as_ref().ok_or_else(|| TranslateError::Missing {
            event_id: self.event_id.to_owned(),
            field,
        })?;
        parse_amount(&value.value)
            .map(|v| v.to_string())
            .map_err(|e| self.invalid(field, e.to_string()))
    }

    fn address(
        &self,
        field: &'static str,
        value: &Option<v1::Address>,
    ) -> Result<String, TranslateError> {
        let value = value.as_ref().ok_or_else(|| TranslateError::Missing {
            event_id: self.event_id.to_owned(),
            field,
        })?;
        parse_address(&value.value)
            .map(|bytes| format!("0x{}", hex::encode(bytes)))
            .map_err(|e| self.invalid(field, e.to_string()))
    }

    fn origin(&self, value: &Option<v1::EventOrigin>) -> Result<EventOrigin, TranslateError> {
        let o = value.as_ref().ok_or_else(|| TranslateError::Missing {
            event_id: self.event_id.to_owned(),
            field: "origin",
        })?;
        Ok(EventOrigin {
            block: o.block,
            log_index: o.log_index,
            tx_hash: o.tx_hash.clone(),
        })
    }

    fn int24(&self, field: &'static str, tick: i32) -> Result<i32, TranslateError> {
        if (stratbox_host::proposal::MIN_TICK..=stratbox_host::proposal::MAX_TICK).contains(&tick) {
            Ok(tick)
        } else {
            Err(self.invalid(field, format!("tick {tick} out of range")))
        }
    }

    fn invalid(&self, field: &'static str, reason: String) -> TranslateError {
        TranslateError::Invalid {
            event_id: self.event_id.to_owned(),
            field,
            reason,
        }
    }

    fn liquidity(&self, l: &v1::LiquidityEvent) -> Result<LiquidityEvent, TranslateError> {
        Ok(LiquidityEvent {
            origin: self.origin(&l.origin)?,
            pool: self.address("pool", &l.pool)?,
            owner: self.address("owner", &l.owner)?,
            tick_lower: self.int24("tick_lower", l.tick_lower)?,
            tick_upper: self.int24("tick_upper", l.tick_upper)?,
            liquidity: self.amount("liquidity", &l.liquidity)?,
            amount0: self.amount("amount0", &l.amount0)?,
            amount1: self.amount("amount1", &l.amount1)?,
        })
    }
}

/// The trace id of everything done for `event`: the id it was published with, exactly,
/// so the host's, the engine's and the signer's log lines and the task rows all carry the
/// id the event was born with.
///
/// Only an event published without a usable id (by something other than
/// `stratbox_bus::publish_event`, which stamps one) gets a W3C id derived from its event id:
/// derived rather than random so that every re-delivery of it is logged under one id, and
/// by the rule the engine applies, so the engine keeps it instead of replacing it.
pub fn trace_id(event: &v1::ChainEvent) -> String {
    let given = event.trace.as_ref().map_or("", |t| t.trace_id.as_str());
    if stratbox_proto::trace::is_usable(given) {
        return given.to_owned();
    }
    let derived = stratbox_proto::trace::derive(&event.event_id);
    if !given.is_empty() {
        tracing::warn!(
            given = %given.escape_debug().take(64).collect::<String>(),
            trace_id = %derived,
            "unusable trace id of an event replaced by one derived from its event id"
        );
    }
    derived
}

/// Turns a bus event into what strategies are given.
pub fn incoming(event: &v1::ChainEvent) -> Result<Incoming, TranslateError> {
    let f = Fields {
        event_id: &event.event_id,
    };
    let kind = event.kind.as_ref().ok_or_else(|| TranslateError::Missing {
        event_id: event.event_id.clone(),
        field: "kind",
    })?;
    let wit = match kind {
        Kind::NewBlock(b) => Event::NewBlock(BlockInfo {
            number: b.number,
            timestamp: b.timestamp,
            hash: b.hash.clone(),
        }),
        Kind::Swap(s) => Event::Swap(SwapEvent {
            origin: f.origin(&s.origin)?,
            pool: f.address("pool", &s.pool)?,
            zero_for_one: s.zero_for_one,
            amount_in: f.amount("amount_in", &s.amount_in)?,
            amount_out: f.amount("amount_out", &s.amount_out)?,
            sqrt_price_x96: f.amount("sqrt_price_x96", &s.sqrt_price_x96)?,
            liquidity: f.amount("liquidity", &s.liquidity)?,
            tick: f.int24("tick", s.tick)?,
        }),
        Kind::Mint(l) => Event::Mint(f.liquidity(l)?),
        Kind::Burn(l) => Event::Burn(f.liquidity(l)?),
        Kind::OraclePrice(o) => Event::OraclePrice(OraclePrice {
            origin: f.origin(&o.origin)?,
            source: o.source.clone(),
            base: f.address("base", &o.base)?,
            quote: f.address("quote", &o.quote)?,
            price_e18: f.amount("price_e18", &o.price_e18)?,
        }),
        Kind::Reorg(r) => {
            return Ok(Incoming::Reorg {
                common_ancestor: r.common_ancestor,
            });
        }
    };
    Ok(Incoming::Event(wit))
}

/// Who proposed, for the engine: the envelope the host adds around a strategy's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Strategy name.
    pub strategy: &'a str,
    /// Component version.
    pub version: &'a str,
    /// The proposing instance.
    pub instance_id: &'a str,
    /// The account the proposal trades for.
    pub account: &'a str,
    /// The chain event that caused it, for tracing and idempotence.
    pub event_id: &'a str,
    /// The block the strategy's snapshot was at; the engine refuses a proposal ahead of its
    /// own watermark.
    pub last_sync_block: u64,
}

/// A validated proposal in the engine's terms; `index` is its place among the proposals
/// this instance made for this event, which together with the envelope makes it unique.
pub fn proposal(envelope: &Envelope<'_>, index: u32, p: &ValidatedProposal) -> v1::Proposal {
    let amount = |v: &stratbox_host::U256| {
        Some(v1::Amount {
            value: v.to_string(),
        })
    };
    let address = |a: &stratbox_host::Address| {
        Some(v1::Address {
            value: a.to_string(),
        })
    };
    let range = |r: &stratbox_host::proposal::RangeLiquidity| v1::RangeLiquidity {
        pool: address(&r.pool),
        tick_lower: r.tick_lower,
        tick_upper: r.tick_upper,
        liquidity: amount(&r.liquidity),
    };
    let action = match &p.action {
        Action::Swap {
            pool,
            zero_for_one,
            amount_in,
            sqrt_price_limit_x96,
        } => v1::proposal::Action::Swap(v1::SwapAction {
            pool: address(pool),
            zero_for_one: *zero_for_one,
            amount_in: amount(amount_in),
            sqrt_price_limit_x96: sqrt_price_limit_x96.as_ref().and_then(amount),
        }),
        Action::AddLiquidity(r) => v1::proposal::Action::AddLiquidity(range(r)),
        Action::RemoveLiquidity(r) => v1::proposal::Action::RemoveLiquidity(range(r)),
    };
    v1::Proposal {
        strategy: envelope.strategy.to_owned(),
        strategy_version: envelope.version.to_owned(),
        instance_id: envelope.instance_id.to_owned(),
        account: envelope.account.to_owned(),
        event_id: envelope.event_id.to_owned(),
        index,
        last_sync_block: envelope.last_sync_block,
        action: Some(action),
        expected_amount0: amount(&p.expected_amount0),
        expected_amount1: amount(&p.expected_amount1),
        max_slippage_bps: u32::from(p.max_slippage_bps),
        reason: p.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_trace_id_is_the_one_used() {
        let mut e = swap_event("1000");
        e.trace = Some(v1::TraceContext {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: String::new(),
        });
        assert_eq!(trace_id(&e), "0af7651916cd43dd8448eb211c80319c");
        // Without one (or with one no service takes), the id is derived from the event
        // id: the same on every re-delivery, and in the W3C form.
        for given in [None, Some(""), Some("forged\nline")] {
            e.trace = given.map(|t| v1::TraceContext {
                trace_id: t.into(),
                span_id: String::new(),
            });
            let id = trace_id(&e);
            assert_eq!(id, stratbox_proto::trace::derive(&e.event_id));
            assert_eq!(id.len(), 32);
            assert!(stratbox_proto::trace::is_usable(&id));
            assert_ne!(id, e.event_id);
        }
    }

    fn swap_event(amount_in: &str) -> v1::ChainEvent {
        v1::ChainEvent {
            event_id: "31337:7:0:0xab".into(),
            last_sync_block: 7,
            timestamp: 1_700_000_000,
            trace: None,
            chain_id: 31337,
            kind: Some(Kind::Swap(v1::SwapEvent {
                origin: Some(v1::EventOrigin {
                    block: 7,
                    log_index: 0,
                    tx_hash: String::new(),
                }),
                pool: Some(v1::Address {
                    value: "0x00000000000000000000000000000000000000AA".into(),
                }),
                zero_for_one: true,
                amount_in: Some(v1::Amount {
                    value: amount_in.into(),
                }),
                amount_out: Some(v1::Amount { value: "5".into() }),
                sqrt_price_x96: Some(v1::Amount {
                    value: "79228162514264337593543950336".into(),
                }),
                liquidity: Some(v1::Amount {
                    value: "1000".into(),
                }),
                tick: 0,
            })),
        }
    }

    #[test]
    fn swap_crosses_with_canonical_fields() {
        let Ok(Incoming::Event(Event::Swap(s))) = incoming(&swap_event("10")) else {
            panic!("not a swap");
        };
        assert_eq!(s.pool, "0x00000000000000000000000000000000000000aa");
        assert_eq!(s.amount_in, "10");
        assert_eq!(s.origin.block, 7);
    }

    #[test]
    fn refuses_float_and_missing_fields() {
        assert!(matches!(
            incoming(&swap_event("1.5")),
            Err(TranslateError::Invalid {
                field: "amount_in",
                ..
            })
        ));
        let mut e = swap_event("1");
        e.kind = None;
        assert!(matches!(
            incoming(&e),
            Err(TranslateError::Missing { field: "kind", .. })
        ));
    }

    #[test]
    fn reorg_is_not_a_strategy_event() {
        let mut e = swap_event("1");
        e.kind = Some(Kind::Reorg(v1::Reorg {
            common_ancestor: 5,
            old_head: 7,
            new_head: 8,
        }));
        assert!(matches!(
            incoming(&e),
            Ok(Incoming::Reorg { common_ancestor: 5 })
        ));
    }
}
