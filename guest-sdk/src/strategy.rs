//! The `Strategy` trait and the one macro that turns an implementation into a component.

use crate::types::{Event, Proposal, Snapshot};
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
            ::std::thread_local! {
                static __STRATBOX_INSTANCE: ::core::cell::RefCell<::core::option::Option<$strategy>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct __StratboxComponent;

            impl $crate::bindings::Guest for __StratboxComponent {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$strategy>(&__STRATBOX_INSTANCE, &config)
                }

                fn on_event(
                    event: $crate::types::Event,
                    snapshot: $crate::types::Snapshot,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::types::Proposal>,
                    ::std::string::String,
                > {
                    $crate::__private::on_event::<$strategy>(&__STRATBOX_INSTANCE, &event, &snapshot)
                }
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
            ::std::thread_local! {
                static __STRATBOX_INSTANCE: ::core::cell::RefCell<::core::option::Option<$strategy>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct __StratboxComponent;

            impl $crate::bindings::stateful::Guest for __StratboxComponent {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$strategy>(&__STRATBOX_INSTANCE, &config)
                }

                fn on_event(
                    event: $crate::types::Event,
                    snapshot: $crate::types::Snapshot,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::types::Proposal>,
                    ::std::string::String,
                > {
                    $crate::__private::on_event::<$strategy>(&__STRATBOX_INSTANCE, &event, &snapshot)
                }

                fn save() -> ::std::vec::Vec<u8> {
                    $crate::__private::save::<$strategy>(&__STRATBOX_INSTANCE)
                }

                fn restore(
                    state: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::restore::<$strategy>(&__STRATBOX_INSTANCE, &state)
                }
            }

            $crate::bindings::stateful::__stratbox_export_stateful_world!(__StratboxComponent with_types_in $crate::bindings::stateful);
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
