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
