//! The strategy instances one host runs, spread over worker threads, and how they are
//! changed while events flow: hot swap to a new version, scale up and down.
//!
//! Each worker thread owns a shard of the instances and receives the same sequence of
//! commands: `Event`s and `Replace`s. Because every shard sees the same sequence, a swap
//! queued between events N and N+1 takes effect for every instance at that boundary: event
//! N is handled by the old version everywhere, N+1 by the new one everywhere, and a call in
//! flight always finishes on the instance that started it. New instances are built and
//! `init`-ed before the swap is queued, so the switch itself only moves pointers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use stratbox_host::wit::{Event, Snapshot};
use stratbox_host::{CallError, ValidatedProposal};
use tokio::sync::oneshot;

use crate::market::Market;

/// One live strategy instance, as the fleet drives it. Implemented for the host's
/// `StrategyInstance`; tests use scripted ones.
pub trait Runner: Send + 'static {
    fn call(
        &mut self,
        event: &Event,
        snapshot: &Snapshot,
        trace_id: &str,
    ) -> Result<RunOutput, CallError>;
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
}

/// What one successful call produced.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    pub proposals: Vec<ValidatedProposal>,
    pub fuel_used: u64,
}

/// Who an instance is, for envelopes and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub strategy: String,
    pub version: String,
    pub instance_id: String,
    pub account: String,
}

pub struct Member {
    pub identity: Identity,
    pub runner: Box<dyn Runner>,
}

/// What one instance did with one event.
#[derive(Debug)]
pub struct Answer {
    pub identity: Identity,
    pub result: Result<RunOutput, CallError>,
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
        reply: oneshot::Sender<Duration>,
    },
}

/// Counters the live table and the metrics endpoint read.
#[derive(Debug, Default)]
pub struct FleetStats {
    pub events: AtomicU64,
    pub calls: AtomicU64,
    pub fuel: AtomicU64,
    pub proposals: AtomicU64,
    pub errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl FleetStats {
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
    /// Instances per strategy, for `replace` to spread new ones evenly.
    sizes: Mutex<BTreeMap<String, usize>>,
}

/// Why the fleet could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("a fleet worker thread has stopped")]
    WorkerGone,
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
            sizes: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn market(&self) -> &Arc<RwLock<Market>> {
        &self.market
    }

    pub fn stats(&self) -> &Arc<FleetStats> {
        &self.stats
    }

    /// Instances per strategy.
    pub fn sizes(&self) -> BTreeMap<String, usize> {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Gives `event` to every instance; answers in a stable order (shard, then position).
    pub async fn dispatch(&self, event: Event, trace_id: &str) -> Result<Vec<Answer>, FleetError> {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(event);
        let trace_id: Arc<str> = Arc::from(trace_id);
        let mut replies = Vec::with_capacity(self.shards.len());
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
        let mut answers = Vec::new();
        for rx in replies {
            answers.extend(rx.await.map_err(|_| FleetError::WorkerGone)?);
        }
        Ok(answers)
    }

    /// Switches `strategy` to `members` (already built and initialised) between two
    /// events. Returns the longest pause any shard spent switching.
    pub async fn replace(
        &self,
        strategy: &str,
        members: Vec<Member>,
    ) -> Result<Duration, FleetError> {
        let count = members.len();
        let mut parts: Vec<Vec<Member>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for (i, m) in members.into_iter().enumerate() {
            parts[i % self.shards.len()].push(m);
        }
        let mut replies = Vec::new();
        for (shard, members) in self.shards.iter().zip(parts) {
            let (reply, rx) = oneshot::channel();
            shard
                .send(Command::Replace {
                    strategy: strategy.to_owned(),
                    members,
                    reply,
                })
                .map_err(|_| FleetError::WorkerGone)?;
            replies.push(rx);
        }
        let mut pause = Duration::ZERO;
        for rx in replies {
            pause = pause.max(rx.await.map_err(|_| FleetError::WorkerGone)?);
        }
        let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
        if count == 0 {
            sizes.remove(strategy);
        } else {
            sizes.insert(strategy.to_owned(), count);
        }
        Ok(pause)
    }
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
                // One snapshot per account per event, built under a short read lock.
                let mut snapshots: BTreeMap<String, Snapshot> = BTreeMap::new();
                {
                    let market = market.read().unwrap_or_else(|p| p.into_inner());
                    for m in &members {
                        snapshots
                            .entry(m.identity.account.clone())
                            .or_insert_with(|| market.snapshot(&m.identity.account));
                    }
                }
                for m in &mut members {
                    let Some(snapshot) = snapshots.get(&m.identity.account) else {
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
                // The old instances are dropped after the pause is measured: freeing a
                // store is not part of the switch.
                let old: Vec<Member>;
                {
                    let (keep, gone): (Vec<Member>, Vec<Member>) = members
                        .drain(..)
                        .partition(|m| m.identity.strategy != strategy);
                    members = keep;
                    members.extend(new);
                    old = gone;
                }
                let pause = started.elapsed();
                let _ = reply.send(pause);
                drop(old);
            }
        }
    }
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
