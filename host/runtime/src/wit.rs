//! Rust types and import traits generated from `wit/strategy.wit`.
//!
//! Only the *types* and the *import* side come from `bindgen!`. The exports are called
//! through hand-written typed functions (see `instance.rs`) whose results lift into
//! bounded types, so that a guest cannot make the host allocate without limit while its
//! answer is being copied out of guest memory.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "strategy",
    imports: { default: trappable },
});

pub use stratbox::strategy::host::Level;
pub use stratbox::strategy::types::{
    Action, BlockInfo, EventOrigin, LiquidityEvent, OraclePrice, PoolState, RangeLiquidity,
    SwapAction, SwapEvent, TokenBalance,
};

/// The block an event belongs to: what zero look-ahead is measured against.
pub fn event_block(event: &Event) -> u64 {
    match event {
        Event::NewBlock(b) => b.number,
        Event::Swap(s) => s.origin.block,
        Event::Mint(l) | Event::Burn(l) => l.origin.block,
        Event::OraclePrice(o) => o.origin.block,
    }
}

/// The pool an event is about, if it is about one.
pub fn event_pool(event: &Event) -> Option<&str> {
    match event {
        Event::Swap(s) => Some(&s.pool),
        Event::Mint(l) | Event::Burn(l) => Some(&l.pool),
        Event::NewBlock(_) | Event::OraclePrice(_) => None,
    }
}

/// Types and imports of world `stratbox:strategy/strategy@0.2.0`: the `memory` interface the
/// host grants every component and the `outcome` record `on-outcome` takes. Its 0.1.0
/// interfaces are mapped onto the modules above, so both worlds share one `Event`, one
/// `Snapshot` and one `host` implementation.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: ["../../wit", "../../wit/v0.1.1", "../../wit/v0.2.0"],
        world: "stratbox:strategy/strategy@0.2.0",
        imports: { default: trappable },
        with: {
            "stratbox:strategy/types@0.1.0": crate::wit::stratbox::strategy::types,
            "stratbox:strategy/host@0.1.0": crate::wit::stratbox::strategy::host,
        },
    });

    pub use stratbox::strategy0_2_0::outcomes::{FinalState, Markout};
}
