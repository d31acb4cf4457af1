use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{Bus, BusError, BusFuture, Delivery, MessageId, PendingSummary, StartId};

/// The in-process bus: the embedded default (`stratbox up`), with the semantics of
/// [`crate::RedisBus`] so a deployment that switches to Redis behaves the same.
///
/// Messages live in memory only; a restart of the process starts from an empty bus.
#[derive(Default, Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    streams: Mutex<HashMap<String, StreamLog>>,
    /// Kept apart from `streams` so a reader waiting on a stream that is deleted and
    /// recreated still hears about new messages.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

#[derive(Default)]
struct StreamLog {
    entries: BTreeMap<MessageId, Bytes>,
    last_id: MessageId,
    groups: HashMap<String, Group>,
}

struct Group {
    last_delivered: MessageId,
    pel: BTreeMap<MessageId, PendingEntry>,
    consumers: HashSet<String>,
}

struct PendingEntry {
    consumer: String,
    delivered_at: Instant,
    delivery_count: u64,
}

fn now_ms() -> u64 {
    // A clock before 1970 only happens on a broken host; ids then still increase because
    // `MessageId::next` never goes backwards.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn no_group(stream: &str, group: &str) -> BusError {
    BusError::NoGroup {
        stream: stream.to_owned(),
        group: group.to_owned(),
    }
}

impl MemoryBus {
    /// An empty bus; its streams live as long as this value (and its clones) do.
    pub fn new() -> Self {
        Self::default()
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, StreamLog>> {
        // A panic while holding the lock leaves the log consistent (every mutation is a
        // single step), so a poisoned lock is safe to keep using.
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waker(&self, stream: &str) -> Arc<Notify> {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.entry(stream.to_owned()).or_default().clone()
    }

    fn group_mut<'a>(
        streams: &'a mut HashMap<String, StreamLog>,
        stream: &str,
        group: &str,
    ) -> Result<(&'a BTreeMap<MessageId, Bytes>, &'a mut Group), BusError> {
        let log = streams
            .get_mut(stream)
            .ok_or_else(|| no_group(stream, group))?;
        let g = log
            .groups
            .get_mut(group)
            .ok_or_else(|| no_group(stream, group))?;
        Ok((&log.entries, g))
    }

    fn take_new(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut streams = self.streams();
        let (entries, g) = Self::group_mut(&mut streams, stream, group)?;
        g.consumers.insert(consumer.to_owned());
        let now = Instant::now();
        let mut out = Vec::new();
        let start = std::ops::Bound::Excluded(g.last_delivered);
        for (id, payload) in entries
            .range((start, std::ops::Bound::Unbounded))
            .take(count)
        {
            out.push(Delivery {
                id: *id,
                payload: payload.clone(),
                delivery_count: 1,
            });
            g.pel.insert(
                *id,
                PendingEntry {
                    consumer: consumer.to_owned(),
                    delivered_at: now,
                    delivery_count: 1,
                },
            );
        }
        if let Some(last) = out.last() {
            g.last_delivered = last.id;
        }
        Ok(out)
    }
}

impl Bus for MemoryBus {
    fn publish<'a>(&'a self, stream: &'a str, payload: &'a [u8]) -> BusFuture<'a, MessageId> {
        Box::pin(async move {
            let id = {
                let mut streams = self.streams();
                let log = streams.entry(stream.to_owned()).or_default();
                let id = log
                    .last_id
                    .next(now_ms())
                    .ok_or_else(|| BusError::IdSpaceExhausted(stream.to_owned()))?;
                log.entries.insert(id, Bytes::copy_from_slice(payload));
                log.last_id = id;
                id
            };
            self.waker(stream).notify_waiters();
            Ok(id)
        })
    }

    fn ensure_group<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        start: StartId,
    ) -> BusFuture<'a, ()> {
        Box::pin(async move {
            let mut streams = self.streams();
            let log = streams.entry(stream.to_owned()).or_default();
            let last_delivered = match start {
                StartId::Beginning => MessageId::ZERO,
                StartId::Latest => log.last_id,
                StartId::After(id) => id,
            };
            log.groups.entry(group.to_owned()).or_insert_with(|| Group {
                last_delivered,
                pel: BTreeMap::new(),
                consumers: HashSet::new(),
            });
            Ok(())
        })
    }

    fn read_group<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        count: usize,
        block: Duration,
    ) -> BusFuture<'a, Vec<Delivery>> {
        Box::pin(async move {
            let count = count.max(1);
            let deadline = Instant::now() + block;
            let waker = self.waker(stream);
            loop {
                // Registered before looking, so a publish between the look and the wait is
                // not missed.
                let notified = waker.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let got = self.take_new(stream, group, consumer, count)?;
                if !got.is_empty() || block.is_zero() {
                    return Ok(got);
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Ok(Vec::new());
                }
            }
        })
    }

    fn read_own_pending<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        after: MessageId,
        count: usize,
    ) -> BusFuture<'a, Vec<Delivery>> {
        Box::pin(async move {
            let count = count.max(1);
            let mut streams = self.streams();
            let (entries, g) = Self::group_mut(&mut streams, stream, group)?;
            g.consumers.insert(consumer.to_owned());
            let now = Instant::now();
            let mut out = Vec::new();
            let from = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
            for (id, p) in g
                .pel
                .range_mut(from)
                .filter(|(_, p)| p.consumer == consumer)
            {
                if out.len() >= count {
                    break;
                }
                // Like Redis, a pending message trimmed away is not handed out again.
                let Some(payload) = entries.get(id) else {
                    continue;
                };
                p.delivery_count += 1;
                p.delivered_at = now;
                out.push(Delivery {
                    id: *id,
                    payload: payload.clone(),
                    delivery_count: p.delivery_count,
                });
            }
            Ok(out)
        })
    }

    fn ack<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        ids: &'a [MessageId],
    ) -> BusFuture<'a, u64> {
        Box::pin(async move {
            let mut streams = self.streams();
            let Some(g) = streams
                .get_mut(stream)
                .and_then(|l| l.groups.get_mut(group))
            else {
                return Ok(0);
            };
            let mut acked = 0;
            for id in ids {
                if g.pel.remove(id).is_some() {
                    acked += 1;
                }
            }
            Ok(acked)
        })
    }

    fn claim_stale<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        min_idle: Duration,
        count: usize,
    ) -> BusFuture<'a, Vec<Delivery>> {
        Box::pin(async move {
            let count = count.max(1);
            let mut streams = self.streams();
            let (entries, g) = Self::group_mut(&mut streams, stream, group)?;
            g.consumers.insert(consumer.to_owned());
            let now = Instant::now();
            let mut out = Vec::new();
            let mut gone = Vec::new();
            for (id, p) in g.pel.iter_mut() {
                if out.len() >= count {
                    break;
                }
                if now.saturating_duration_since(p.delivered_at) < min_idle {
                    continue;
                }
                let Some(payload) = entries.get(id) else {
                    gone.push(*id);
                    continue;
                };
                p.consumer = consumer.to_owned();
                p.delivered_at = now;
                p.delivery_count += 1;
                out.push(Delivery {
                    id: *id,
                    payload: payload.clone(),
                    delivery_count: p.delivery_count,
                });
            }
            for id in gone {
                g.pel.remove(&id);
            }
            Ok(out)
        })
    }

    fn pending<'a>(&'a self, stream: &'a str, group: &'a str) -> BusFuture<'a, PendingSummary> {
        Box::pin(async move {
            let mut streams = self.streams();
            let (_, g) = Self::group_mut(&mut streams, stream, group)?;
            let mut summary = PendingSummary::default();
            for p in g.pel.values() {
                summary.total += 1;
                *summary.per_consumer.entry(p.consumer.clone()).or_default() += 1;
            }
            Ok(summary)
        })
    }

    fn len<'a>(&'a self, stream: &'a str) -> BusFuture<'a, u64> {
        Box::pin(async move {
            Ok(self
                .streams()
                .get(stream)
                .map_or(0, |l| l.entries.len() as u64))
        })
    }

    fn trim<'a>(&'a self, stream: &'a str, max_len: u64) -> BusFuture<'a, u64> {
        Box::pin(async move {
            let mut streams = self.streams();
            let Some(log) = streams.get_mut(stream) else {
                return Ok(0);
            };
            let mut removed = 0;
            while log.entries.len() as u64 > max_len {
                if log.entries.pop_first().is_none() {
                    break;
                }
                removed += 1;
            }
            Ok(removed)
        })
    }

    fn delete_stream<'a>(&'a self, stream: &'a str) -> BusFuture<'a, bool> {
        Box::pin(async move { Ok(self.streams().remove(stream).is_some()) })
    }
}
