//! The `Strategy` trait and the one macro that turns an implementation into a component.

use crate::types::{Event, Outcome, Proposal, Snapshot};
use core::cell::RefCell;
use std::thread::LocalKey;

/// A trading strategy, one instance per market / account / parameter set.
///
/// The host calls [`Strategy::init`] once per instance (and again whenever it rebuilds the
/// instance after a failure), then [`Strategy::on_event`] for every event in chain order.
/// Everything a strategy may know arrives in those two calls or through [`crate::host`];
/// there is no clock, file or network, so an implementation that is a pure function of its
/// inputs is deterministic for free.
pub trait Strategy: Sized + 'static {
    /// Builds the instance from the operator's JSON config; an `Err` refuses the config and
    /// the host reports it.
    fn init(config: &str) -> Result<Self, String>;

    /// Reacts to one event with zero or more proposals. `snapshot` is the state as of the
    /// watermark. An `Err` is logged by the host and does not stop the instance.
    fn on_event(&mut self, event: &Event, snapshot: &Snapshot) -> Result<Vec<Proposal>, String>;
}

/// A strategy whose state can travel to the version that replaces it (world
/// `stratbox:strategy/strategy@0.1.1`, exported with [`crate::export_stateful_strategy!`]).
///
/// During a hot swap the host builds and `init`s the new version's instances first; then,
/// between two events, it calls [`Stateful::save`] on each old instance and hands the bytes
/// to [`Stateful::restore`] on the new one that takes its place. The bytes are the
/// strategy's own format: version it, since the reader may be a newer release.
pub trait Stateful: Strategy {
    /// What the next version needs to carry on where this one stops.
    fn save(&self) -> Vec<u8>;

    /// Takes over `state` written by [`Stateful::save`] of an earlier (or the same)
    /// version. Called after `init`, before the first event. On `Err` the instance must be
    /// left as `init` made it; the host logs the reason and runs it from that state.
    fn restore(&mut self, state: &[u8]) -> Result<(), String>;
}

/// A strategy that is told what became of its proposals (world
/// `stratbox:strategy/strategy@0.2.0`, exported with [`crate::export_outcome_strategy!`]),
/// and may use [`crate::memory`].
///
/// The host calls [`Outcomes::on_outcome`] between two events on the instance that made the
/// proposal: once when its task ends and, for a fill, again when the fill's markout is known
/// (`outcome.markout` set). World 0.2.0 includes 0.1.1, so such a strategy is also
/// [`Stateful`]; one with nothing to hand over saves an empty state.
pub trait Outcomes: Stateful {
    /// Learns from one outcome. An `Err` is logged by the host and counts as a failed call.
    fn on_outcome(&mut self, outcome: &Outcome) -> Result<(), String>;
}

/// The per-thread slot an exported strategy's instance lives in, named by the caller so
/// the methods below can reach it.
#[doc(hidden)]
#[macro_export]
macro_rules! __stratbox_slot {
    ($strategy:ty, $slot:ident) => {
        ::std::thread_local! {
            static $slot: ::core::cell::RefCell<::core::option::Option<$strategy>> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }
    };
}

/// The exports every world has (`init`, `on-event`), and with `stateful` the 0.1.1 ones
/// (`save`, `restore`), as methods of a world's `Guest` impl: one body for every world's
/// trait.
#[doc(hidden)]
#[macro_export]
macro_rules! __stratbox_guest_methods {
    ($strategy:ty, $slot:ident) => {
        fn init(
            config: ::std::string::String,
        ) -> ::core::result::Result<(), ::std::string::String> {
            $crate::__private::init::<$strategy>(&$slot, &config)
        }

        fn on_event(
            event: $crate::types::Event,
            snapshot: $crate::types::Snapshot,
        ) -> ::core::result::Result<::std::vec::Vec<$crate::types::Proposal>, ::std::string::String>
        {
            $crate::__private::on_event::<$strategy>(&$slot, &event, &snapshot)
        }
    };
    ($strategy:ty, $slot:ident, stateful) => {
        $crate::__stratbox_guest_methods!($strategy, $slot);

        fn save() -> ::std::vec::Vec<u8> {
            $crate::__private::save::<$strategy>(&$slot)
        }

        fn restore(
            state: ::std::vec::Vec<u8>,
        ) -> ::core::result::Result<(), ::std::string::String> {
            $crate::__private::restore::<$strategy>(&$slot, &state)
        }
    };
}

/// Exports a [`Strategy`] as the `strategy` world's `init` and `on-event`.
///
/// The instance lives in a per-thread slot (a component is single-threaded); `init`
/// replaces it, so a host that re-initialises after a failure gets a fresh instance.
///
/// ```text
/// struct Quiet;
/// impl stratbox_sdk::Strategy for Quiet { /* ... */ }
/// stratbox_sdk::export_strategy!(Quiet);
/// ```
#[macro_export]
macro_rules! export_strategy {
    ($strategy:ty) => {
        const _: () = {
            $crate::__stratbox_slot!($strategy, __STRATBOX_INSTANCE);

            struct __StratboxComponent;

            impl $crate::bindings::Guest for __StratboxComponent {
                $crate::__stratbox_guest_methods!($strategy, __STRATBOX_INSTANCE);
            }

            $crate::bindings::__stratbox_export_world!(__StratboxComponent with_types_in $crate::bindings);
        };
    };
}

/// Exports a [`Stateful`] strategy as the world `stratbox:strategy/strategy@0.1.1`:
/// `init`, `on-event`, `save` and `restore`. Hosts that know nothing of 0.1.1 still run
/// it; they just never call the two extra exports.
///
/// ```text
/// struct Counter { seen: u64 }
/// impl stratbox_sdk::Strategy for Counter { /* ... */ }
/// impl stratbox_sdk::Stateful for Counter { /* ... */ }
/// stratbox_sdk::export_stateful_strategy!(Counter);
/// ```
#[macro_export]
macro_rules! export_stateful_strategy {
    ($strategy:ty) => {
        const _: () = {
            $crate::__stratbox_slot!($strategy, __STRATBOX_INSTANCE);

            struct __StratboxComponent;

            impl $crate::bindings::stateful::Guest for __StratboxComponent {
                $crate::__stratbox_guest_methods!($strategy, __STRATBOX_INSTANCE, stateful);
            }

            $crate::bindings::stateful::__stratbox_export_stateful_world!(__StratboxComponent with_types_in $crate::bindings::stateful);
        };
    };
}

/// Exports an [`Outcomes`] strategy as the world `stratbox:strategy/strategy@0.2.0`:
/// `init`, `on-event`, `save`, `restore` and `on-outcome`, importing `memory` when it uses
/// it. Hosts of 0.1.x only never call `on-outcome`, and cannot link its `memory` import.
#[macro_export]
macro_rules! export_outcome_strategy {
    ($strategy:ty) => {
        const _: () = {
            $crate::__stratbox_slot!($strategy, __STRATBOX_INSTANCE);

            struct __StratboxComponent;

            impl $crate::bindings::v0_2::Guest for __StratboxComponent {
                $crate::__stratbox_guest_methods!($strategy, __STRATBOX_INSTANCE, stateful);

                fn on_outcome(
                    outcome: $crate::types::Outcome,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::on_outcome::<$strategy>(&__STRATBOX_INSTANCE, &outcome)
                }
            }

            $crate::bindings::v0_2::__stratbox_export_outcome_world!(__StratboxComponent with_types_in $crate::bindings::v0_2);
        };
    };
}

/// The slot type the macro declares, named so the glue below can take it.
pub type Slot<S> = LocalKey<RefCell<Option<S>>>;

/// `init` glue: a failed init leaves the slot empty, so a later `on-event` reports that
/// rather than running a half-configured instance.
pub fn init<S: Strategy>(slot: &'static Slot<S>, config: &str) -> Result<(), String> {
    slot.with(|cell| {
        let mut guard = cell
            .try_borrow_mut()
            .map_err(|_| "init called while the strategy is running".to_owned())?;
        *guard = None;
        *guard = Some(S::init(config)?);
        Ok(())
    })
}

/// `on-event` glue.
pub fn on_event<S: Strategy>(
    slot: &'static Slot<S>,
    event: &Event,
    snapshot: &Snapshot,
) -> Result<Vec<Proposal>, String> {
    slot.with(|cell| {
        let mut guard = cell
            .try_borrow_mut()
            .map_err(|_| "on-event called while the strategy is running".to_owned())?;
        match guard.as_mut() {
            Some(strategy) => strategy.on_event(event, snapshot),
            None => Err("on-event called before a successful init".to_owned()),
        }
    })
}

/// `save` glue: an instance that never initialised has nothing to hand over.
pub fn save<S: Stateful>(slot: &'static Slot<S>) -> Vec<u8> {
    slot.with(|cell| match cell.try_borrow() {
        Ok(guard) => guard.as_ref().map(S::save).unwrap_or_default(),
        Err(_) => Vec::new(),
    })
}

/// `restore` glue.
pub fn restore<S: Stateful>(slot: &'static Slot<S>, state: &[u8]) -> Result<(), String> {
    slot.with(|cell| {
        let mut guard = cell
            .try_borrow_mut()
            .map_err(|_| "restore called while the strategy is running".to_owned())?;
        match guard.as_mut() {
            Some(strategy) => strategy.restore(state),
            None => Err("restore called before a successful init".to_owned()),
        }
    })
}

/// `on-outcome` glue.
pub fn on_outcome<S: Outcomes>(slot: &'static Slot<S>, outcome: &Outcome) -> Result<(), String> {
    slot.with(|cell| {
        let mut guard = cell
            .try_borrow_mut()
            .map_err(|_| "on-outcome called while the strategy is running".to_owned())?;
        match guard.as_mut() {
            Some(strategy) => strategy.on_outcome(outcome),
            None => Err("on-outcome called before a successful init".to_owned()),
        }
    })
}
