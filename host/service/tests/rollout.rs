//! Rollouts without the network: real catalog components, a real fleet, desired states as
//! the registry would send them, component bytes from a map.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use stratbox_host::check::sha256_hex;
use stratbox_host::wit::{BlockInfo, Event};
use stratbox_host::{
    HostConfig, HostRuntime, InstanceSpec, NoHistory, StrategyInstance, StrategyLimits,
};
use stratbox_host_service::{
    ComponentSource, Fleet, LocalStrategy, Market, Outcome, OutcomeKind, Rollout,
};
use stratbox_proto::v1::{self, Address, Amount, DeploymentSet};

const POOL: &str = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8";

/// `clamm-maker` as built before world 0.2.0 existed (by the SDK of 0.1.x, at commit
/// c6be374): a 0.1.0 component that must run on this host unchanged.
const OLD_MAKER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/clamm-maker-0.1.0.wasm"
);

struct Catalog(HashMap<String, Vec<u8>>);

impl Catalog {
    /// Every catalog component, by sha256; returns the map and name -> sha256.
    fn new() -> (Self, BTreeMap<&'static str, String>) {
        let mut bytes = HashMap::new();
        let mut shas = BTreeMap::new();
        for name in ["momentum", "clamm-maker", "hostile"] {
            let b = stratbox_strategies::bytes(name).expect("catalog component");
            let sha = sha256_hex(&b);
            shas.insert(name, sha.clone());
            bytes.insert(sha, b);
        }
        let old = std::fs::read(OLD_MAKER).expect("the 0.1.0 fixture");
        let sha = sha256_hex(&old);
        shas.insert("clamm-maker-0.1.0", sha.clone());
        bytes.insert(sha, old);
        (Catalog(bytes), shas)
    }
}

impl ComponentSource for Catalog {
    async fn fetch(&self, sha256: &str) -> Result<Vec<u8>, String> {
        self.0
            .get(sha256)
            .cloned()
            .ok_or_else(|| format!("no component {sha256}"))
    }
}

fn market() -> Market {
    let addr = |v: &str| {
        Some(Address {
            value: v.to_owned(),
        })
    };
    let amount = |v: &str| {
        Some(Amount {
            value: v.to_owned(),
        })
    };
    Market::from_markets(&[v1::Market {
        pool: addr(POOL),
        token0: addr("0x0000000000000000000000000000000000000010"),
        token1: addr("0x0000000000000000000000000000000000000020"),
        fee: 3000,
        tick_spacing: 60,
        sqrt_price_x96: amount("79228162514264337593543950336"),
        tick: 0,
        liquidity: amount("100000000000000000000"),
        block: 1,
    }])
}

fn setup(workers: usize) -> (Arc<Fleet>, Rollout, HostRuntime) {
    let fleet = Arc::new(Fleet::start(workers, Arc::new(RwLock::new(market()))).expect("fleet"));
    let runtime = HostRuntime::new(HostConfig::default()).expect("runtime");
    let rollout = Rollout::new(
        "test-host",
        fleet.clone(),
        runtime.clone(),
        StrategyLimits::default(),
    );
    (fleet, rollout, runtime)
}

fn deployment(
    name: &str,
    version: &str,
    sha: &str,
    instances: u32,
    config: &str,
    revision: u64,
) -> v1::Deployment {
    v1::Deployment {
        name: name.into(),
        version: version.into(),
        sha256: sha.into(),
        instances,
        config_json: config.into(),
        revision,
        ..Default::default()
    }
}

fn set(revision: u64, deployments: Vec<v1::Deployment>) -> DeploymentSet {
    DeploymentSet {
        revision,
        deployments,
    }
}

/// Applies a block to the market and gives it to every instance; the versions that
/// answered, with how many answers each.
async fn block(fleet: &Fleet, n: u64) -> BTreeMap<String, usize> {
    let event = Event::NewBlock(BlockInfo {
        number: n,
        timestamp: n * 12,
        hash: String::new(),
    });
    fleet.market().write().unwrap().apply(&event, n, n * 12);
    let answers = fleet
        .dispatch(event, &format!("t{n}"))
        .await
        .expect("dispatch");
    let mut versions = BTreeMap::new();
    for a in answers {
        assert!(
            a.result.is_ok(),
            "{}: {:?}",
            a.identity.instance_id,
            a.result
        );
        *versions
            .entry(format!("{}@{}", a.identity.strategy, a.identity.version))
            .or_default() += 1;
    }
    versions
}

fn only(version: &str, n: usize) -> BTreeMap<String, usize> {
    BTreeMap::from([(version.to_owned(), n)])
}

#[test]
fn one_linker_serves_every_world_and_finds_the_optional_exports() {
    let runtime = HostRuntime::new(HostConfig::default()).unwrap();
    let momentum = runtime
        .load(&stratbox_strategies::bytes("momentum").unwrap())
        .unwrap();
    let clamm = runtime
        .load(&stratbox_strategies::bytes("clamm-maker").unwrap())
        .unwrap();
    let tally = runtime
        .load(&stratbox_strategies::bytes("tally").unwrap())
        .unwrap();
    assert!(momentum.is_stateful());
    assert!(momentum.wants_outcomes());
    assert_eq!(momentum.report().world, "stratbox:strategy/strategy@0.2.0");
    assert!(momentum.report().exports.iter().any(|e| e == "save"));
    assert!(tally.is_stateful());
    assert!(!tally.wants_outcomes());
    assert_eq!(tally.report().world, "stratbox:strategy/strategy@0.1.1");
    assert!(!clamm.is_stateful());
    assert!(!clamm.wants_outcomes());
    assert_eq!(clamm.report().world, "stratbox:strategy/strategy@0.1.0");
    assert!(
        runtime
            .load(&stratbox_strategies::bytes("other-world").unwrap())
            .is_err()
    );
}

#[test]
fn momentum_state_survives_save_and_restore_between_instances() {
    let runtime = HostRuntime::new(HostConfig::default()).unwrap();
    let momentum = runtime
        .load(&stratbox_strategies::bytes("momentum").unwrap())
        .unwrap();
    let config = stratbox_strategies::momentum_config(POOL);
    let market = market();
    let mut old = StrategyInstance::new(&momentum, InstanceSpec::new("old", &config), NoHistory);
    old.start().unwrap();
    let fresh_state = old.save().unwrap().expect("momentum is stateful");
    let event = Event::NewBlock(BlockInfo {
        number: 7,
        timestamp: 84,
        hash: String::new(),
    });
    let mut snapshot = market.snapshot("momentum", "book");
    snapshot.last_sync_block = 7;
    old.call(&event, &snapshot, "t").unwrap();
    let state = old.save().unwrap().unwrap();
    assert_ne!(state, fresh_state, "deciding on block 7 changed nothing");
    let text = String::from_utf8(state.clone()).unwrap();
    assert!(text.contains("\"last_decision_block\":7"), "{text}");

    let mut new = StrategyInstance::new(&momentum, InstanceSpec::new("new", &config), NoHistory);
    new.start().unwrap();
    assert_eq!(new.save().unwrap().unwrap(), fresh_state);
    assert!(new.restore(&state).unwrap());
    assert_eq!(new.save().unwrap().unwrap(), state);

    // A state it cannot use is refused and leaves `init`'s state.
    let mut other = StrategyInstance::new(
        &momentum,
        InstanceSpec::new(
            "other",
            stratbox_strategies::momentum_config("0x0000000000000000000000000000000000000099"),
        ),
        NoHistory,
    );
    other.start().unwrap();
    let before = other.save().unwrap();
    let err = other.restore(&state).unwrap_err();
    assert!(err.to_string().contains("is for pool"), "{err}");
    assert_eq!(other.save().unwrap(), before);

    // A 0.1.0 component has no state to give or take.
    let clamm = runtime
        .load(&stratbox_strategies::bytes("clamm-maker").unwrap())
        .unwrap();
    let mut plain = StrategyInstance::new(
        &clamm,
        InstanceSpec::new("plain", stratbox_strategies::clamm_maker_config(POOL)),
        NoHistory,
    );
    plain.start().unwrap();
    assert_eq!(plain.save().unwrap(), None);
    assert!(!plain.restore(&state).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_switches_every_instance_between_two_events_and_hands_state_over() {
    let (catalog, sha) = Catalog::new();
    let (fleet, mut rollout, _rt) = setup(2);
    let momentum = stratbox_strategies::momentum_config("{pool}");

    let out = rollout
        .reconcile(
            &set(
                1,
                vec![deployment("m", "1", &sha["momentum"], 4, &momentum, 1)],
            ),
            &catalog,
        )
        .await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, OutcomeKind::Start);
    assert!(out[0].switched(), "{:?}", out[0].result);
    for n in 2..6 {
        assert_eq!(block(&fleet, n).await, only("m@1", 4));
    }

    // The same set again (a reconnect) changes nothing.
    assert!(
        rollout
            .reconcile(
                &set(
                    1,
                    vec![deployment("m", "1", &sha["momentum"], 4, &momentum, 1)]
                ),
                &catalog
            )
            .await
            .is_empty()
    );

    // Version 2 of the same stateful component: every new instance takes its state over.
    let out = rollout
        .reconcile(
            &set(
                2,
                vec![deployment("m", "2", &sha["momentum"], 4, &momentum, 2)],
            ),
            &catalog,
        )
        .await;
    assert_eq!(out[0].kind, OutcomeKind::Swap);
    let switch = out[0].result.as_ref().expect("switched");
    assert_eq!(switch.handed_over, 4, "{switch:?}");
    assert!(switch.hand_over_failures.is_empty(), "{switch:?}");
    assert_eq!(switch.pauses.len(), 2);
    assert!(switch.max_pause > std::time::Duration::ZERO);
    let report = out[0].to_report("test-host", rollout.markets());
    assert!(report.switched && report.max_pause_ns > 0 && report.markets == 1);
    assert_eq!(report.instances, 4);
    for n in 6..9 {
        assert_eq!(block(&fleet, n).await, only("m@2", 4));
    }

    // Version 3 is another component that is not stateful: it switches, no state moves.
    let clamm = stratbox_strategies::clamm_maker_config("{pool}");
    let out = rollout
        .reconcile(
            &set(
                3,
                vec![deployment("m", "3", &sha["clamm-maker"], 3, &clamm, 3)],
            ),
            &catalog,
        )
        .await;
    let switch = out[0].result.as_ref().expect("switched");
    assert_eq!(switch.handed_over, 0);
    assert_eq!(block(&fleet, 9).await, only("m@3", 3));
    assert_eq!(fleet.sizes().get("m"), Some(&3));

    // Gone from the set: stopped.
    let out = rollout.reconcile(&set(4, vec![]), &catalog).await;
    assert_eq!(out[0].kind, OutcomeKind::Stop);
    assert!(block(&fleet, 10).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_traps_in_init_switches_nothing_and_says_why() {
    let (catalog, sha) = Catalog::new();
    let (fleet, mut rollout, runtime) = setup(2);
    let momentum = stratbox_strategies::momentum_config("{pool}");
    let v1 = deployment("m", "1", &sha["momentum"], 3, &momentum, 1);
    rollout.reconcile(&set(1, vec![v1]), &catalog).await;
    assert_eq!(block(&fleet, 2).await, only("m@1", 3));
    let live_before = runtime.live_instances();

    let trap = stratbox_strategies::hostile_config("trap-init");
    let bad = deployment("m", "2", &sha["hostile"], 3, &trap, 2);
    let out = rollout
        .reconcile(&set(2, vec![bad.clone()]), &catalog)
        .await;
    assert_eq!(out.len(), 1);
    let reason = out[0].result.as_ref().expect_err("refused");
    assert!(
        reason.contains("m-0") && reason.contains("init"),
        "{reason}"
    );
    let report = out[0].to_report("test-host", rollout.markets());
    assert!(!report.switched);
    assert_eq!(report.error, *reason);
    assert_eq!(report.version, "2");
    // Still version 1 everywhere; the half-built version 2 is gone.
    assert_eq!(block(&fleet, 3).await, only("m@1", 3));
    assert_eq!(runtime.live_instances(), live_before);
    assert_eq!(rollout.versions().get("m").map(String::as_str), Some("1"));
    // The same failed revision resent (another strategy changed) is not retried.
    let other = deployment(
        "c",
        "1",
        &sha["clamm-maker"],
        1,
        &stratbox_strategies::clamm_maker_config("{pool}"),
        3,
    );
    let out = rollout.reconcile(&set(3, vec![bad, other]), &catalog).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "c");

    // Bytes that are not what the registry announced are refused before compiling.
    let forged = deployment("m", "4", &sha["clamm-maker"], 1, &momentum, 4);
    let mut wrong = Catalog(HashMap::new());
    wrong.0.insert(
        sha["clamm-maker"].clone(),
        stratbox_strategies::bytes("hostile").unwrap(),
    );
    let out = rollout.reconcile(&set(4, vec![forged]), &wrong).await;
    let reason = out[0].result.as_ref().expect_err("refused");
    assert!(reason.contains("hash to"), "{reason}");
    assert_eq!(block(&fleet, 4).await, only("m@1", 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_from_1_to_200_and_back_without_rebuilding_the_others() {
    let (catalog, sha) = Catalog::new();
    let (fleet, mut rollout, runtime) = setup(2);
    let config = stratbox_strategies::clamm_maker_config("{pool}");
    let at = |n: u32, rev: u64| deployment("c", "1", &sha["clamm-maker"], n, &config, rev);
    let base = runtime.live_instances();

    let out = rollout.reconcile(&set(1, vec![at(1, 1)]), &catalog).await;
    assert_eq!(out[0].kind, OutcomeKind::Start);
    assert_eq!(block(&fleet, 2).await, only("c@1", 1));

    let out = rollout.reconcile(&set(2, vec![at(200, 2)]), &catalog).await;
    assert_eq!(out[0].kind, OutcomeKind::Scale);
    assert!(out[0].result.is_ok(), "scaled up: {:?}", out[0].result);
    assert_eq!(out[0].instances, 200);
    assert_eq!(out[0].built, 199, "the running instance was rebuilt");
    assert_eq!(runtime.live_instances() - base, 200);
    assert_eq!(block(&fleet, 3).await, only("c@1", 200));
    assert_eq!(fleet.sizes().get("c"), Some(&200));

    let out = rollout.reconcile(&set(3, vec![at(1, 3)]), &catalog).await;
    assert_eq!(out[0].kind, OutcomeKind::Scale);
    assert!(out[0].result.is_ok(), "scaled down: {:?}", out[0].result);
    assert_eq!(block(&fleet, 4).await, only("c@1", 1));
    assert_eq!(runtime.live_instances() - base, 1);

    // Only the difference was built: the first instance ran throughout.
    assert_eq!(out[0].built, 0);
    let answers = fleet
        .dispatch(
            Event::NewBlock(BlockInfo {
                number: 5,
                timestamp: 60,
                hash: String::new(),
            }),
            "t",
        )
        .await
        .unwrap();
    let ids: Vec<&str> = answers
        .iter()
        .map(|a| a.identity.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["c-0"]);
}

/// A host's own strategies start like a deploy: built off the async threads (printing and
/// panicking in `init` need WASI calls that cannot run on one), each on its own. Those that
/// fail are refused with their reason and run nothing; the others run. On a current-thread
/// runtime: the one async thread there is must never run a guest.
#[tokio::test(flavor = "current_thread")]
async fn local_strategies_start_off_the_async_thread_and_a_failure_stops_only_itself() {
    let (fleet, mut rollout, _runtime) = setup(2);
    let hostile = stratbox_strategies::bytes("hostile").unwrap();
    let local = |name: &str, bytes: &[u8], config: String| LocalStrategy {
        name: name.into(),
        bytes: bytes.to_vec(),
        config,
        instances: 2,
    };
    let outcomes = rollout
        .start_local(vec![
            local(
                "maker",
                &stratbox_strategies::bytes("clamm-maker").unwrap(),
                stratbox_strategies::clamm_maker_config("{pool}"),
            ),
            local(
                "printer",
                &hostile,
                stratbox_strategies::hostile_config("print-init"),
            ),
            local(
                "panicker",
                &hostile,
                stratbox_strategies::hostile_config("panic-init"),
            ),
            local(
                "exiter",
                &hostile,
                stratbox_strategies::hostile_config("exit-init"),
            ),
        ])
        .await;
    let by_name: BTreeMap<&str, &Outcome> = outcomes.iter().map(|o| (o.name.as_str(), o)).collect();
    for name in ["maker", "printer"] {
        let o = by_name[name];
        assert!(o.switched(), "{name}: {:?}", o.result);
        assert_eq!((o.kind, o.instances), (OutcomeKind::Start, 2));
    }
    let panicker = by_name["panicker"].refusal().expect("refused");
    assert!(
        panicker.contains(stratbox_strategies::HOSTILE_PANIC_MESSAGE),
        "{panicker}"
    );
    assert_eq!(by_name["panicker"].error_kind, "init");
    let exiter = by_name["exiter"].refusal().expect("refused");
    assert!(exiter.contains("exited with code 3"), "{exiter}");
    assert_eq!(by_name["exiter"].instances, 0);
    assert_eq!(
        fleet.sizes(),
        BTreeMap::from([("maker".to_owned(), 2), ("printer".to_owned(), 2)])
    );
    // `{pool}` became the engine's first market.
    let versions = block(&fleet, 2).await;
    assert_eq!(versions.values().sum::<usize>(), 4, "{versions:?}");
}

/// An outcome of momentum's proposal `task`, with a markout when given.
fn outcome_for(
    strategy: &str,
    instance: &str,
    task: &str,
    markout_bps: Option<i32>,
) -> stratbox_host_service::OutcomeFor {
    use stratbox_host::wit::v0_2::{FinalState, Markout, Outcome};
    stratbox_host_service::OutcomeFor {
        strategy: strategy.into(),
        instance_id: instance.into(),
        outcome: Outcome {
            task_id: task.into(),
            event_id: "ev".into(),
            index: 0,
            state: FinalState::Simulated,
            reason_code: "ok".into(),
            simulated_amount0: "1000".into(),
            simulated_amount1: "2000".into(),
            filled_amount0: "1000".into(),
            filled_amount1: "2000".into(),
            slippage_bps: 3,
            gas_used: 110_000,
            block: 4,
            markout: markout_bps.map(|bps| Markout { blocks: 5, bps }),
        },
    }
}

fn u64_of(bytes: Option<Vec<u8>>) -> Option<u64> {
    Some(u64::from_le_bytes(bytes?.try_into().ok()?))
}

/// World 0.2.0 beside 0.1.0 in one fleet: momentum (0.2.0) is told its outcomes, learns
/// from toxic markouts in its memory, and the next version after a hot swap trades on the
/// same memory; clamm-maker as built for 0.1.0 before 0.2.0 existed runs unchanged and is not
/// told anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn momentum_is_told_outcomes_and_keeps_its_memory_across_a_hot_swap_beside_a_0_1_0_component()
{
    let (fleet, mut rollout, runtime) = setup(2);
    let book = Arc::new(stratbox_host_service::MemoryBook::in_process());
    rollout.memories_from(book.clone());
    let (catalog, shas) = Catalog::new();
    let momentum_v1 = stratbox_strategies::momentum_config(POOL);
    let maker = stratbox_strategies::clamm_maker_config(POOL);
    let outcomes = rollout
        .reconcile(
            &set(
                1,
                vec![
                    deployment("momentum", "1", &shas["momentum"], 2, &momentum_v1, 1),
                    deployment("maker", "1", &shas["clamm-maker-0.1.0"], 1, &maker, 1),
                ],
            ),
            &catalog,
        )
        .await;
    assert!(outcomes.iter().all(Outcome::switched), "{outcomes:?}");
    let old = runtime.load(&std::fs::read(OLD_MAKER).unwrap()).unwrap();
    assert_eq!(old.report().world, "stratbox:strategy/strategy@0.1.0");
    assert!(
        !old.report()
            .imports
            .iter()
            .any(|i| i.starts_with("stratbox:strategy/") && !i.ends_with("@0.1.0")),
        "{:?}",
        old.report()
    );
    assert_eq!(block(&fleet, 2).await.values().sum::<usize>(), 3);

    // The end of a task, then three toxic markouts (-50 bps: beyond momentum's -20).
    let mut items = vec![outcome_for("momentum", "momentum-1", "t1", None)];
    items
        .extend((0..3).map(|i| outcome_for("momentum", "momentum-1", &format!("t{i}"), Some(-50))));
    items.push(outcome_for("maker", "maker-0", "t9", None));
    let told = fleet.outcomes(items).await.unwrap();
    assert_eq!(told.len(), 5);
    for t in &told {
        let listened = t.result.as_ref().expect("on-outcome ran");
        // The instance that proposed was told; the 0.1.0 component does not listen.
        assert_eq!(*listened, t.item.strategy == "momentum", "{t:?}");
        assert_eq!(t.instance_id, t.item.instance_id);
    }
    let memory = book.memory("momentum").await.unwrap();
    assert_eq!(u64_of(memory.get("widen_bps")), Some(30));
    assert_eq!(u64_of(memory.get("outcomes:simulated")), Some(1));
    assert!(book.memory("maker").await.unwrap().keys().is_empty());

    // Hot swap to a new version (another config): its instances share the same memory...
    let momentum_v2 = momentum_v1.replace("\"lookback_blocks\":20", "\"lookback_blocks\":21");
    assert_ne!(
        momentum_v1, momentum_v2,
        "the config must change for a swap"
    );
    let outcomes = rollout
        .reconcile(
            &set(
                2,
                vec![
                    deployment("momentum", "2", &shas["momentum"], 2, &momentum_v2, 2),
                    deployment("maker", "1", &shas["clamm-maker-0.1.0"], 1, &maker, 1),
                ],
            ),
            &catalog,
        )
        .await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].kind, OutcomeKind::Swap);
    assert!(outcomes[0].switched(), "{outcomes:?}");
    assert!(book.memory("momentum").await.unwrap().same(&memory));
    assert_eq!(block(&fleet, 3).await.values().sum::<usize>(), 3);
    // ...and an outcome for an instance that is gone goes to another of the strategy,
    // which learns on from 30: one more toxic fill makes 40.
    let told = fleet
        .outcomes(vec![outcome_for("momentum", "momentum-7", "t5", Some(-80))])
        .await
        .unwrap();
    assert_eq!(told.len(), 1);
    assert!(matches!(told[0].result, Ok(true)), "{told:?}");
    assert!(told[0].instance_id.starts_with("momentum-"));
    assert_eq!(u64_of(memory.get("widen_bps")), Some(40));
    // The changes since the start are there to be stored, each key once.
    let changes = memory.take_changes();
    let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["outcomes:simulated", "widen_bps"]);
}
