//! Strategies written in Python (componentize-py) and JavaScript (ComponentizeJS) under the
//! same runtime and limits as Rust ones: each proposes exactly what the Rust strategy it
//! mirrors proposes, an interpreter-sized component is placed in the large pool, and every
//! misbehaviour is stopped by its limits with a typed error.

mod common;

use stratbox_host::{
    CallError, HostConfig, InstanceSpec, LoadError, NoHistory, PoolConfig, StrategyInstance,
    StrategyLimits,
};

#[test]
fn python_and_js_clamm_makers_propose_what_the_rust_one_does() {
    let runtime = common::runtime();
    let rust = common::load(&runtime, "clamm-maker");
    let python = common::load(&runtime, "clamm-maker-py");
    let js = common::load(&runtime, "clamm-maker-js");
    // Why the large pool exists: the interpreter's component needs more core instances
    // than a slot of the main pool holds; the Rust and JS ones fit the main pool.
    let main = HostConfig::default().core_instances_per_component;
    assert!(
        python.report().needs.core_instances > main,
        "{:?}",
        python.report().needs
    );
    assert!(rust.report().needs.core_instances <= main);
    assert!(js.report().needs.core_instances <= main);

    // A narrow band re-centred at its edge, so the walk makes the makers move their range
    // often (remove then add), not only open it.
    let config = serde_json::json!({
        "pool": common::pool(),
        "half_width_ticks": 30,
        "margin_ticks": 0,
        "liquidity": "1000000000000000000",
        "max_slippage_bps": 50,
    })
    .to_string();
    let mut r = StrategyInstance::new(&rust, InstanceSpec::new("rust", &*config), NoHistory);
    let mut p = StrategyInstance::new(&python, InstanceSpec::new("py", &*config), NoHistory);
    let mut j = StrategyInstance::new(&js, InstanceSpec::new("js", &*config), NoHistory);
    let events = common::events(300);
    let mut proposals = 0;
    for (i, (event, snapshot)) in events.iter().enumerate() {
        let want = r
            .call(event, snapshot, "t-rust")
            .expect("rust call")
            .proposals;
        for (lang, instance) in [("python", &mut p), ("js", &mut j)] {
            let got = instance
                .call(event, snapshot, "t-foreign")
                .unwrap_or_else(|e| panic!("{lang} call on event {i}: {e}"))
                .proposals;
            assert_eq!(got, want, "{lang}, event {i}");
        }
        proposals += want.len();
    }
    // The walk moves far enough that the maker re-centres, not only opens its position.
    assert!(proposals >= 20, "only {proposals} proposals over the walk");
    assert_eq!(runtime.live_instances(), 3);
}

#[test]
fn python_misbehaviour_is_stopped_with_its_own_error() {
    misbehaviour_is_stopped(
        "hostile-py",
        stratbox_strategies::HOSTILE_PY_MODES,
        "clamm-maker-py",
    );
}

#[test]
fn js_misbehaviour_is_stopped_with_its_own_error() {
    misbehaviour_is_stopped(
        "hostile-js",
        stratbox_strategies::HOSTILE_JS_MODES,
        "clamm-maker-js",
    );
}

fn misbehaviour_is_stopped(hostile: &str, modes: &[&str], maker: &str) {
    let runtime = common::runtime();
    let component = common::load(&runtime, hostile);
    let events = common::events(3);
    let (event, snapshot) = &events[1];
    let default = StrategyLimits::default();
    let no_fuel_limit = StrategyLimits {
        fuel_per_call: u64::MAX / 2,
        deadline_ms: 100,
        ..StrategyLimits::default()
    };
    // Fuel and time to fill the default 64 MiB, so the memory limit is what stops it.
    let fuel_for_memory = StrategyLimits {
        fuel_per_call: 20_000_000_000,
        deadline_ms: 60_000,
        ..StrategyLimits::default()
    };
    // Room to build ten thousand proposals (the interpreter lowers them through its own
    // memory), so the host's output cap is what refuses them.
    let roomy = StrategyLimits {
        memory_bytes: 768 << 20,
        ..fuel_for_memory.clone()
    };
    let mut checked = 0;
    for &mode in modes {
        let cases: Vec<(StrategyLimits, &str)> = match mode {
            "loop" => vec![
                (default.clone(), "out_of_fuel"),
                (no_fuel_limit.clone(), "deadline"),
            ],
            "alloc" => vec![(fuel_for_memory.clone(), "memory_limit")],
            "raise-init" | "throw-init" | "err-init" => vec![(default.clone(), "init")],
            // An exception that escapes the language's glue aborts the instance.
            "raise" | "throw" => vec![(default.clone(), "trap")],
            "flood" | "giant-string" => vec![(roomy.clone(), "bad_output")],
            "well-behaved" => vec![(default.clone(), "ok")],
            other => panic!("{hostile} mode {other} has no expectation here"),
        };
        for (limits, expected) in cases {
            let spec = InstanceSpec::new(
                format!("{hostile}/{mode}"),
                stratbox_strategies::hostile_config(mode),
            )
            .with_limits(limits.clone());
            let mut instance = StrategyInstance::new(&component, spec, NoHistory);
            let result = instance.call(event, snapshot, "t-hostile");
            let kind = match &result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            assert_eq!(kind, expected, "mode {mode}: got {result:?}");
            assert!(instance.last_call().fuel_used <= limits.fuel_per_call);
            match (&result, mode) {
                (Err(CallError::Init(m)), "err-init") => {
                    assert!(m.contains("refused on purpose"), "{m}")
                }
                (Err(CallError::BadOutput(m)), "flood") => {
                    assert!(m.contains("10000 proposals"), "{m}")
                }
                (Err(CallError::BadOutput(m)), "giant-string") => {
                    assert!(m.contains("bytes"), "{m}")
                }
                (Err(CallError::Deadline { deadline_ms, .. }), _) => {
                    assert_eq!(*deadline_ms, limits.deadline_ms)
                }
                _ => {}
            }
            if expected != "ok" {
                assert!(
                    !instance.is_live(),
                    "mode {mode}: a stopped instance is discarded"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, modes.len() + 1);

    // The runtime still runs the maker of the same language afterwards, and every slot
    // came back.
    let maker = common::load(&runtime, maker);
    let mut instance = StrategyInstance::new(
        &maker,
        InstanceSpec::new(
            "maker",
            stratbox_strategies::clamm_maker_config(common::pool()),
        ),
        NoHistory,
    );
    let proposed: usize = common::events(20)
        .iter()
        .map(|(e, s)| {
            instance
                .call(e, s, "t-after")
                .expect("call")
                .proposals
                .len()
        })
        .sum();
    assert!(proposed > 0);
    assert_eq!(runtime.live_instances(), 1);
}

#[test]
fn a_component_that_fits_no_pool_is_refused_naming_the_limit() {
    let runtime = common::runtime_with(HostConfig {
        max_instances: 8,
        large_pool: PoolConfig {
            max_instances: 4,
            core_instances_per_component: 8,
            ..PoolConfig::default()
        },
        ..HostConfig::default()
    });
    let bytes = stratbox_strategies::bytes("clamm-maker-py").expect("catalog component");
    let err = match runtime.load(&bytes) {
        Err(e) => e,
        Ok(_) => panic!("a component needing more than 8 core instances loaded"),
    };
    let LoadError::Compile(m) = &err else {
        panic!("expected a compile-class refusal, got {err:?}")
    };
    assert!(
        m.contains("core instances per instance, over 8")
            && m.contains("large_pool.core_instances_per_component"),
        "{m}"
    );
    // The Rust maker is unaffected.
    common::load(&runtime, "clamm-maker");
}

#[test]
fn the_large_pool_refuses_past_its_own_capacity() {
    let runtime = common::runtime_with(HostConfig {
        max_instances: 8,
        large_pool: PoolConfig {
            max_instances: 1,
            ..PoolConfig::default()
        },
        ..HostConfig::default()
    });
    let python = common::load(&runtime, "clamm-maker-py");
    let config = stratbox_strategies::clamm_maker_config(common::pool());
    let (event, snapshot) = &common::events(1)[0];
    let mut first = StrategyInstance::new(&python, InstanceSpec::new("a", &*config), NoHistory);
    first.call(event, snapshot, "t").expect("the first fits");
    let mut second = StrategyInstance::new(&python, InstanceSpec::new("b", &*config), NoHistory);
    match second.call(event, snapshot, "t") {
        Err(CallError::PoolExhausted(m)) => {
            assert!(m.contains("large_pool.max_instances"), "{m}")
        }
        other => panic!("expected the large pool to be full, got {other:?}"),
    }
    // The main pool is a separate budget: a Rust instance still starts.
    let rust = common::load(&runtime, "clamm-maker");
    let mut third = StrategyInstance::new(&rust, InstanceSpec::new("c", &*config), NoHistory);
    third
        .call(event, snapshot, "t")
        .expect("the main pool has room");
}
