//! `stratbox bench host`: the strategy host's hot paths, measured side by side in one run.
//!
//! - warm `on-event` call (a trivial guest, and clamm-maker on the sample walk);
//! - rebuild after a kill: fresh store, instantiate, `init`;
//!   both with the pooling allocator and with on-demand allocation;
//! - calls per second with 1, 10, 100 and 1,000 live clamm-maker instances, two threads;
//! - fuel metering's cost: the same clamm-maker calls on an engine with fuel and one with
//!   epochs only;
//! - fuel slices' cost (exact fuel at a deadline, host panics contained): the same calls
//!   and rebuilds run in slices and synchronously;
//! - memory per idle clamm-maker instance (1,000 live): PSS, RSS and private pages;
//! - the same maker written in Rust, Python (componentize-py) and JavaScript
//!   (ComponentizeJS), side by side: warm call, rebuild after a kill, first compile and
//!   compile from the host's cache directory, memory per idle instance.
//!
//! With `--instances N`, only the scale section runs instead: one host of N clamm-makers
//! (see [`scale`]).

use anyhow::Context;
use std::time::{Duration, Instant};
use stratbox_host::backtest::quantile;
use stratbox_host::capacity::{bytes, kib_field, mappings_in_use, thousands};
use stratbox_host::replay::{Replayer, SAMPLE_POOL, random_walk};
use stratbox_host::wit::{Event, Snapshot};
use stratbox_host::{
    Allocation, CallError, HostConfig, HostRuntime, InstanceSpec, LoadedComponent, NoHistory,
    StrategyInstance,
};

/// Events each idle instance has handled before memory is read.
const IDLE_CALLS: usize = 20;

#[derive(clap::Args)]
pub struct Args {
    /// Fewer iterations: a smoke run, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Print the rows as one JSON object too.
    #[arg(long)]
    json: bool,
    /// Run only the scale section, on one host of this many clamm-maker instances: its
    /// capacity, start time, memory per instance, per-event latency across all of them,
    /// calls/s, and the refusal of one instance more.
    #[arg(long)]
    instances: Option<usize>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || bench(args)).await?
}

struct Row {
    name: String,
    median: Option<Duration>,
    p99: Option<Duration>,
    value: String,
}

fn row(name: impl Into<String>, samples: &mut [Duration]) -> Row {
    samples.sort();
    Row {
        name: name.into(),
        median: Some(quantile(samples, 0.5)),
        p99: Some(quantile(samples, 0.99)),
        value: String::new(),
    }
}

fn value(name: impl Into<String>, value: String) -> Row {
    Row {
        name: name.into(),
        median: None,
        p99: None,
        value,
    }
}

fn fmt_us(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2} µs", d.as_nanos() as f64 / 1000.0))
        .unwrap_or_default()
}

fn runtime(
    allocation: Allocation,
    fuel: bool,
    max_instances: usize,
) -> anyhow::Result<HostRuntime> {
    Ok(HostRuntime::new(HostConfig {
        allocation,
        fuel,
        max_instances,
        ..HostConfig::default()
    })?)
}

/// Runs `measure` on an instance of each of two engines, interleaved in rounds so load on
/// the machine falls on both alike; returns both sample sets.
fn side_by_side(
    a: &mut StrategyInstance,
    b: &mut StrategyInstance,
    rounds: usize,
    mut measure: impl FnMut(&mut StrategyInstance) -> anyhow::Result<Vec<Duration>>,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        sa.extend(measure(a)?);
        sb.extend(measure(b)?);
    }
    Ok((sa, sb))
}

/// The two rows and the ratio of their medians.
fn compare(rows: &mut Vec<Row>, what: &str, a: Row, b: Row) {
    let ratio = a.median.unwrap_or_default().as_secs_f64()
        / b.median.unwrap_or_default().as_secs_f64().max(1e-12);
    rows.push(a);
    rows.push(b);
    rows.push(value(what, format!("{ratio:.2}x")));
}

fn load(runtime: &HostRuntime, name: &str) -> anyhow::Result<LoadedComponent> {
    let bytes = stratbox_strategies::bytes(name).with_context(|| name.to_string())?;
    Ok(runtime.load(&bytes)?)
}

fn maker_spec(i: usize) -> InstanceSpec {
    InstanceSpec::new(
        format!("clamm-maker/{i}"),
        stratbox_strategies::clamm_maker_config(SAMPLE_POOL),
    )
}

fn trivial_spec() -> InstanceSpec {
    InstanceSpec::new(
        "trivial",
        stratbox_strategies::hostile_config("well-behaved"),
    )
}

fn events(blocks: u64) -> Vec<(Event, Snapshot)> {
    let mut replayer = Replayer::new();
    random_walk(7, blocks)
        .into_iter()
        .map(|l| replayer.apply(l))
        .collect()
}

fn warm_calls(
    instance: &mut StrategyInstance,
    events: &[(Event, Snapshot)],
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let (e, s) = &events[i % events.len()];
        let start = Instant::now();
        instance.call(e, s, "bench").map_err(anyhow::Error::new)?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

fn rebuilds(instance: &mut StrategyInstance, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        instance.kill();
        let start = Instant::now();
        instance.start().map_err(anyhow::Error::new)?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// The process's memory from `/proc/self/smaps_rollup`, in bytes.
///
/// Why three figures: RSS counts a page once for every mapping of it, so the copy-on-write
/// initial memory image that every instance of a component maps is counted once per
/// instance, although it is in memory once. `private` is the pages only one mapping holds
/// (an instance's own writes; a page of the image read by a single instance counts here too,
/// so it errs high), and PSS adds each shared page divided by the number of its mappings:
/// what an instance costs with its fair share of the image. Targets are judged on PSS.
#[derive(Clone, Copy, Default)]
struct Memory {
    rss: u64,
    pss: u64,
    private: u64,
}

impl Memory {
    fn now() -> Self {
        let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
        let field = |name: &str| kib_field(&text, name).unwrap_or(0);
        Memory {
            rss: field("Rss"),
            pss: field("Pss"),
            private: field("Private_Clean") + field("Private_Dirty"),
        }
    }

    /// Growth from `before` to now, per instance.
    fn per_instance(before: Memory, n: usize) -> Memory {
        let after = Memory::now();
        let n = n.max(1) as u64;
        Memory {
            rss: after.rss.saturating_sub(before.rss) / n,
            pss: after.pss.saturating_sub(before.pss) / n,
            private: after.private.saturating_sub(before.private) / n,
        }
    }

    fn show(self) -> String {
        let kib = |b: u64| b as f64 / 1024.0;
        format!(
            "PSS {:.0} KiB (RSS {:.0}, private {:.0})",
            kib(self.pss),
            kib(self.rss),
            kib(self.private)
        )
    }
}

/// Idle instances as a live host holds them: started, then handed `calls` events each (a
/// collector or a cache that touches memory only after some calls shows up here).
fn idle_instances(
    component: &LoadedComponent,
    n: usize,
    events: &[(Event, Snapshot)],
    calls: usize,
) -> anyhow::Result<(Vec<StrategyInstance>, Memory)> {
    let before = Memory::now();
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        let mut inst = StrategyInstance::new(component, maker_spec(i), NoHistory);
        for c in 0..calls {
            let (e, s) = &events[(i + c) % events.len()];
            inst.call(e, s, "bench").map_err(anyhow::Error::new)?;
        }
        idle.push(inst);
    }
    let per = Memory::per_instance(before, n);
    Ok((idle, per))
}

/// Calls per second over `instances` live clamm-makers, split over two threads, each
/// thread calling its instances round-robin on the sample walk.
fn throughput(
    component: &LoadedComponent,
    instances: usize,
    events: &[(Event, Snapshot)],
    calls: usize,
) -> anyhow::Result<f64> {
    let threads = instances.min(2);
    let mut groups: Vec<Vec<StrategyInstance>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..instances {
        let mut inst = StrategyInstance::new(component, maker_spec(i), NoHistory);
        inst.start().map_err(anyhow::Error::new)?;
        groups[i % threads].push(inst);
    }
    let per_thread = calls / threads;
    let start = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = groups
            .iter_mut()
            .map(|group| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for i in 0..per_thread {
                        let (e, s) = &events[(i / group.len()) % events.len()];
                        let n = group.len();
                        group[i % n]
                            .call(e, s, "bench")
                            .map_err(anyhow::Error::new)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("bench thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((per_thread * threads) as f64 / start.elapsed().as_secs_f64())
}

/// A fresh directory for the compile rows' cache, removed when dropped.
struct CacheDir(std::path::PathBuf);

impl CacheDir {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "stratbox-bench-cache-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The clamm-maker of each language, by catalog name.
const MAKERS: [(&str, &str); 3] = [
    ("Rust", "clamm-maker"),
    ("Python", "clamm-maker-py"),
    ("JS", "clamm-maker-js"),
];

/// A Python component that does nothing (`strategies/python/empty`): its warm call is what
/// componentize-py's bindings and interpreter cost before any strategy code runs, so the
/// Python maker's figure can be read as this floor plus the SDK and the strategy.
const PYTHON_FLOOR: &str = "empty-py";

/// `r` with its median's ratio to Rust's as its value.
fn against_rust(r: Row, rust: Duration) -> Row {
    let ratio = r.median.unwrap_or_default().as_secs_f64() / rust.as_secs_f64().max(1e-12);
    Row {
        value: format!("{ratio:.1}x Rust"),
        ..r
    }
}

/// The three makers side by side: calls and rebuilds interleaved in rounds so a slow spell
/// falls on all of them, compiles timed into a fresh cache directory and then out of it,
/// and resident memory per idle instance, each language on a fresh pool.
fn languages(rows: &mut Vec<Row>, events: &[(Event, Snapshot)], quick: bool) -> anyhow::Result<()> {
    let (rounds, calls, rebuilds_n, idle_n) = if quick {
        (3, 100, 10, 10)
    } else {
        (10, 1_000, 50, 100)
    };
    let cache = CacheDir::new()?;
    let cached = |dir: &std::path::Path| {
        HostRuntime::new(HostConfig {
            cache_dir: Some(dir.to_path_buf()),
            max_instances: 16,
            ..HostConfig::default()
        })
    };
    let mut compiles = Vec::new();
    for (lang, name) in MAKERS {
        let bytes = stratbox_strategies::bytes(name).with_context(|| name.to_string())?;
        let first = cached(cache.path())?;
        let t = Instant::now();
        first.load(&bytes)?;
        let cold = t.elapsed();
        let second = cached(cache.path())?;
        let t = Instant::now();
        second.load(&bytes)?;
        compiles.push((lang, bytes.len(), cold, t.elapsed()));
    }

    let shared = runtime(Allocation::Pooling, true, 64)?;
    let mut instances = Vec::new();
    // The empty Python world runs in the same rounds: the floor under the Python maker.
    let floor = [("Python", "empty world", PYTHON_FLOOR)];
    for (lang, what, name) in MAKERS
        .map(|(lang, name)| (lang, "clamm-maker", name))
        .into_iter()
        .chain(floor)
    {
        let component = load(&shared, name)?;
        let mut instance = StrategyInstance::new(&component, maker_spec(0), NoHistory);
        instance.start().map_err(anyhow::Error::new)?;
        warm_calls(&mut instance, events, calls / 10)?;
        instances.push((lang, what, instance, Vec::new(), Vec::new()));
    }
    for _ in 0..rounds {
        for (_, _, instance, call_samples, rebuild_samples) in instances.iter_mut() {
            call_samples.extend(warm_calls(instance, events, calls / rounds)?);
            rebuild_samples.extend(rebuilds(instance, (rebuilds_n / rounds).max(1))?);
        }
    }
    // Rust comes first in MAKERS: its medians are what the others are compared with.
    let mut rust: Option<(Duration, Duration)> = None;
    let mut python_call = None;
    let mut python_floor = None;
    for (lang, what, _, call_samples, rebuild_samples) in instances.iter_mut() {
        let call = row(format!("warm call, {what}, {lang}"), call_samples);
        if *lang == "Python" {
            match *what {
                "clamm-maker" => python_call = call.median,
                _ => python_floor = call.median,
            }
        }
        let rebuild = row(
            format!("rebuild after kill, {what}, {lang}"),
            rebuild_samples,
        );
        let (rust_call, rust_rebuild) = *rust.get_or_insert((
            call.median.unwrap_or_default(),
            rebuild.median.unwrap_or_default(),
        ));
        rows.push(against_rust(call, rust_call));
        rows.push(against_rust(rebuild, rust_rebuild));
    }
    drop(instances);
    drop(shared);
    for (lang, size, cold, warm) in compiles {
        rows.push(value(
            format!(
                "compile, clamm-maker, {lang} ({:.1} MB): first / cached",
                size as f64 / 1e6
            ),
            format!(
                "{:.0} / {:.1} ms",
                cold.as_secs_f64() * 1e3,
                warm.as_secs_f64() * 1e3
            ),
        ));
    }

    // Memory last, each language on a fresh pool (freed slots keep touched pages).
    let mut python_idle = None;
    for (lang, name) in MAKERS {
        let fresh = runtime(Allocation::Pooling, true, idle_n + 1)?;
        let component = load(&fresh, name)?;
        let (idle, per) = idle_instances(&component, idle_n, events, IDLE_CALLS)?;
        rows.push(value(
            format!("memory per idle clamm-maker, {lang} ({idle_n} live, {IDLE_CALLS} calls each)"),
            per.show(),
        ));
        if lang == "Python" {
            python_idle = Some(per.pss);
        }
        drop(idle);
    }
    rows.push(target(
        "target: warm Python call under 15 µs",
        python_call.map(|d| {
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            let floor = python_floor.map_or(String::new(), |f| {
                format!("; the empty world alone: {:.1} µs", us(f))
            });
            (
                d < Duration::from_micros(15),
                format!("{:.1} µs{floor}", us(d)),
            )
        }),
    ));
    rows.push(target(
        "target: idle Python instance under 2 MiB (PSS)",
        python_idle.map(|b| (b < 2 << 20, format!("{:.0} KiB", b as f64 / 1024.0))),
    ));
    Ok(())
}

/// A target's verdict row: met or not met, with the figure it was judged on.
fn target(name: &str, verdict: Option<(bool, String)>) -> Row {
    let text = match verdict {
        Some((true, figure)) => format!("met ({figure})"),
        Some((false, figure)) => format!("NOT met ({figure})"),
        None => "not measured".to_string(),
    };
    value(name, text)
}

/// Events each instance of the scale section is handed.
const SCALE_EVENTS: usize = 20;

/// One host of `n` clamm-makers, as a live host holds them: what its capacity check
/// computed, how long they take to start and how much memory and how many mappings each
/// holds (measured, beside the figures the check assumes), each of `SCALE_EVENTS` events
/// delivered to all of them on two threads (every call's latency, and the whole fan-out's),
/// and instance `n + 1`, which must be refused for the pool's `max_instances` while the
/// others go on working.
fn scale(rows: &mut Vec<Row>, n: usize) -> anyhow::Result<()> {
    anyhow::ensure!(n > 0, "--instances must be at least 1");
    let maps_before = mappings_in_use();
    let t = Instant::now();
    let runtime = runtime(Allocation::Pooling, true, n)
        .with_context(|| format!("building a host for {n} instances"))?;
    let built = t.elapsed();
    let maps_pools = mappings_in_use().saturating_sub(maps_before);
    let capacity = runtime.capacity().clone();
    let main = &capacity.pools[0];
    let at_start: u64 = capacity.pools.iter().map(|p| p.mappings_at_start).sum();
    rows.push(value(
        "capacity: memory mappings needed / vm.max_map_count",
        capacity.mappings.show(thousands),
    ));
    rows.push(value(
        "capacity: address space needed / allowed",
        capacity.address_space.show(bytes),
    ));
    rows.push(value(
        "capacity: MemAvailable (reported, not checked)",
        capacity
            .mem_available
            .map_or_else(|| "unknown".to_string(), bytes),
    ));
    rows.push(value(
        format!("build the host (pools for {} + large)", thousands(n as u64)),
        format!("{:.1} ms", built.as_secs_f64() * 1e3),
    ));
    rows.push(value(
        "memory mappings made with the pools: measured (assumed)",
        format!("{} ({})", thousands(maps_pools), thousands(at_start)),
    ));

    let maker = load(&runtime, "clamm-maker")?;
    let maps_loaded = mappings_in_use();
    let before = Memory::now();
    let mut starts = Vec::with_capacity(n);
    let mut instances = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let mut instance = StrategyInstance::new(&maker, maker_spec(i), NoHistory);
        let s = Instant::now();
        instance
            .start()
            .map_err(anyhow::Error::new)
            .with_context(|| format!("starting instance {} of {n}", i + 1))?;
        starts.push(s.elapsed());
        instances.push(instance);
    }
    let start_all = t.elapsed();
    let started = Memory::per_instance(before, n);
    let maps_per_instance = mappings_in_use().saturating_sub(maps_loaded) as f64 / n as f64;
    rows.push(value(
        format!("start {} clamm-maker instances, all", thousands(n as u64)),
        format!("{:.0} ms", start_all.as_secs_f64() * 1e3),
    ));
    rows.push(row(
        "start one instance (store, instantiate, init)",
        &mut starts,
    ));
    rows.push(value("memory per instance, started", started.show()));
    rows.push(value(
        "memory mappings per instance: measured (assumed)",
        format!("{maps_per_instance:.2} ({})", main.mappings_per_instance),
    ));

    // Each event to every instance, the instances split over two threads.
    let walk = events(400);
    let walk = &walk[..SCALE_EVENTS.min(walk.len())];
    let threads = n.min(2);
    let mut groups: Vec<Vec<StrategyInstance>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, instance) in instances.into_iter().enumerate() {
        groups[i % threads].push(instance);
    }
    let mut calls = Vec::with_capacity(n * walk.len());
    let mut fan_outs = Vec::with_capacity(walk.len());
    let t = Instant::now();
    for (event, snapshot) in walk {
        let fan_out = Instant::now();
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let handles: Vec<_> = groups
                .iter_mut()
                .map(|group| {
                    scope.spawn(move || -> anyhow::Result<Vec<Duration>> {
                        let mut samples = Vec::with_capacity(group.len());
                        for instance in group.iter_mut() {
                            let call = Instant::now();
                            instance
                                .call(event, snapshot, "bench")
                                .map_err(anyhow::Error::new)?;
                            samples.push(call.elapsed());
                        }
                        Ok(samples)
                    })
                })
                .collect();
            for h in handles {
                calls.extend(
                    h.join()
                        .map_err(|_| anyhow::anyhow!("bench thread panicked"))??,
                );
            }
            Ok(())
        })?;
        fan_outs.push(fan_out.elapsed());
    }
    let per_s = calls.len() as f64 / t.elapsed().as_secs_f64();
    let called = Memory::per_instance(before, n);
    let k = walk.len();
    rows.push(row(
        format!(
            "on-event call, across all {} instances",
            thousands(n as u64)
        ),
        &mut calls,
    ));
    rows.push(row(
        format!(
            "one event to all {} instances, 2 threads",
            thousands(n as u64)
        ),
        &mut fan_outs,
    ));
    rows.push(value(
        format!("calls/s, {} instances, 2 threads", thousands(n as u64)),
        format!("{per_s:.0}"),
    ));
    rows.push(value(
        format!("memory per instance, after {k} events each"),
        called.show(),
    ));

    // One more than the pool holds: refused for `max_instances`, and the host goes on.
    let mut extra = StrategyInstance::new(&maker, maker_spec(n), NoHistory);
    let refusal = match extra.start() {
        Err(e @ CallError::PoolExhausted(_)) => e.to_string(),
        Err(e) => anyhow::bail!(
            "instance {} was refused, but not for the pool's max_instances: {e}",
            n + 1
        ),
        Ok(()) => anyhow::bail!("instance {} started past max_instances {n}", n + 1),
    };
    rows.push(value(
        format!("instance {} refused", thousands(n as u64 + 1)),
        refusal,
    ));
    let (event, snapshot) = &walk[0];
    let first = groups
        .first_mut()
        .and_then(|g| g.first_mut())
        .context("no instance to call")?;
    let t = Instant::now();
    first
        .call(event, snapshot, "bench")
        .map_err(anyhow::Error::new)
        .context("calling an existing instance after the refusal")?;
    rows.push(value(
        format!(
            "after the refusal: a call to instance 1 ({} live)",
            thousands(runtime.live_instances() as u64)
        ),
        format!("ok, {:.1} µs", t.elapsed().as_secs_f64() * 1e6),
    ));
    Ok(())
}

fn print(rows: &[Row], json: bool) -> anyhow::Result<()> {
    println!(
        "{:<62} {:>12} {:>12} {:>12}",
        "measurement", "median", "p99", "value"
    );
    println!("{}", "-".repeat(101));
    for r in rows {
        println!(
            "{:<62} {:>12} {:>12} {:>12}",
            r.name,
            fmt_us(r.median),
            fmt_us(r.p99),
            r.value
        );
    }
    if json {
        let json: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "median_ns": r.median.map(|d| d.as_nanos() as u64),
                    "p99_ns": r.p99.map(|d| d.as_nanos() as u64),
                    "value": r.value,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&json)?);
    }
    Ok(())
}

fn bench(args: Args) -> anyhow::Result<()> {
    if let Some(n) = args.instances {
        let mut rows = Vec::new();
        scale(&mut rows, n)?;
        return print(&rows, args.json);
    }
    let (warm_n, rebuild_n, calls_n) = if args.quick {
        (2_000, 200, 20_000)
    } else {
        (50_000, 5_000, 200_000)
    };
    let events = events(400);
    let mut rows = Vec::new();

    let pooled = runtime(Allocation::Pooling, true, 1_100)?;
    let on_demand = runtime(Allocation::OnDemand, true, 1_100)?;
    let epochs_only = runtime(Allocation::Pooling, false, 16)?;

    for (label, rt) in [("pooling", &pooled), ("on-demand", &on_demand)] {
        let trivial = load(rt, "hostile")?;
        let maker = load(rt, "clamm-maker")?;
        let mut t = StrategyInstance::new(&trivial, trivial_spec(), NoHistory);
        t.start().map_err(anyhow::Error::new)?;
        warm_calls(&mut t, &events, warm_n / 10)?;
        rows.push(row(
            format!("warm call, trivial guest ({label})"),
            &mut warm_calls(&mut t, &events, warm_n)?,
        ));
        let mut m = StrategyInstance::new(&maker, maker_spec(0), NoHistory);
        m.start().map_err(anyhow::Error::new)?;
        warm_calls(&mut m, &events, warm_n / 10)?;
        rows.push(row(
            format!("warm call, clamm-maker ({label})"),
            &mut warm_calls(&mut m, &events, warm_n)?,
        ));
        rebuilds(&mut t, rebuild_n / 10)?;
        rows.push(row(
            format!("rebuild after kill, trivial guest ({label})"),
            &mut rebuilds(&mut t, rebuild_n)?,
        ));
        rows.push(row(
            format!("rebuild after kill, clamm-maker ({label})"),
            &mut rebuilds(&mut m, rebuild_n)?,
        ));
    }

    // Fuel on vs epochs only: the same clamm-maker calls on both engines.
    let with_fuel = load(&pooled, "clamm-maker")?;
    let without_fuel = load(&epochs_only, "clamm-maker")?;
    let mut a = StrategyInstance::new(&with_fuel, maker_spec(0), NoHistory);
    let mut b = StrategyInstance::new(&without_fuel, maker_spec(0), NoHistory);
    a.start().map_err(anyhow::Error::new)?;
    b.start().map_err(anyhow::Error::new)?;
    warm_calls(&mut a, &events, warm_n / 10)?;
    warm_calls(&mut b, &events, warm_n / 10)?;
    let mut fa = warm_calls(&mut a, &events, warm_n)?;
    let mut fb = warm_calls(&mut b, &events, warm_n)?;
    compare(
        &mut rows,
        "fuel metering cost (median ratio)",
        row("warm call, clamm-maker, fuel + epochs", &mut fa),
        row("warm call, clamm-maker, epochs only", &mut fb),
    );
    drop((a, b));

    // Fuel slices vs synchronous calls: the same clamm-maker calls and rebuilds.
    let synchronous = HostRuntime::new(HostConfig {
        max_instances: 16,
        fuel_slice: 0,
        ..HostConfig::default()
    })?;
    let sliced = load(&pooled, "clamm-maker")?;
    let plain = load(&synchronous, "clamm-maker")?;
    let mut a = StrategyInstance::new(&sliced, maker_spec(0), NoHistory);
    let mut b = StrategyInstance::new(&plain, maker_spec(0), NoHistory);
    a.start().map_err(anyhow::Error::new)?;
    b.start().map_err(anyhow::Error::new)?;
    let (mut ca, mut cb) =
        side_by_side(&mut a, &mut b, 10, |i| warm_calls(i, &events, warm_n / 10))?;
    compare(
        &mut rows,
        "fuel slices cost, warm call (median ratio)",
        row("warm call, clamm-maker, fuel slices", &mut ca),
        row("warm call, clamm-maker, synchronous", &mut cb),
    );
    let (mut ra, mut rb) = side_by_side(&mut a, &mut b, 10, |i| rebuilds(i, rebuild_n / 10))?;
    compare(
        &mut rows,
        "fuel slices cost, rebuild (median ratio)",
        row("rebuild after kill, clamm-maker, fuel slices", &mut ra),
        row("rebuild after kill, clamm-maker, synchronous", &mut rb),
    );
    drop((a, b));

    // Throughput with many instances.
    let maker = load(&pooled, "clamm-maker")?;
    for n in [1usize, 10, 100, 1_000] {
        let per_s = throughput(&maker, n, &events, calls_n)?;
        rows.push(value(
            format!("calls/s, {n} clamm-maker instances, 2 threads"),
            format!("{per_s:.0}"),
        ));
    }

    // Resident memory per idle instance, on a fresh pool: slots freed by the throughput
    // runs above keep their touched pages resident (see `keep_resident_bytes`).
    drop(maker);
    let fresh = runtime(Allocation::Pooling, true, 1_100)?;
    let maker = load(&fresh, "clamm-maker")?;
    let (idle, per) = idle_instances(&maker, 1_000, &events, IDLE_CALLS)?;
    rows.push(value(
        format!("memory per idle clamm-maker (1,000 live, {IDLE_CALLS} calls each, pooling)"),
        per.show(),
    ));
    drop(idle);

    languages(&mut rows, &events, args.quick)?;
    print(&rows, args.json)
}
