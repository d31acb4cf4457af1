//! The strategy instances one host runs, spread over worker threads, and how they are
//! changed while events flow: hot swap to a new version, scale up and down.
//!
//! Each worker thread owns a shard of the instances and receives the same sequence of
//! commands: `Event`s and `Replace`s. Because every shard sees the same sequence, a swap
//! queued between events N and N+1 takes effect for every instance at that boundary: event
//! N is handled by the old version everywhere, N+1 by the new one everywhere, and a call in
//! flight always finishes on the instance that started it. New instances are built and
//! `init`-ed before the swap is queued, so the switch itself only moves pointers (and,
//! when both versions export `save`/`restore`, hands each old instance's state to the new
//! instance of the same id). Commands reach every shard in one order because they are
//! queued under one lock: two tasks dispatching and swapping at once cannot make shards
//! disagree about which side of the swap an event is on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use stratbox_host::wit::v0_2::Outcome;
use stratbox_host::wit::{Event, Snapshot};
use stratbox_host::{CallError, ValidatedProposal};
use tokio::sync::oneshot;

use crate::execution::OutcomeFor;
use crate::market::Market;

/// One live strategy instance, as the fleet drives it. Implemented for the host's
/// `StrategyInstance`; tests use scripted ones.
pub trait Runner: Send + 'static {
    /// Handles one event with the market as of `snapshot`; an `Err` counts toward quarantine.
    fn call(
        &mut self,
        event: &Event,
        snapshot: &Snapshot,
        trace_id: &str,
    ) -> Result<RunOutput, CallError>;

    /// Exports `save`/`restore`: its state can travel to the instance replacing it.
    fn is_stateful(&self) -> bool {
        false
    }

    /// The state to hand over; `Ok(None)` when there is none.
    fn save(&mut self) -> Result<Option<Vec<u8>>, CallError> {
        Ok(None)
    }

    /// Takes over an old instance's state; `Ok(false)` when this runner cannot.
    fn restore(&mut self, _state: &[u8]) -> Result<bool, CallError> {
        Ok(false)
    }

    /// Tells the instance what became of a proposal; `Ok(false)` when it does not listen
    /// (a 0.1.x component).
    fn on_outcome(&mut self, _outcome: &Outcome) -> Result<bool, CallError> {
        Ok(false)
    }
}

impl Runner for stratbox_host::StrategyInstance {
    fn call(
        &mut self,
        event: &Event,
        snapshot: &Snapshot,
        trace_id: &str,
    ) -> Result<RunOutput, CallError> {
        stratbox_host::StrategyInstance::call(self, event, snapshot, trace_id).map(|out| {
            RunOutput {
                proposals: out.proposals,
                fuel_used: out.fuel_used,
            }
        })
    }

    fn is_stateful(&self) -> bool {
        stratbox_host::StrategyInstance::is_stateful(self)
    }

    fn save(&mut self) -> Result<Option<Vec<u8>>, CallError> {
        stratbox_host::StrategyInstance::save(self)
    }

    fn restore(&mut self, state: &[u8]) -> Result<bool, CallError> {
        stratbox_host::StrategyInstance::restore(self, state)
    }

    fn on_outcome(&mut self, outcome: &Outcome) -> Result<bool, CallError> {
        stratbox_host::StrategyInstance::on_outcome(self, outcome)
    }
}

/// What one successful call produced.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// Proposals made, validated by the runtime.
    pub proposals: Vec<ValidatedProposal>,
    /// Fuel burned, for stats.
    pub fuel_used: u64,
}

/// Who an instance is, for envelopes and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Strategy name.
    pub strategy: String,
    /// Strategy version running.
    pub version: String,
    /// Names the instance in proposals, logs and the live table.
    pub instance_id: String,
    /// The account the instance trades for (0x address).
    pub account: String,
}

/// An instance handed to the fleet: who it is and how to call it.
pub struct Member {
    /// Who it is.
    pub identity: Identity,
    /// How to call it; moved onto a worker thread.
    pub runner: Box<dyn Runner>,
}

/// What one instance did with one event.
#[derive(Debug)]
pub struct Answer {
    /// Which instance answered.
    pub identity: Identity,
    /// What it produced, or why the call failed.
    pub result: Result<RunOutput, CallError>,
    /// Time the call took on its worker.
    pub elapsed: Duration,
}

enum Command {
    Event {
        event: Arc<Event>,
        trace_id: Arc<str>,
        reply: oneshot::Sender<Vec<Answer>>,
    },
    /// Replace every instance of `strategy` in this shard with `members` (possibly none).
    Replace {
        strategy: String,
        members: Vec<Member>,
        reply: oneshot::Sender<ShardSwitch>,
    },
    /// Add `members` beside the instances this shard already runs.
    Add {
        members: Vec<Member>,
        reply: oneshot::Sender<ShardSwitch>,
    },
    /// Tell instances of this shard what became of their proposals.
    Outcomes {
        items: Vec<OutcomeFor>,
        reply: oneshot::Sender<Vec<Told>>,
    },
    /// Drop the instances of `strategy` with these ids.
    Remove {
        strategy: String,
        ids: Vec<String>,
        reply: oneshot::Sender<ShardSwitch>,
    },
}

/// What telling one outcome did.
#[derive(Debug)]
pub struct Told {
    /// The outcome and whom it was for.
    pub item: OutcomeFor,
    /// The instance told (the proposer, or another of its strategy).
    pub instance_id: String,
    /// `Ok(false)`: the instance does not listen (a 0.1.x component).
    pub result: Result<bool, CallError>,
}

/// What one shard did at a switch.
#[derive(Debug, Default)]
struct ShardSwitch {
    pause: Duration,
    handed_over: usize,
    hand_over_failures: Vec<String>,
}

/// What a swap or scale did, over all shards.
#[derive(Debug, Clone, Default)]
pub struct Switch {
    /// The longest time any shard held its events back for the switch: what an event
    /// arriving at that moment waited. Measured in the shard's loop, around the switch.
    pub max_pause: Duration,
    /// Per shard, in shard order.
    pub pauses: Vec<Duration>,
    /// New instances that took over an old instance's state.
    pub handed_over: usize,
    /// Why some state did not travel (the new instances still run, from `init`'s state).
    pub hand_over_failures: Vec<String>,
}

/// Counters the live table and the metrics endpoint read.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Events dispatched.
    pub events: AtomicU64,
    /// Instance calls made.
    pub calls: AtomicU64,
    /// Fuel burned over all calls.
    pub fuel: AtomicU64,
    /// Proposals made.
    pub proposals: AtomicU64,
    /// Failed calls by `CallError::kind()`; read through [`FleetStats::errors`].
    pub errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl FleetStats {
    /// A copy of the error counts (taking the lock briefly).
    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The instances of one host.
pub struct Fleet {
    shards: Vec<std::sync::mpsc::Sender<Command>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    market: Arc<RwLock<Market>>,
    stats: Arc<FleetStats>,
    /// Which shard runs each instance: strategy -> instance id -> shard. Lets a new
    /// version's instance land where the old one of the same id is (to take its state),
    /// and spreads added instances evenly.
    placement: Mutex<BTreeMap<String, BTreeMap<String, usize>>>,
    /// Held while a command is queued to every shard, so all shards see one order.
    order: Mutex<()>,
}

/// Why the fleet could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A worker panicked or exited; the fleet cannot run its instances any more.
    #[error("a fleet worker thread has stopped")]
    WorkerGone,
    /// The OS refused a new thread.
    #[error("could not start a worker thread: {0}")]
    Spawn(std::io::Error),
}

impl Fleet {
    /// Starts `workers` threads (at least one) sharing `market`.
    pub fn start(workers: usize, market: Arc<RwLock<Market>>) -> Result<Self, FleetError> {
        let stats = Arc::new(FleetStats::default());
        let mut shards = Vec::new();
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let (tx, rx) = std::sync::mpsc::channel();
            let market = market.clone();
            let stats = stats.clone();
            let handle = std::thread::Builder::new()
                .name(format!("fleet-{i}"))
                .spawn(move || shard_loop(rx, market, stats))
                .map_err(FleetError::Spawn)?;
            shards.push(tx);
            handles.push(handle);
        }
        Ok(Fleet {
            shards,
            workers: handles,
            market,
            stats,
            placement: Mutex::new(BTreeMap::new()),
            order: Mutex::new(()),
        })
    }

    /// The market snapshots are built from; the service updates it before dispatching.
    pub fn market(&self) -> &Arc<RwLock<Market>> {
        &self.market
    }

    /// Counters, shared with the metrics endpoint.
    pub fn stats(&self) -> &Arc<FleetStats> {
        &self.stats
    }

    /// Instances per strategy.
    pub fn sizes(&self) -> BTreeMap<String, usize> {
        self.placement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(strategy, ids)| (strategy.clone(), ids.len()))
            .collect()
    }

    /// Worker threads, each a shard of the instances.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Gives `event` to every instance; answers in a stable order (shard, then position).
    pub async fn dispatch(&self, event: Event, trace_id: &str) -> Result<Vec<Answer>, FleetError> {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(event);
        let trace_id: Arc<str> = Arc::from(trace_id);
        let mut replies = Vec::with_capacity(self.shards.len());
        {
            let _order = self.order.lock().unwrap_or_else(|p| p.into_inner());
            for shard in &self.shards {
                let (reply, rx) = oneshot::channel();
                shard
                    .send(Command::Event {
                        event: event.clone(),
                        trace_id: trace_id.clone(),
                        reply,
                    })
                    .map_err(|_| FleetError::WorkerGone)?;
                replies.push(rx);
            }
        }
        let mut answers = Vec::new();
        for rx in replies {
            answers.extend(rx.await.map_err(|_| FleetError::WorkerGone)?);
        }
        Ok(answers)
    }

    /// Switches `strategy` to `members` (already built and initialised) between two
    /// events. A new member whose instance id an old one had goes to that shard and, when
    /// both are stateful, takes over the old one's state.
    pub async fn replace(
        &self,
        strategy: &str,
        members: Vec<Member>,
    ) -> Result<Switch, FleetError> {
        let n = self.shards.len();
        let mut parts: Vec<Vec<Member>> = (0..n).map(|_| Vec::new()).collect();
        let mut placed = BTreeMap::new();
        {
            let placement = self.placement.lock().unwrap_or_else(|p| p.into_inner());
            let old = placement.get(strategy);
            let mut load = vec![0usize; n];
            for m in members {
                let shard = old
                    .and_then(|o| o.get(&m.identity.instance_id).copied())
                    .filter(|s| *s < n)
                    .unwrap_or_else(|| least_loaded(&load));
                load[shard] += 1;
                placed.insert(m.identity.instance_id.clone(), shard);
                parts[shard].push(m);
            }
        }
        let switch = self
            .to_every_shard(parts, |members, reply| Command::Replace {
                strategy: strategy.to_owned(),
                members,
                reply,
            })
            .await?;
        let mut placement = self.placement.lock().unwrap_or_else(|p| p.into_inner());
        if placed.is_empty() {
            placement.remove(strategy);
        } else {
            placement.insert(strategy.to_owned(), placed);
        }
        Ok(switch)
    }

    /// Adds instances of their strategies beside the running ones (a scale-up); nothing
    /// already running is touched.
    pub async fn add(&self, members: Vec<Member>) -> Result<Switch, FleetError> {
        let n = self.shards.len();
        let mut parts: Vec<Vec<Member>> = (0..n).map(|_| Vec::new()).collect();
        let mut placed: Vec<(String, String, usize)> = Vec::new();
        {
            let placement = self.placement.lock().unwrap_or_else(|p| p.into_inner());
            let mut loads: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for m in members {
                let load = loads.entry(m.identity.strategy.clone()).or_insert_with(|| {
                    let mut load = vec![0usize; n];
                    for shard in placement
                        .get(&m.identity.strategy)
                        .into_iter()
                        .flat_map(|ids| ids.values())
                    {
                        if let Some(l) = load.get_mut(*shard) {
                            *l += 1;
                        }
                    }
                    load
                });
                let shard = least_loaded(load);
                load[shard] += 1;
                placed.push((
                    m.identity.strategy.clone(),
                    m.identity.instance_id.clone(),
                    shard,
                ));
                parts[shard].push(m);
            }
        }
        let switch = self
            .to_every_shard(parts, |members, reply| Command::Add { members, reply })
            .await?;
        let mut placement = self.placement.lock().unwrap_or_else(|p| p.into_inner());
        for (strategy, id, shard) in placed {
            placement.entry(strategy).or_default().insert(id, shard);
        }
        Ok(switch)
    }

    /// Drops the instances of `strategy` with these ids (a scale-down); the others go on.
    pub async fn remove(&self, strategy: &str, ids: &[String]) -> Result<Switch, FleetError> {
        let parts: Vec<Vec<String>> = (0..self.shards.len()).map(|_| ids.to_vec()).collect();
        let switch = self
            .to_every_shard(parts, |ids, reply| Command::Remove {
                strategy: strategy.to_owned(),
                ids,
                reply,
            })
            .await?;
        let mut placement = self.placement.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(placed) = placement.get_mut(strategy) {
            for id in ids {
                placed.remove(id);
            }
            if placed.is_empty() {
                placement.remove(strategy);
            }
        }
        Ok(switch)
    }

    /// Tells each outcome to the instance that made the proposal, or, if that one is gone
    /// (scaled down, or replaced under another id), to one instance of its strategy; an
    /// outcome of a strategy no longer running is dropped. Queued under the order lock like
    /// an event, so it lands between two events on every shard.
    pub async fn outcomes(&self, items: Vec<OutcomeFor>) -> Result<Vec<Told>, FleetError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut parts: Vec<Vec<OutcomeFor>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        {
            let placement = self.placement.lock().unwrap_or_else(|p| p.into_inner());
            for item in items {
                let Some(ids) = placement.get(&item.strategy) else {
                    continue;
                };
                let shard = ids
                    .get(&item.instance_id)
                    .or_else(|| ids.values().next())
                    .copied();
                if let Some(part) = shard.and_then(|s| parts.get_mut(s)) {
                    part.push(item);
                }
            }
        }
        let mut replies = Vec::new();
        {
            let _order = self.order.lock().unwrap_or_else(|p| p.into_inner());
            for (shard, items) in self.shards.iter().zip(parts) {
                if items.is_empty() {
                    continue;
                }
                let (reply, rx) = oneshot::channel();
                shard
                    .send(Command::Outcomes { items, reply })
                    .map_err(|_| FleetError::WorkerGone)?;
                replies.push(rx);
            }
        }
        let mut told = Vec::new();
        for rx in replies {
            told.extend(rx.await.map_err(|_| FleetError::WorkerGone)?);
        }
        Ok(told)
    }

    /// Queues one command per shard (under the order lock) and gathers what they did.
    async fn to_every_shard<P>(
        &self,
        parts: Vec<P>,
        command: impl Fn(P, oneshot::Sender<ShardSwitch>) -> Command,
    ) -> Result<Switch, FleetError> {
        let mut replies = Vec::with_capacity(self.shards.len());
        {
            let _order = self.order.lock().unwrap_or_else(|p| p.into_inner());
            for (shard, part) in self.shards.iter().zip(parts) {
                let (reply, rx) = oneshot::channel();
                shard
                    .send(command(part, reply))
                    .map_err(|_| FleetError::WorkerGone)?;
                replies.push(rx);
            }
        }
        let mut switch = Switch::default();
        for rx in replies {
            let shard = rx.await.map_err(|_| FleetError::WorkerGone)?;
            switch.max_pause = switch.max_pause.max(shard.pause);
            switch.pauses.push(shard.pause);
            switch.handed_over += shard.handed_over;
            switch.hand_over_failures.extend(shard.hand_over_failures);
        }
        Ok(switch)
    }
}

/// The first shard with the fewest instances.
fn least_loaded(load: &[usize]) -> usize {
    load.iter()
        .enumerate()
        .min_by_key(|(i, l)| (**l, *i))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.shards.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn shard_loop(
    rx: std::sync::mpsc::Receiver<Command>,
    market: Arc<RwLock<Market>>,
    stats: Arc<FleetStats>,
) {
    let mut members: Vec<Member> = Vec::new();
    while let Ok(command) = rx.recv() {
        match command {
            Command::Event {
                event,
                trace_id,
                reply,
            } => {
                let mut answers = Vec::with_capacity(members.len());
                // One snapshot per book (strategy, account) per event, built under a short
                // read lock: instances of one book see the same balances.
                let mut snapshots: BTreeMap<(String, String), Snapshot> = BTreeMap::new();
                {
                    let market = market.read().unwrap_or_else(|p| p.into_inner());
                    for m in &members {
                        let id = &m.identity;
                        snapshots
                            .entry((id.strategy.clone(), id.account.clone()))
                            .or_insert_with(|| market.snapshot(&id.strategy, &id.account));
                    }
                }
                for m in &mut members {
                    let key = (m.identity.strategy.clone(), m.identity.account.clone());
                    let Some(snapshot) = snapshots.get(&key) else {
                        continue;
                    };
                    let started = Instant::now();
                    let result = m.runner.call(&event, snapshot, &trace_id);
                    let elapsed = started.elapsed();
                    stats.calls.fetch_add(1, Ordering::Relaxed);
                    match &result {
                        Ok(out) => {
                            stats.fuel.fetch_add(out.fuel_used, Ordering::Relaxed);
                            stats
                                .proposals
                                .fetch_add(out.proposals.len() as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stats
                                .fuel
                                .fetch_add(e.fuel_used().unwrap_or(0), Ordering::Relaxed);
                            *stats
                                .errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .entry(e.kind())
                                .or_default() += 1;
                        }
                    }
                    answers.push(Answer {
                        identity: m.identity.clone(),
                        result,
                        elapsed,
                    });
                }
                let _ = reply.send(answers);
            }
            Command::Replace {
                strategy,
                members: new,
                reply,
            } => {
                let started = Instant::now();
                let (keep, mut old): (Vec<Member>, Vec<Member>) = members
                    .drain(..)
                    .partition(|m| m.identity.strategy != strategy);
                members = keep;
                let mut new = new;
                let (handed_over, hand_over_failures) = hand_over(&mut old, &mut new);
                members.extend(new);
                let pause = started.elapsed();
                let _ = reply.send(ShardSwitch {
                    pause,
                    handed_over,
                    hand_over_failures,
                });
                // Freeing the old stores is not part of the switch.
                drop(old);
            }
            Command::Outcomes { items, reply } => {
                let mut told = Vec::with_capacity(items.len());
                for item in items {
                    let at = members
                        .iter()
                        .position(|m| {
                            m.identity.strategy == item.strategy
                                && m.identity.instance_id == item.instance_id
                        })
                        .or_else(|| {
                            members
                                .iter()
                                .position(|m| m.identity.strategy == item.strategy)
                        });
                    let Some(m) = at.and_then(|i| members.get_mut(i)) else {
                        continue;
                    };
                    let result = m.runner.on_outcome(&item.outcome);
                    if let Err(e) = &result {
                        *stats
                            .errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(e.kind())
                            .or_default() += 1;
                    }
                    told.push(Told {
                        instance_id: m.identity.instance_id.clone(),
                        item,
                        result,
                    });
                }
                let _ = reply.send(told);
            }
            Command::Add {
                members: new,
                reply,
            } => {
                let started = Instant::now();
                members.extend(new);
                let _ = reply.send(ShardSwitch {
                    pause: started.elapsed(),
                    ..ShardSwitch::default()
                });
            }
            Command::Remove {
                strategy,
                ids,
                reply,
            } => {
                let started = Instant::now();
                let ids: std::collections::HashSet<String> = ids.into_iter().collect();
                let (gone, keep): (Vec<Member>, Vec<Member>) = members.drain(..).partition(|m| {
                    m.identity.strategy == strategy && ids.contains(&m.identity.instance_id)
                });
                members = keep;
                let _ = reply.send(ShardSwitch {
                    pause: started.elapsed(),
                    ..ShardSwitch::default()
                });
                drop(gone);
            }
        }
    }
}

/// Hands each old instance's state to the new instance of the same id, when both are
/// stateful. Returns how many took state over and why the others did not.
fn hand_over(old: &mut [Member], new: &mut [Member]) -> (usize, Vec<String>) {
    let mut handed = 0;
    let mut failures = Vec::new();
    for m in new.iter_mut() {
        if !m.runner.is_stateful() {
            continue;
        }
        let Some(from) = old
            .iter_mut()
            .find(|o| o.identity.instance_id == m.identity.instance_id)
        else {
            continue;
        };
        if !from.runner.is_stateful() {
            continue;
        }
        let id = &m.identity.instance_id;
        match from.runner.save() {
            Ok(Some(state)) => match m.runner.restore(&state) {
                Ok(true) => handed += 1,
                Ok(false) => {}
                Err(e) => failures.push(format!("{id}: restore: {e}")),
            },
            Ok(None) => {}
            Err(e) => failures.push(format!("{id}: save: {e}")),
        }
    }
    (handed, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting {
        seen: Arc<Mutex<Vec<(String, u64)>>>,
        tag: String,
    }

    impl Runner for Counting {
        fn call(&mut self, event: &Event, _: &Snapshot, _: &str) -> Result<RunOutput, CallError> {
            let block = stratbox_host::wit::event_block(event);
            self.seen.lock().unwrap().push((self.tag.clone(), block));
            Ok(RunOutput::default())
        }
    }

    fn member(
        strategy: &str,
        version: &str,
        i: usize,
        seen: &Arc<Mutex<Vec<(String, u64)>>>,
    ) -> Member {
        Member {
            identity: Identity {
                strategy: strategy.into(),
                version: version.into(),
                instance_id: format!("{strategy}-{i}"),
                account: "acct".into(),
            },
            runner: Box::new(Counting {
                seen: seen.clone(),
                tag: version.into(),
            }),
        }
    }

    fn block(n: u64) -> Event {
        Event::NewBlock(stratbox_host::wit::BlockInfo {
            number: n,
            timestamp: n,
            hash: String::new(),
        })
    }

    /// Counts events; its "state" is that count, handed over through save/restore.
    struct Tally {
        count: u64,
    }

    impl Runner for Tally {
        fn call(&mut self, _: &Event, _: &Snapshot, _: &str) -> Result<RunOutput, CallError> {
            self.count += 1;
            Ok(RunOutput::default())
        }
        fn is_stateful(&self) -> bool {
            true
        }
        fn save(&mut self) -> Result<Option<Vec<u8>>, CallError> {
            Ok(Some(self.count.to_le_bytes().to_vec()))
        }
        fn restore(&mut self, state: &[u8]) -> Result<bool, CallError> {
            let bytes: [u8; 8] = state
                .try_into()
                .map_err(|_| CallError::Strategy("bad state".into()))?;
            self.count = u64::from_le_bytes(bytes);
            Ok(true)
        }
    }

    fn tally(strategy: &str, version: &str, i: usize, count: u64) -> Member {
        Member {
            identity: Identity {
                strategy: strategy.into(),
                version: version.into(),
                instance_id: format!("{strategy}-{i}"),
                account: "acct".into(),
            },
            runner: Box::new(Tally { count }),
        }
    }

    #[tokio::test]
    async fn state_goes_to_the_new_instance_of_the_same_id_on_its_shard() {
        let fleet = Fleet::start(3, Arc::new(RwLock::new(Market::default()))).unwrap();
        fleet
            .replace("s", (0..5).map(|i| tally("s", "v1", i, 0)).collect())
            .await
            .unwrap();
        for n in 0..4 {
            fleet.dispatch(block(n), "t").await.unwrap();
        }
        let switch = fleet
            .replace("s", (0..5).map(|i| tally("s", "v2", i, 0)).collect())
            .await
            .unwrap();
        assert_eq!(switch.handed_over, 5);
        assert_eq!(switch.pauses.len(), 3);
        // Each v2 instance now holds v1's count (4 events); after one more event a third
        // version of probes records what each is handed.
        struct Probe(Arc<Mutex<Vec<u64>>>);
        impl Runner for Probe {
            fn call(&mut self, _: &Event, _: &Snapshot, _: &str) -> Result<RunOutput, CallError> {
                Ok(RunOutput::default())
            }
            fn is_stateful(&self) -> bool {
                true
            }
            fn restore(&mut self, state: &[u8]) -> Result<bool, CallError> {
                let bytes: [u8; 8] = state.try_into().unwrap();
                self.0.lock().unwrap().push(u64::from_le_bytes(bytes));
                Ok(true)
            }
        }
        fleet.dispatch(block(4), "t").await.unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let probes = (0..5)
            .map(|i| Member {
                identity: Identity {
                    strategy: "s".into(),
                    version: "v3".into(),
                    instance_id: format!("s-{i}"),
                    account: "acct".into(),
                },
                runner: Box::new(Probe(got.clone())) as Box<dyn Runner>,
            })
            .collect();
        fleet.replace("s", probes).await.unwrap();
        assert_eq!(*got.lock().unwrap(), vec![5; 5], "4 events on v1 + 1 on v2");
    }

    #[tokio::test]
    async fn add_and_remove_leave_the_other_instances_alone() {
        let fleet = Fleet::start(2, Arc::new(RwLock::new(Market::default()))).unwrap();
        fleet
            .replace("s", vec![tally("s", "v1", 0, 0)])
            .await
            .unwrap();
        fleet.dispatch(block(0), "t").await.unwrap();
        fleet
            .add((1..10).map(|i| tally("s", "v1", i, 0)).collect())
            .await
            .unwrap();
        assert_eq!(fleet.sizes().get("s"), Some(&10));
        assert_eq!(fleet.dispatch(block(1), "t").await.unwrap().len(), 10);
        let ids: Vec<String> = (1..10).map(|i| format!("s-{i}")).collect();
        fleet.remove("s", &ids).await.unwrap();
        assert_eq!(fleet.sizes().get("s"), Some(&1));
        let answers = fleet.dispatch(block(2), "t").await.unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].identity.instance_id, "s-0");
        // s-0 saw all three events: it was never replaced.
        let got = Arc::new(Mutex::new(0u64));
        struct Read(Arc<Mutex<u64>>);
        impl Runner for Read {
            fn call(&mut self, _: &Event, _: &Snapshot, _: &str) -> Result<RunOutput, CallError> {
                Ok(RunOutput::default())
            }
            fn is_stateful(&self) -> bool {
                true
            }
            fn restore(&mut self, state: &[u8]) -> Result<bool, CallError> {
                *self.0.lock().unwrap() = u64::from_le_bytes(state.try_into().unwrap());
                Ok(true)
            }
        }
        let reader = Member {
            identity: Identity {
                strategy: "s".into(),
                version: "v2".into(),
                instance_id: "s-0".into(),
                account: "acct".into(),
            },
            runner: Box::new(Read(got.clone())),
        };
        fleet.replace("s", vec![reader]).await.unwrap();
        assert_eq!(*got.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn swap_takes_effect_between_two_events_for_every_instance() {
        let fleet = Fleet::start(2, Arc::new(RwLock::new(Market::default()))).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        fleet
            .replace("s", (0..4).map(|i| member("s", "v1", i, &seen)).collect())
            .await
            .unwrap();
        for n in 0..5 {
            assert_eq!(fleet.dispatch(block(n), "t").await.unwrap().len(), 4);
        }
        fleet
            .replace("s", (0..3).map(|i| member("s", "v2", i, &seen)).collect())
            .await
            .unwrap();
        for n in 5..10 {
            assert_eq!(fleet.dispatch(block(n), "t").await.unwrap().len(), 3);
        }
        let seen = seen.lock().unwrap();
        assert!(
            seen.iter().all(|(v, b)| (v == "v1") == (*b < 5)),
            "{seen:?}"
        );
        assert_eq!(seen.len(), 4 * 5 + 3 * 5);
        assert_eq!(fleet.sizes().get("s"), Some(&3));
    }
}
