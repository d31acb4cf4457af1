//! Ten clamm-maker instances running beside every hostile mode, calls interleaved on one
//! thread and one engine, produce exactly the proposals they produce alone.

mod common;

use stratbox_host::{InstanceSpec, NoHistory, StrategyInstance, StrategyLimits, ValidatedProposal};

fn maker(component: &stratbox_host::LoadedComponent, i: usize) -> StrategyInstance {
    // A narrow band, so the sample walk makes the maker re-centre often.
    let config = serde_json::json!({
        "pool": common::pool(),
        "half_width_ticks": 60,
        "margin_ticks": 0,
        "liquidity": "1000000000000000000",
        "max_slippage_bps": 50,
    });
    let spec = InstanceSpec::new(format!("clamm-maker/{i}"), config.to_string());
    StrategyInstance::new(component, spec, NoHistory)
}

#[test]
fn clamm_makers_beside_hostiles_propose_what_they_propose_alone() {
    let runtime = common::runtime();
    let maker_component = common::load(&runtime, "clamm-maker");
    let hostile_component = common::load(&runtime, "hostile");
    let events = common::events(100);

    // Alone: one instance, one pass.
    let mut alone = maker(&maker_component, 0);
    let expected: Vec<Vec<ValidatedProposal>> = events
        .iter()
        .map(|(e, s)| {
            alone
                .call(e, s, "alone")
                .expect("clamm-maker alone")
                .proposals
        })
        .collect();
    let total: usize = expected.iter().map(Vec::len).sum();
    assert!(
        total >= 5,
        "the walk must make clamm-maker act more than once, got {total}"
    );
    drop(alone);

    // Beside every hostile mode. Limits are small so the run stays quick; what stops each
    // hostile does not matter here, only that it does not disturb its neighbours.
    let limits = StrategyLimits {
        fuel_per_call: 2_000_000,
        deadline_ms: 20,
        memory_bytes: 16 << 20,
        max_consecutive_failures: u32::MAX,
        ..StrategyLimits::default()
    };
    let mut makers: Vec<StrategyInstance> = (0..10).map(|i| maker(&maker_component, i)).collect();
    let mut hostiles: Vec<StrategyInstance> = stratbox_strategies::HOSTILE_MODES
        .iter()
        .map(|mode| {
            let spec = InstanceSpec::new(*mode, stratbox_strategies::hostile_config(mode))
                .with_limits(limits.clone());
            StrategyInstance::new(&hostile_component, spec, NoHistory)
        })
        .collect();
    let mut got: Vec<Vec<Vec<ValidatedProposal>>> = vec![Vec::new(); makers.len()];
    let mut hostile_failures = 0;
    for (e, s) in &events {
        // Interleave: every hostile once per event, between the makers' calls.
        let mut makers_iter = makers.iter_mut().zip(got.iter_mut());
        for h in hostiles.iter_mut() {
            if h.call(e, s, "hostile").is_err() {
                hostile_failures += 1;
            }
            if let Some((m, out)) = makers_iter.next() {
                out.push(
                    m.call(e, s, "beside")
                        .expect("clamm-maker beside hostiles")
                        .proposals,
                );
            }
        }
        for (m, out) in makers_iter {
            out.push(
                m.call(e, s, "beside")
                    .expect("clamm-maker beside hostiles")
                    .proposals,
            );
        }
    }
    assert!(hostile_failures > 0, "the hostiles misbehaved");
    for (i, proposals) in got.iter().enumerate() {
        assert_eq!(
            proposals, &expected,
            "clamm-maker {i} diverged beside the hostiles"
        );
    }
    // The modes that never fail a call here: they answer, or only misbehave in ways that
    // are harmless on a thread of their own.
    let harmless = [
        "well-behaved",
        "wasi-probe",
        "control-reason",
        "print-init",
        "eprint-init",
        "sleep-init",
    ];
    for h in &hostiles {
        let mode = &h.spec().name;
        if !harmless.contains(&mode.as_str()) {
            assert!(
                h.stats().builds > 1,
                "{mode} was rebuilt after failing: {:?}",
                h.stats()
            );
        }
    }
}
