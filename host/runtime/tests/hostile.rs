//! Every hostile mode, in one process, against one runtime: each is stopped with its own
//! typed error within its limits, and the process (and a well-behaved neighbour) goes on.

mod common;

use stratbox_host::{CallError, InstanceSpec, NoHistory, StrategyInstance, StrategyLimits};

fn hostile(
    component: &stratbox_host::LoadedComponent,
    mode: &str,
    limits: StrategyLimits,
) -> StrategyInstance {
    let spec = InstanceSpec::new(
        format!("hostile/{mode}"),
        stratbox_strategies::hostile_config(mode),
    )
    .with_limits(limits);
    StrategyInstance::new(component, spec, NoHistory)
}

#[test]
fn every_hostile_mode_is_stopped_with_its_own_error() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let events = common::events(3);
    let (event, snapshot) = &events[1];
    let default = StrategyLimits::default();

    // Generous limits for the modes whose misbehaviour must complete to be seen (the
    // flood needs room to build a million proposals before the host refuses them).
    let roomy = StrategyLimits {
        fuel_per_call: 5_000_000_000,
        deadline_ms: 20_000,
        memory_bytes: 768 << 20,
        ..StrategyLimits::default()
    };
    // Filling 64 MiB byte by byte burns more than the default fuel: give the memory
    // abusers enough fuel that the memory limit is what stops them.
    let fuel_for_memory = StrategyLimits {
        fuel_per_call: 5_000_000_000,
        deadline_ms: 20_000,
        ..StrategyLimits::default()
    };
    let no_fuel_limit = StrategyLimits {
        fuel_per_call: u64::MAX / 2,
        deadline_ms: 30,
        ..StrategyLimits::default()
    };
    let no_deadline = StrategyLimits {
        fuel_per_call: 5_000_000,
        deadline_ms: 60_000,
        ..StrategyLimits::default()
    };

    let mut checked = 0;
    for &mode in stratbox_strategies::HOSTILE_MODES {
        let cases: Vec<(StrategyLimits, &str)> = match mode {
            "grow-memory" | "ignore-grow-failure" => {
                vec![(fuel_for_memory.clone(), "memory_limit")]
            }
            "loop" => vec![
                (no_fuel_limit.clone(), "deadline"),
                (no_deadline.clone(), "out_of_fuel"),
            ],
            "trap" | "recurse" | "panic" => vec![(default.clone(), "trap")],
            "exit" => vec![(default.clone(), "exit")],
            "giant-log" => vec![(roomy.clone(), "ok")],
            "control-reason" => vec![(default.clone(), "ok")],
            "flood" => vec![(roomy.clone(), "bad_output")],
            "giant-string" | "bad-amount" | "bad-bps" => vec![(roomy.clone(), "bad_output")],
            "wasi-probe" => vec![(default.clone(), "strategy")],
            "trap-init" | "fail-init" | "panic-init" | "udp-init" | "tcp-init" | "spin-init"
            | "exit-init" | "grow-memory-init" => vec![(default.clone(), "init")],
            // On a thread of its own, printing and sleeping in `init` is harmless.
            "print-init" | "eprint-init" | "sleep-init" => vec![(default.clone(), "ok")],
            "well-behaved" => vec![(default.clone(), "ok")],
            other => panic!("hostile mode {other} has no expectation here"),
        };
        for (limits, expected) in cases {
            let mut instance = hostile(&component, mode, limits.clone());
            let result = instance.call(event, snapshot, "t-hostile");
            let kind = match &result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            assert_eq!(kind, expected, "mode {mode}: got {result:?}");
            // Stopped within its limits: never more fuel than the budget.
            assert!(
                instance.last_call().fuel_used <= limits.fuel_per_call,
                "mode {mode} burned {} fuel over its {} budget",
                instance.last_call().fuel_used,
                limits.fuel_per_call
            );
            match (&result, mode) {
                (Err(CallError::OutOfFuel { limit }), _) => {
                    assert_eq!(*limit, limits.fuel_per_call)
                }
                (Err(CallError::Deadline { deadline_ms, .. }), _) => {
                    assert_eq!(*deadline_ms, limits.deadline_ms)
                }
                // Rust keeps its frames' arrays on a shadow stack in linear memory, so deep
                // recursion ends either on wasmtime's stack limit or off the bottom of memory.
                (Err(CallError::Trap(m)), "recurse") => {
                    assert!(m.contains("stack") || m.contains("out of bounds"), "{m}")
                }
                (Err(CallError::Trap(m)), "trap") => assert!(m.contains("unreachable"), "{m}"),
                (Err(CallError::BadOutput(m)), "flood") => {
                    assert!(m.contains("1000000 proposals"), "{m}")
                }
                (Err(CallError::BadOutput(m)), "giant-string") => {
                    assert!(m.contains("string of 16777216 bytes"), "{m}")
                }
                (Err(CallError::BadOutput(m)), "bad-amount") => assert!(m.contains("1.5"), "{m}"),
                (Err(CallError::BadOutput(m)), "bad-bps") => assert!(m.contains("20000"), "{m}"),
                (Err(CallError::Init(m)), "fail-init") => {
                    assert!(m.contains("refused on purpose"), "{m}")
                }
                (Err(CallError::Init(m)), "trap-init") => assert!(m.contains("unreachable"), "{m}"),
                (Err(CallError::MemoryLimit(m)), _) => assert!(m.contains("refused"), "{m}"),
                _ => {}
            }
            if expected != "ok" && expected != "strategy" {
                assert!(
                    !instance.is_live(),
                    "mode {mode}: a stopped instance must be discarded"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, stratbox_strategies::HOSTILE_MODES.len() + 1);

    // The host survived all of them and still runs a strategy correctly.
    let maker = common::load(&runtime, "clamm-maker");
    let mut instance = StrategyInstance::new(
        &maker,
        InstanceSpec::new(
            "clamm-maker",
            stratbox_strategies::clamm_maker_config(common::pool()),
        ),
        NoHistory,
    );
    let proposals: usize = events
        .iter()
        .map(|(e, s)| {
            instance
                .call(e, s, "t-after")
                .expect("clamm-maker call")
                .proposals
                .len()
        })
        .sum();
    assert!(proposals > 0, "clamm-maker proposes its first position");
    assert_eq!(
        runtime.live_instances(),
        1,
        "every stopped instance gave its slot back"
    );
}

#[test]
fn wasi_probe_finds_nothing_granted() {
    let runtime = common::runtime();
    let component = common::load(&runtime, "hostile");
    let events = common::events(2);
    let (event, snapshot) = &events[0];
    let mut instance = hostile(&component, "wasi-probe", StrategyLimits::default());
    let report = match instance.call(event, snapshot, "t-probe") {
        Err(CallError::Strategy(report)) => report,
        other => panic!("wasi-probe should answer with its report, got {other:?}"),
    };
    let v: serde_json::Value = serde_json::from_str(&report).expect("probe report is JSON");
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    assert!(!text("file").starts_with("READ"), "file read: {report}");
    assert!(!text("dir").starts_with("LISTED"), "dir listed: {report}");
    assert!(
        !text("socket").contains("CONNECTED"),
        "socket connected: {report}"
    );
    assert_eq!(v["env_count"], 0, "{report}");
    let event_ns = snapshot.timestamp * 1_000_000_000;
    assert_eq!(v["wall_clock_unix_ns"].as_u64(), Some(event_ns), "{report}");
    assert_eq!(v["monotonic_ns"].as_u64(), Some(event_ns), "{report}");

    // Randomness is seeded per instance: the same seed draws the same bytes again.
    let mut again = hostile(&component, "wasi-probe", StrategyLimits::default());
    let Err(CallError::Strategy(report2)) = again.call(event, snapshot, "t-probe2") else {
        panic!("second probe");
    };
    let v2: serde_json::Value = serde_json::from_str(&report2).expect("JSON");
    assert_eq!(v["random_hex"], v2["random_hex"]);
}

#[test]
fn instances_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<StrategyInstance>();
}
