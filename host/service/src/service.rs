//! A strategy host's main loop: read the bus as one consumer of a group, give each event to
//! the fleet, deliver the proposals to the engine, and only then acknowledge the event.
//!
//! Acknowledging after delivery is what makes a host crash lose nothing: whatever was not
//! acknowledged stays pending in the group and is re-delivered to this consumer when it
//! restarts under the same name, or claimed by another host after `min_idle`. What is
//! handled twice that way is deduplicated by the engine's idempotency keys.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stratbox_bus::{Bus, BusError, GroupReader, MessageId, decode_event};
use stratbox_proto::v1::{self, TaskState};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::delivery::{DeliveryError, EngineLink};
use crate::execution::{OpenTask, OutcomeFor, Tracker};
use crate::fleet::{Fleet, FleetError};
use crate::memory::MemoryBook;
use crate::metrics::{HostMetrics, event_kind};
use crate::translate::{self, Envelope, Incoming};

/// How many recently handled event ids a host remembers, to skip exact re-deliveries
/// without calling strategies again.
const RECENT_EVENTS: usize = 65_536;

/// Counters for the live table and metrics.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Events read and handled.
    pub events: AtomicU64,
    /// Events whose id was already handled (a redelivery), skipped without calling strategies.
    pub duplicates_skipped: AtomicU64,
    /// Messages that did not decode or translate; acknowledged and dropped.
    pub malformed: AtomicU64,
    /// Reorg events seen.
    pub reorgs: AtomicU64,
    /// Proposals delivered to the engine.
    pub proposals_sent: AtomicU64,
    /// Proposals the engine answered with task state `Simulated`.
    pub simulated: AtomicU64,
    /// Proposals the engine answered with task state `Rejected`.
    pub rejected: AtomicU64,
    /// Events acknowledged on the bus.
    pub acked: AtomicU64,
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The bus failed past its retry budget.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// The fleet lost a worker.
    #[error("fleet: {0}")]
    Fleet(#[from] FleetError),
    /// Proposals could not be delivered (a non-retryable engine answer).
    #[error("delivery: {0}")]
    Delivery(#[from] DeliveryError),
}

/// Reported for each handled event, for latency measurement (`stratbox bench pipeline`).
#[derive(Debug, Clone)]
pub struct Handled {
    /// The chain event's id.
    pub event_id: String,
    /// When the host received the event, when its strategy instances had all answered,
    /// and when the engine answered for their proposals.
    pub received: Instant,
    /// See `received`.
    pub dispatched: Instant,
    /// See `received`.
    pub answered: Instant,
    /// Proposals the event produced.
    pub proposals: usize,
}

/// The host's loop: reads chain events from its bus group, runs them through the fleet,
/// delivers proposals to the engine, and acknowledges an event only after that.
pub struct HostService<B: Bus + ?Sized> {
    reader: GroupReader<B>,
    fleet: Arc<Fleet>,
    link: EngineLink,
    stats: Arc<ServiceStats>,
    recent: RecentIds,
    handled: Option<tokio::sync::mpsc::UnboundedSender<Handled>>,
    metrics: Option<Arc<HostMetrics>>,
    /// The strategies' memories, whose changes are stored after each event.
    memories: Option<Arc<MemoryBook>>,
    /// Proposals followed to their outcomes and markouts (world 0.2.0).
    tracker: Tracker,
    /// To and from the follower of open tasks, and to the reporter of fills' measures
    /// (started by [`HostService::run`]).
    background: Option<Background>,
}

/// The channels to the tasks [`HostService::run`] starts beside its loop.
struct Background {
    open: mpsc::Sender<OpenTask>,
    ended: mpsc::Receiver<(OpenTask, v1::Task)>,
    fills: mpsc::Sender<(String, v1::FillMeasure)>,
}

/// Room in the channels to the background tasks; past it a task is not followed or a
/// measure not reported (logged), never waited for.
const BACKGROUND_ROOM: usize = 4096;

/// How long a stopping host waits for its last fill measures to reach the engine.
const REPORTER_GRACE: Duration = Duration::from_secs(5);

impl<B: Bus + ?Sized> HostService<B> {
    /// Measures fills' markouts `blocks` blocks after them (default
    /// [`crate::execution::DEFAULT_MARKOUT_BLOCKS`]).
    pub fn markout_blocks(&mut self, blocks: u64) {
        self.tracker = Tracker::new(blocks);
    }

    /// Tells the strategies `items` (between two events) and counts them.
    async fn tell(&self, items: Vec<OutcomeFor>) -> Result<(), ServiceError> {
        if items.is_empty() {
            return Ok(());
        }
        if let Some(m) = &self.metrics {
            for item in &items {
                m.outcome(item);
            }
        }
        if let Some(bg) = &self.background {
            for item in &items {
                if let Some(measure) = crate::execution::measure(item)
                    && bg.fills.try_send((item.strategy.clone(), measure)).is_err()
                {
                    tracing::debug!(task_id = %item.outcome.task_id, "fill measure not reported: the reporter is behind");
                }
            }
        }
        for told in self.fleet.outcomes(items).await? {
            if let Err(e) = &told.result {
                tracing::warn!(instance = %told.instance_id, task_id = %told.item.outcome.task_id, kind = e.kind(), error = %e, "on-outcome failed");
            }
        }
        Ok(())
    }

    /// Stores the changes to `book`'s memories after each event, before acknowledging it.
    pub fn memories_from(&mut self, book: Arc<MemoryBook>) {
        self.memories = Some(book);
    }

    /// A service reading with `reader`, running `fleet`, delivering over `link`.
    pub fn new(reader: GroupReader<B>, fleet: Arc<Fleet>, link: EngineLink) -> Self {
        HostService {
            reader,
            fleet,
            link,
            stats: Arc::new(ServiceStats::default()),
            recent: RecentIds::new(RECENT_EVENTS),
            handled: None,
            metrics: None,
            memories: None,
            tracker: Tracker::default(),
            background: None,
        }
    }

    /// The counters, shared: they keep updating after this call.
    pub fn stats(&self) -> Arc<ServiceStats> {
        self.stats.clone()
    }

    /// Records what this host does in `metrics` (served on `/metrics`).
    pub fn metrics_to(&mut self, metrics: Arc<HostMetrics>) {
        self.metrics = Some(metrics);
    }

    /// Reports every handled event on `tx`.
    pub fn report_to(&mut self, tx: tokio::sync::mpsc::UnboundedSender<Handled>) {
        self.handled = Some(tx);
    }

    /// Runs until `shutdown` turns true. Returns after acknowledging what it finished; what
    /// it did not finish stays pending on the bus.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ServiceError> {
        let (open, open_rx) = mpsc::channel(BACKGROUND_ROOM);
        let (ended_tx, ended) = mpsc::channel(BACKGROUND_ROOM);
        let (fills, fills_rx) = mpsc::channel(BACKGROUND_ROOM);
        tokio::spawn(crate::execution::follow_tasks(
            self.link.clone(),
            open_rx,
            ended_tx,
            shutdown.clone(),
        ));
        let reporter = tokio::spawn(crate::execution::report_fills(
            self.link.clone(),
            fills_rx,
            shutdown.clone(),
        ));
        self.background = Some(Background { open, ended, fills });
        let result = self.serve(&mut shutdown).await;
        // The reporter sends what it holds once the channel closes: wait for it (bounded),
        // so a host that stops has reported what it told.
        drop(self.background.take());
        let _ = tokio::time::timeout(REPORTER_GRACE, reporter).await;
        result
    }

    async fn serve(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ServiceError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let batch = tokio::select! {
                batch = self.reader.next_batch() => batch,
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    // A dropped bus connection: the bus reconnects itself; wait a little
                    // rather than spinning.
                    tracing::warn!(error = %e, "bus read failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                    }
                }
            };
            let mut done: Vec<MessageId> = Vec::with_capacity(batch.len());
            for delivery in &batch {
                match self.handle(delivery, shutdown).await {
                    Ok(()) => done.push(delivery.id),
                    Err(ServiceError::Delivery(DeliveryError::ShutDown(_))) => break,
                    Err(e) => {
                        // Not acknowledged: it will be re-delivered and retried.
                        tracing::error!(error = %e, id = %delivery.id, "event not handled; left pending");
                        break;
                    }
                }
            }
            if !done.is_empty() {
                let n = self.reader.ack(&done).await?;
                self.stats.acked.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn count_event(&self, kind: &'static str) {
        if let Some(m) = &self.metrics {
            m.event(kind);
        }
    }

    async fn handle(
        &mut self,
        delivery: &stratbox_bus::Delivery,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ServiceError> {
        let received = Instant::now();
        let event = match decode_event(delivery) {
            Ok(e) => e.event,
            Err(e) => {
                // A poison message would be re-delivered forever: count it and let it go.
                tracing::error!(error = %e, "undecodable bus message acknowledged and dropped");
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                self.count_event("malformed");
                return Ok(());
            }
        };
        let trace_id = translate::trace_id(&event);
        let span = tracing::info_span!("event", trace_id = %trace_id, event_id = %event.event_id);
        async {
            let incoming = match translate::incoming(&event) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(error = %e, "malformed event acknowledged and dropped");
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    self.count_event("malformed");
                    return Ok(());
                }
            };
            let wit = match incoming {
                Incoming::Reorg { common_ancestor } => {
                    self.stats.reorgs.fetch_add(1, Ordering::Relaxed);
                    self.count_event("reorg");
                    self.fleet.market().write().unwrap_or_else(|p| p.into_inner()).rewind(common_ancestor);
                    // Canonical events are re-published with new ids (their block hash
                    // changed); forget nothing else.
                    tracing::info!(common_ancestor, "reorg: history rewound");
                    return Ok(());
                }
                Incoming::Event(e) => e,
            };
            if !self.recent.insert(&event.event_id) {
                self.stats.duplicates_skipped.fetch_add(1, Ordering::Relaxed);
                self.count_event("duplicate");
                return Ok(());
            }
            self.count_event(event_kind(&event));
            self.fleet
                .market()
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .apply(&wit, event.last_sync_block, event.timestamp);
            let watermark = self.fleet.market().read().unwrap_or_else(|p| p.into_inner()).watermark();
            // Markouts come due as the watermark passes them, and are told before the event
            // that passed it: a strategy learns of them before it decides again.
            if self.tracker.next_due().is_some_and(|due| due <= watermark) {
                let pools = self.fleet.market().read().unwrap_or_else(|p| p.into_inner()).snapshot("", "").pools;
                let due = self.tracker.due(watermark, &pools);
                self.tell(due).await?;
            }
            // Staged and live tasks that reached their ends since the last event.
            let mut reached = Vec::new();
            if let Some(bg) = &mut self.background {
                while let Ok((open, task)) = bg.ended.try_recv() {
                    reached.extend(self.tracker.followed(&open.proposal, &task, watermark));
                }
            }
            self.tell(reached).await?;
            let answers = self.fleet.dispatch(wit, &trace_id).await?;
            let dispatched = Instant::now();
            if let Some(m) = &self.metrics {
                m.answered(&answers);
            }
            let mut proposals = Vec::new();
            for answer in &answers {
                match &answer.result {
                    Ok(out) => {
                        let envelope = Envelope {
                            strategy: &answer.identity.strategy,
                            version: &answer.identity.version,
                            instance_id: &answer.identity.instance_id,
                            account: &answer.identity.account,
                            event_id: &event.event_id,
                            last_sync_block: watermark,
                        };
                        for (i, p) in out.proposals.iter().enumerate() {
                            proposals.push(translate::proposal(&envelope, i as u32, p));
                        }
                    }
                    Err(e) => tracing::warn!(instance = %answer.identity.instance_id, kind = e.kind(), error = %e, "strategy call failed"),
                }
            }
            let count = proposals.len();
            if count > 0 {
                let strategies: Vec<String> = proposals.iter().map(|p| p.strategy.clone()).collect();
                let sent = Instant::now();
                let results = self.link.submit(&trace_id, &proposals, shutdown).await?;
                let ended: Vec<OutcomeFor> = proposals
                    .iter()
                    .zip(&results)
                    .filter_map(|(p, r)| self.tracker.ended(p, r))
                    .collect();
                if let Some(m) = &self.metrics {
                    m.delivered(strategies.iter().map(String::as_str), &results, sent.elapsed());
                }
                tracing::debug!(proposals = count, micros = sent.elapsed().as_micros() as u64, "proposals delivered");
                self.stats.proposals_sent.fetch_add(count as u64, Ordering::Relaxed);
                for r in &results {
                    if r.state == TaskState::Simulated as i32 {
                        self.stats.simulated.fetch_add(1, Ordering::Relaxed);
                    } else if r.state == TaskState::Rejected as i32 {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(reason = %r.reason_code, detail = %r.detail, "proposal rejected");
                    }
                }
                self.tell(ended).await?;
                if let Some(bg) = &self.background {
                    for open in self.tracker.opened() {
                        if let Err(e) = bg.open.try_send(open) {
                            tracing::warn!(task_id = %e.into_inner().task_id, "too many open tasks to follow; this one's end will not be told");
                        }
                    }
                }
            }
            // What the strategies wrote to their memories (on the event and on the outcomes
            // of its proposals) is stored before the event is acknowledged: a host that
            // crashes before this re-runs the event on the memory the engine holds.
            if let Some(book) = &self.memories {
                book.flush(&trace_id, shutdown).await?;
            }
            self.stats.events.fetch_add(1, Ordering::Relaxed);
            if let Some(tx) = &self.handled {
                let _ = tx.send(Handled {
                    event_id: event.event_id.clone(),
                    received,
                    dispatched,
                    answered: Instant::now(),
                    proposals: count,
                });
            }
            Ok(())
        }
        .instrument(span)
        .await
    }
}

/// A bounded set of recently seen ids, oldest forgotten first.
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl RecentIds {
    fn new(cap: usize) -> Self {
        RecentIds {
            set: HashSet::with_capacity(cap),
            order: VecDeque::with_capacity(cap),
            cap,
        }
    }

    /// False if `id` was already there.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}
