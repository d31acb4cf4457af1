//! The WIT types under short names, plus read helpers an author reaches for on every event.
//!
//! The generated paths (`bindings::stratbox::strategy::types::...`) are long and tied to the
//! package version; authors import from here instead so a WIT version bump does not touch
//! every strategy.

pub use crate::bindings::stratbox::strategy::host::Level;
pub use crate::bindings::stratbox::strategy::types::{
    Action, Address, BlockInfo, Event, EventOrigin, LiquidityEvent, OraclePrice, PoolState,
    Proposal, RangeLiquidity, Snapshot, SwapAction, SwapEvent, TokenBalance,
};

pub use crate::bindings::v0_2::stratbox::strategy0_2_0::outcomes::{FinalState, Markout, Outcome};

use crate::amount::{Amount, AmountParseError};

/// Addresses arrive in any hex case; comparing them byte-for-byte would make a strategy
/// silently ignore its own pool.
pub fn same_address(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Event {
    /// Where the event sits in the chain; `None` for a new-block event, which has no log.
    pub fn origin(&self) -> Option<&EventOrigin> {
        match self {
            Event::NewBlock(_) => None,
            Event::Swap(e) => Some(&e.origin),
            Event::Mint(e) | Event::Burn(e) => Some(&e.origin),
            Event::OraclePrice(e) => Some(&e.origin),
        }
    }

    /// The block the event belongs to.
    pub fn block(&self) -> u64 {
        match self {
            Event::NewBlock(b) => b.number,
            other => other.origin().map_or(0, |o| o.block),
        }
    }

    /// The pool a pool event concerns; `None` for new-block and oracle events.
    pub fn pool(&self) -> Option<&str> {
        match self {
            Event::Swap(e) => Some(&e.pool),
            Event::Mint(e) | Event::Burn(e) => Some(&e.pool),
            Event::NewBlock(_) | Event::OraclePrice(_) => None,
        }
    }
}

impl Snapshot {
    /// The state of `pool` at the watermark, if the host included it.
    pub fn pool(&self, pool: &str) -> Option<&PoolState> {
        self.pools.iter().find(|p| same_address(&p.pool, pool))
    }

    /// This instance's balance of `token`; a token the host did not list counts as zero.
    pub fn balance(&self, token: &str) -> Result<Amount, AmountParseError> {
        self.balances
            .iter()
            .find(|b| same_address(&b.token, token))
            .map_or(Ok(Amount::ZERO), |b| b.amount.parse())
    }
}

impl PoolState {
    /// The pool's Q64.96 square-root price, parsed.
    pub fn sqrt_price(&self) -> Result<Amount, AmountParseError> {
        self.sqrt_price_x96.parse()
    }

    /// In-range liquidity, parsed; the pool stores it as `uint128`.
    pub fn liquidity_u128(&self) -> Result<u128, AmountParseError> {
        let amount: Amount = self.liquidity.parse()?;
        u128::try_from(amount.into_u256()).map_err(|_| AmountParseError::Overflow { bits: 128 })
    }
}

impl SwapEvent {
    /// The pool's Q64.96 square-root price after this swap, parsed.
    pub fn sqrt_price(&self) -> Result<Amount, AmountParseError> {
        self.sqrt_price_x96.parse()
    }
}
