//! Errors that say what happened: a guest's exit code, its panic message, the fuel a call
//! burned before its deadline stopped it, and a host that survives a host function
//! panicking under it.

mod common;

use stratbox_host::{CallError, InstanceSpec, NoHistory, StrategyInstance, StrategyLimits};
use stratbox_strategies::{HOSTILE_EXIT_CODE, HOSTILE_PANIC_MESSAGE, hostile_config};

fn hostile(
    component: &stratbox_host::LoadedComponent,
    mode: &str,
    limits: StrategyLimits,
) -> StrategyInstance {
    let spec =
        InstanceSpec::new(format!("hostile/{mode}"), hostile_config(mode)).with_limits(limits);
    StrategyInstance::new(component, spec, NoHistory)
}

#[test]
fn an_exit_carries_its_code() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let events = common::events(2);
    let (event, snapshot) = &events[0];

    let mut instance = hostile(&component, "exit", StrategyLimits::default());
    let err = instance.call(event, snapshot, "t-exit").expect_err("exit");
    assert_eq!(
        err,
        CallError::Exit {
            code: HOSTILE_EXIT_CODE
        },
        "{err}"
    );
    assert_eq!(err.kind(), "exit");
    assert!(err.to_string().contains("exited with code 3"), "{err}");
    assert!(!instance.is_live(), "an instance that exited is discarded");

    let mut instance = hostile(&component, "exit-init", StrategyLimits::default());
    match instance.start() {
        Err(CallError::Init(m)) => assert!(m.contains("exited with code 3"), "{m}"),
        other => panic!("exit in init: {other:?}"),
    }
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let events = common::events(2);
    let (event, snapshot) = &events[0];

    let mut instance = hostile(&component, "panic", StrategyLimits::default());
    match instance.call(event, snapshot, "t-panic") {
        Err(CallError::Trap(m)) => {
            assert!(m.contains(HOSTILE_PANIC_MESSAGE), "{m}");
            assert!(
                m.contains("panicked at strategies/hostile/src/lib.rs:"),
                "{m}"
            );
            assert!(m.contains("unreachable"), "{m}");
            assert!(!m.contains("RUST_BACKTRACE"), "{m}");
        }
        other => panic!("panic: {other:?}"),
    }

    let mut instance = hostile(&component, "panic-init", StrategyLimits::default());
    match instance.start() {
        Err(CallError::Init(m)) => assert!(m.contains(HOSTILE_PANIC_MESSAGE), "{m}"),
        other => panic!("panic in init: {other:?}"),
    }
}

#[test]
fn a_call_stopped_at_its_deadline_reports_the_fuel_it_burned() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let events = common::events(2);
    let (event, snapshot) = &events[0];
    // Fuel enough for minutes of spinning: the deadline is what stops the loop.
    let limits = StrategyLimits {
        fuel_per_call: u64::MAX / 2,
        fuel_init: u64::MAX / 2,
        deadline_ms: 100,
        init_deadline_ms: 100,
        ..StrategyLimits::default()
    };
    let mut instance = hostile(&component, "loop", limits.clone());
    let fuel = match instance.call(event, snapshot, "t-deadline") {
        Err(CallError::Deadline {
            deadline_ms,
            fuel_used,
        }) => {
            assert_eq!(deadline_ms, 100);
            fuel_used
        }
        other => panic!("loop: {other:?}"),
    };
    // The host looks at the clock every 100,000 fuel, and the loop ran until a look
    // found the deadline past: at least one slice. Wasmtime's own count at an epoch
    // interrupt is the fuel of the loop's function entry, a few hundred.
    assert!(
        fuel >= 100_000,
        "a deadline-stopped loop reported {fuel} fuel"
    );
    assert!(fuel < limits.fuel_per_call);
    assert_eq!(instance.last_call().fuel_used, fuel);
    assert_eq!(instance.stats().fuel_used, fuel);
    assert_eq!(
        CallError::Deadline {
            deadline_ms: 100,
            fuel_used: fuel
        }
        .fuel_used(),
        Some(fuel)
    );

    // The same in `init`: it is stopped, and the host goes on.
    let mut spin = hostile(&component, "spin-init", limits);
    match spin.start() {
        Err(CallError::Init(m)) => {
            assert!(m.contains("deadline") && m.contains("fuel used"), "{m}")
        }
        other => panic!("spin in init: {other:?}"),
    }
}

/// Printing, sleeping and panicking in `init` need WASI calls that wasmtime-wasi runs on
/// the Tokio runtime of the calling thread: on an async worker thread that is a nested
/// `block_on`, which panics inside the host function. The host turns that into this call's
/// error instead of letting the panic through the guest and out of the thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_host_function_panicking_fails_the_call_not_the_thread() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let mut instance = hostile(&component, "print-init", StrategyLimits::default());
    // Deliberately on the async thread (what `stratbox host` must never do).
    match instance.start() {
        Err(CallError::Init(m)) => {
            assert!(m.contains("the host failed while serving the guest"), "{m}");
            assert!(m.contains("runtime"), "{m}");
        }
        other => panic!("print in init on an async thread: {other:?}"),
    }
    // Off the async threads, the same instance starts.
    let started = tokio::task::spawn_blocking(move || instance.start())
        .await
        .expect("blocking task");
    assert_eq!(started, Ok(()));
}
