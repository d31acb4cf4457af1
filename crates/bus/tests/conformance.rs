//! One conformance suite, run against the in-process bus and the real Redis
//! (`STRATBOX_TEST_REDIS`, 127.0.0.1:6379 by default), so the embedded default and
//! production behave alike. Without Redis the Redis half fails; it never skips.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use stratbox_bus::{
    Bus, BusError, CHAIN_EVENTS_STREAM, Delivery, GroupReader, GroupReaderConfig, MemoryBus,
    MessageId, RedisBus, RedisBusConfig, StartId, decode_event, publish_event,
};

async fn redis_bus() -> Arc<RedisBus> {
    let url = stratbox_testenv::redis_url();
    let bus = RedisBus::connect(RedisBusConfig::new(url.as_str())).await;
    Arc::new(
        bus.unwrap_or_else(|e| panic!("the tests need Redis at {url} (STRATBOX_TEST_REDIS): {e}")),
    )
}

/// How the suite sees that a reader is parked in a blocking read, which the `Bus` trait
/// does not say: each bus shows it its own way.
trait Parked {
    /// What identifies the bus's connections, taken before the blocking read starts: once a
    /// connection is blocked in a read, nothing else can be asked on it until it returns.
    async fn connections(&self) -> Vec<i64>;
    /// Whether a blocking read, polled at least once since it started, is now waiting.
    async fn reader_parked(&self, connections: &[i64]) -> bool;
}

impl Parked for MemoryBus {
    async fn connections(&self) -> Vec<i64> {
        Vec::new()
    }

    /// The in-process read registers its waker before it looks, so once it has been polled
    /// and returned `Pending` it is waiting: nothing more to check.
    async fn reader_parked(&self, _: &[i64]) -> bool {
        true
    }
}

impl Parked for RedisBus {
    async fn connections(&self) -> Vec<i64> {
        self.connection_ids().await.unwrap()
    }

    /// Redis flags a client blocked in a command with `b` in `CLIENT LIST`.
    async fn reader_parked(&self, ids: &[i64]) -> bool {
        let admin = ::redis::Client::open(stratbox_testenv::redis_url()).unwrap();
        let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
        let list: String = ::redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut admin)
            .await
            .unwrap();
        list.lines().any(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            };
            let id = field("id").and_then(|id| id.parse::<i64>().ok());
            id.is_some_and(|id| ids.contains(&id))
                && field("flags").is_some_and(|f| f.contains('b'))
                && field("cmd").is_some_and(|c| c.eq_ignore_ascii_case("xreadgroup"))
        })
    }
}

async fn memory_bus() -> Arc<MemoryBus> {
    Arc::new(MemoryBus::new())
}

/// Runs one suite case on a fresh stream and deletes the stream afterwards, also when the
/// case fails.
async fn run<B, F, Fut>(bus: Arc<B>, name: &str, case: F)
where
    B: Bus + 'static,
    F: FnOnce(Arc<B>, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stream = format!("test:bus:{name}:{}", uuid::Uuid::new_v4().simple());
    let outcome = tokio::spawn(case(bus.clone(), stream.clone())).await;
    bus.delete_stream(&stream).await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn payload(i: usize) -> Vec<u8> {
    format!("message {i}").into_bytes()
}

fn index_of(d: &Delivery) -> usize {
    let text = std::str::from_utf8(&d.payload).unwrap();
    text.strip_prefix("message ").unwrap().parse().unwrap()
}

mod suite {
    use super::*;

    pub async fn ordering<B: Bus>(bus: Arc<B>, s: String) {
        let mut ids = Vec::new();
        for i in 0..100 {
            ids.push(bus.publish(&s, &payload(i)).await.unwrap());
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids not strictly increasing: {ids:?}"
        );
        assert_eq!(bus.len(&s).await.unwrap(), 100);
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        let mut seen = Vec::new();
        loop {
            let got = bus
                .read_group(&s, "g", "c", 7, Duration::ZERO)
                .await
                .unwrap();
            if got.is_empty() {
                break;
            }
            assert!(got.len() <= 7);
            assert!(got.iter().all(|d| d.delivery_count == 1));
            seen.extend(got);
        }
        assert_eq!(seen.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
        assert_eq!(
            seen.iter().map(index_of).collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
    }

    pub async fn group_start_positions<B: Bus>(bus: Arc<B>, s: String) {
        let first = bus.publish(&s, &payload(0)).await.unwrap();
        bus.publish(&s, &payload(1)).await.unwrap();
        bus.ensure_group(&s, "latest", StartId::Latest)
            .await
            .unwrap();
        bus.ensure_group(&s, "after", StartId::After(first))
            .await
            .unwrap();
        bus.publish(&s, &payload(2)).await.unwrap();
        let latest = bus
            .read_group(&s, "latest", "c", 10, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(latest.iter().map(index_of).collect::<Vec<_>>(), vec![2]);
        let after = bus
            .read_group(&s, "after", "c", 10, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(after.iter().map(index_of).collect::<Vec<_>>(), vec![1, 2]);
        // Creating an existing group again neither fails nor rewinds it.
        bus.ensure_group(&s, "after", StartId::Beginning)
            .await
            .unwrap();
        assert!(
            bus.read_group(&s, "after", "c", 10, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn missing_group_is_an_error<B: Bus>(bus: Arc<B>, s: String) {
        bus.publish(&s, b"x").await.unwrap();
        let err = bus
            .read_group(&s, "nope", "c", 1, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(err, BusError::NoGroup { .. }), "{err:?}");
        let err = bus
            .claim_stale(&s, "nope", "c", Duration::ZERO, 1)
            .await
            .unwrap_err();
        assert!(matches!(err, BusError::NoGroup { .. }), "{err:?}");
        let err = bus.pending(&s, "nope").await.unwrap_err();
        assert!(matches!(err, BusError::NoGroup { .. }), "{err:?}");
        assert_eq!(
            bus.ack(&s, "nope", &[MessageId::new(1, 0)]).await.unwrap(),
            0
        );
    }

    pub async fn consumers_split_the_work<B: Bus>(bus: Arc<B>, s: String) {
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        for i in 0..10 {
            bus.publish(&s, &payload(i)).await.unwrap();
        }
        let a = bus
            .read_group(&s, "g", "a", 4, Duration::ZERO)
            .await
            .unwrap();
        let b = bus
            .read_group(&s, "g", "b", 4, Duration::ZERO)
            .await
            .unwrap();
        let c = bus
            .read_group(&s, "g", "c", 4, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(a.iter().map(index_of).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(b.iter().map(index_of).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
        assert_eq!(c.iter().map(index_of).collect::<Vec<_>>(), vec![8, 9]);
        let pending = bus.pending(&s, "g").await.unwrap();
        assert_eq!(pending.total, 10);
        let expected: BTreeMap<String, u64> =
            [("a".into(), 4), ("b".into(), 4), ("c".into(), 2)].into();
        assert_eq!(pending.per_consumer, expected);
    }

    pub async fn concurrent_consumers_each_message_once<B: Bus + 'static>(bus: Arc<B>, s: String) {
        const N: usize = 150;
        const WORKERS: [&str; 3] = ["w1", "w2", "w3"];
        bus.ensure_group(&s, "g", StartId::Latest).await.unwrap();
        let handled: Arc<Mutex<HashMap<usize, Vec<String>>>> = Arc::default();
        // Whether every worker has had a share, or all the work is done.
        let spread = |handled: &Mutex<HashMap<usize, Vec<String>>>| {
            let handled = handled.lock().unwrap();
            let by: BTreeSet<&String> = handled.values().flatten().collect();
            by.len() == WORKERS.len() || handled.len() >= N
        };
        let mut workers = Vec::new();
        for name in WORKERS {
            let (bus, s, handled) = (bus.clone(), s.clone(), handled.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    if handled.lock().unwrap().len() >= N {
                        return;
                    }
                    let got = bus
                        .read_group(&s, "g", name, 3, Duration::from_millis(100))
                        .await
                        .unwrap();
                    for d in &got {
                        handled
                            .lock()
                            .unwrap()
                            .entry(index_of(d))
                            .or_default()
                            .push(name.to_owned());
                    }
                    let ids: Vec<MessageId> = got.iter().map(|d| d.id).collect();
                    assert_eq!(bus.ack(&s, "g", &ids).await.unwrap(), ids.len() as u64);
                    // A worker that has had work steps aside until the others have had
                    // some, so the split is the group's doing, not a matter of speed.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !got.is_empty() && !spread(&handled) {
                        assert!(
                            Instant::now() < deadline,
                            "{name}: the other consumers got no message within 30 s"
                        );
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }));
        }
        for i in 0..N {
            bus.publish(&s, &payload(i)).await.unwrap();
        }
        for w in workers {
            w.await.unwrap();
        }
        {
            let handled = handled.lock().unwrap();
            assert_eq!(
                handled.keys().copied().collect::<BTreeSet<_>>(),
                (0..N).collect::<BTreeSet<_>>()
            );
            for (i, by) in handled.iter() {
                assert_eq!(by.len(), 1, "message {i} handled by {by:?}");
            }
            let per_worker: BTreeSet<&String> = handled.values().flatten().collect();
            assert_eq!(
                per_worker.len(),
                3,
                "work was not spread over all consumers: {per_worker:?}"
            );
        }
        assert_eq!(bus.pending(&s, "g").await.unwrap().total, 0);
    }

    pub async fn ack_removes_from_pending<B: Bus>(bus: Arc<B>, s: String) {
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        for i in 0..10 {
            bus.publish(&s, &payload(i)).await.unwrap();
        }
        let got = bus
            .read_group(&s, "g", "c", 10, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(bus.pending(&s, "g").await.unwrap().total, 10);
        let first4: Vec<MessageId> = got[..4].iter().map(|d| d.id).collect();
        assert_eq!(bus.ack(&s, "g", &first4).await.unwrap(), 4);
        assert_eq!(
            bus.ack(&s, "g", &first4).await.unwrap(),
            0,
            "a second ack must not count"
        );
        let pending = bus.pending(&s, "g").await.unwrap();
        assert_eq!(pending.total, 6);
        assert_eq!(pending.per_consumer.get("c"), Some(&6));
        // Acknowledged messages are never claimed again, even when idle.
        let stale = bus
            .claim_stale(&s, "g", "other", Duration::ZERO, 100)
            .await
            .unwrap();
        assert_eq!(
            stale.iter().map(index_of).collect::<Vec<_>>(),
            (4..10).collect::<Vec<_>>()
        );
        let rest: Vec<MessageId> = stale.iter().map(|d| d.id).collect();
        assert_eq!(bus.ack(&s, "g", &rest).await.unwrap(), 6);
        let pending = bus.pending(&s, "g").await.unwrap();
        assert_eq!(pending.total, 0);
        assert!(pending.per_consumer.is_empty());
    }

    pub async fn dead_consumer_messages_are_claimed<B: Bus>(bus: Arc<B>, s: String) {
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        for i in 0..10 {
            bus.publish(&s, &payload(i)).await.unwrap();
        }
        // "dead" takes five and never acknowledges them.
        let dead = bus
            .read_group(&s, "g", "dead", 5, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(dead.len(), 5);
        // While they are fresh, nobody else gets them.
        let min_idle = Duration::from_millis(300);
        assert!(
            bus.claim_stale(&s, "g", "alive", min_idle, 100)
                .await
                .unwrap()
                .is_empty()
        );
        let fresh = bus
            .read_group(&s, "g", "alive", 100, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            fresh.iter().map(index_of).collect::<Vec<_>>(),
            vec![5, 6, 7, 8, 9]
        );
        // Idleness is measured in time, so here time itself is what the case waits for.
        tokio::time::sleep(min_idle + Duration::from_millis(100)).await;
        // Both consumers' messages are now idle; the claim takes over all of them, oldest first,
        // and counts the extra delivery.
        let claimed = bus
            .claim_stale(&s, "g", "alive", min_idle, 3)
            .await
            .unwrap();
        assert_eq!(
            claimed.iter().map(index_of).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(claimed.iter().all(|d| d.delivery_count == 2), "{claimed:?}");
        let more = bus
            .claim_stale(&s, "g", "alive", min_idle, 2)
            .await
            .unwrap();
        assert_eq!(more.iter().map(index_of).collect::<Vec<_>>(), vec![3, 4]);
        let pending = bus.pending(&s, "g").await.unwrap();
        assert_eq!(pending.per_consumer.get("dead"), None);
        assert_eq!(pending.per_consumer.get("alive"), Some(&10));
        // Just claimed means fresh again: a third consumer can take only what "alive" read
        // long ago and did not acknowledge, not what it has just claimed.
        let third = bus
            .claim_stale(&s, "g", "third", min_idle, 100)
            .await
            .unwrap();
        assert_eq!(
            third.iter().map(index_of).collect::<Vec<_>>(),
            vec![5, 6, 7, 8, 9]
        );
        assert!(third.iter().all(|d| d.delivery_count == 2), "{third:?}");
        let all: Vec<MessageId> = claimed
            .iter()
            .chain(&more)
            .chain(&third)
            .map(|d| d.id)
            .collect();
        assert_eq!(bus.ack(&s, "g", &all).await.unwrap(), 10);
    }

    pub async fn restarted_consumer_rereads_its_own<B: Bus>(bus: Arc<B>, s: String) {
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        for i in 0..6 {
            bus.publish(&s, &payload(i)).await.unwrap();
        }
        let got = bus
            .read_group(&s, "g", "c", 4, Duration::ZERO)
            .await
            .unwrap();
        bus.ack(&s, "g", &[got[1].id]).await.unwrap();
        let again = bus
            .read_own_pending(&s, "g", "c", MessageId::ZERO, 10)
            .await
            .unwrap();
        assert_eq!(
            again.iter().map(index_of).collect::<Vec<_>>(),
            vec![0, 2, 3]
        );
        assert!(again.iter().all(|d| d.delivery_count == 2), "{again:?}");
        let after = bus
            .read_own_pending(&s, "g", "c", again[0].id, 1)
            .await
            .unwrap();
        assert_eq!(after.iter().map(index_of).collect::<Vec<_>>(), vec![2]);
        assert_eq!(after[0].delivery_count, 3);
        assert!(
            bus.read_own_pending(&s, "g", "other", MessageId::ZERO, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn blocking_read_wakes_on_publish<B: Bus + Parked + 'static>(bus: Arc<B>, s: String) {
        bus.ensure_group(&s, "g", StartId::Latest).await.unwrap();
        let empty = bus
            .read_group(&s, "g", "c", 1, Duration::from_millis(50))
            .await
            .unwrap();
        assert!(empty.is_empty());
        // The empty read above opened the consumer's connection; it is among these.
        let connections = bus.connections().await;
        // The read is driven here, not spawned, so the case knows it has started and is
        // parked before publishing: otherwise a late reader would find the message without
        // waiting and the case would not test waking at all.
        let started = Instant::now();
        let read = bus.read_group(&s, "g", "c", 10, Duration::from_secs(20));
        tokio::pin!(read);
        loop {
            if let Poll::Ready(r) = futures::poll!(read.as_mut()) {
                panic!("the blocking read returned before anything was published: {r:?}");
            }
            if bus.reader_parked(&connections).await {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the reader never blocked"
            );
            tokio::task::yield_now().await;
        }
        bus.publish(&s, &payload(7)).await.unwrap();
        let got = read.await.unwrap();
        assert_eq!(got.iter().map(index_of).collect::<Vec<_>>(), vec![7]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the read waited out its block instead of waking"
        );
    }

    pub async fn large_and_empty_payloads<B: Bus>(bus: Arc<B>, s: String) {
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        let big: Vec<u8> = (0..5 * 1024 * 1024)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let payloads: Vec<Vec<u8>> = vec![big, Vec::new(), vec![0u8], (0..=255u8).collect()];
        for p in &payloads {
            bus.publish(&s, p).await.unwrap();
        }
        let got = bus
            .read_group(&s, "g", "c", 10, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(got.len(), payloads.len());
        for (d, p) in got.iter().zip(&payloads) {
            assert_eq!(d.payload.as_ref(), p.as_slice());
        }
    }

    pub async fn trim_drops_oldest_and_their_pending<B: Bus>(bus: Arc<B>, s: String) {
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        for i in 0..10 {
            bus.publish(&s, &payload(i)).await.unwrap();
        }
        let got = bus
            .read_group(&s, "g", "c", 4, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(bus.trim(&s, 7).await.unwrap(), 3);
        assert_eq!(bus.len(&s).await.unwrap(), 7);
        // Trimmed messages are gone from the claim (and then from the pending list).
        let claimed = bus
            .claim_stale(&s, "g", "d", Duration::ZERO, 10)
            .await
            .unwrap();
        assert_eq!(claimed.iter().map(index_of).collect::<Vec<_>>(), vec![3]);
        assert_eq!(bus.pending(&s, "g").await.unwrap().total, 1);
        let rest = bus
            .read_group(&s, "g", "c", 100, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            rest.iter().map(index_of).collect::<Vec<_>>(),
            (4..10).collect::<Vec<_>>()
        );
        assert_eq!(bus.trim(&format!("{s}:missing"), 1).await.unwrap(), 0);
    }

    /// Three workers through `GroupReader`; one dies holding messages. Every message is
    /// acknowledged, and no message is handled by two live workers.
    pub async fn nothing_lost_when_a_worker_dies<B: Bus + 'static>(bus: Arc<B>, s: String) {
        const N: usize = 120;
        let config = GroupReaderConfig {
            batch: 4,
            block: Duration::from_millis(100),
            min_idle: Duration::from_millis(400),
        };
        // The victim joins first and takes a batch, then stops without acknowledging.
        for i in 0..N {
            bus.publish(&s, &payload(i)).await.unwrap();
        }
        let mut victim =
            GroupReader::join(bus.clone(), &s, "g", "victim", StartId::Beginning, config)
                .await
                .unwrap();
        let lost = victim.next_batch().await.unwrap();
        assert_eq!(lost.len(), 4);
        drop(victim);

        let handled: Arc<Mutex<HashMap<usize, Vec<String>>>> = Arc::default();
        let mut workers = Vec::new();
        for name in ["w1", "w2"] {
            let (bus, s, handled) = (bus.clone(), s.clone(), handled.clone());
            workers.push(tokio::spawn(async move {
                let mut reader = GroupReader::join(bus, &s, "g", name, StartId::Beginning, config)
                    .await
                    .unwrap();
                while handled.lock().unwrap().len() < N {
                    let got = reader.next_batch().await.unwrap();
                    for d in &got {
                        handled
                            .lock()
                            .unwrap()
                            .entry(index_of(d))
                            .or_default()
                            .push(name.to_owned());
                    }
                    let ids: Vec<MessageId> = got.iter().map(|d| d.id).collect();
                    reader.ack(&ids).await.unwrap();
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        {
            let handled = handled.lock().unwrap();
            assert_eq!(handled.len(), N, "messages lost");
            for (i, by) in handled.iter() {
                assert_eq!(
                    by.len(),
                    1,
                    "message {i} handled by two live workers: {by:?}"
                );
            }
        }
        assert_eq!(bus.pending(&s, "g").await.unwrap().total, 0);
    }

    /// A worker restarting under the same name first gets back what it had not acknowledged,
    /// without waiting for `min_idle`, then carries on with new messages.
    pub async fn rejoining_reader_resumes_its_own<B: Bus + 'static>(bus: Arc<B>, s: String) {
        let config = GroupReaderConfig {
            batch: 3,
            block: Duration::from_millis(50),
            min_idle: Duration::from_secs(60),
        };
        for i in 0..5 {
            bus.publish(&s, &payload(i)).await.unwrap();
        }
        let mut first = GroupReader::join(bus.clone(), &s, "g", "w", StartId::Beginning, config)
            .await
            .unwrap();
        let got = first.next_batch().await.unwrap();
        assert_eq!(got.iter().map(index_of).collect::<Vec<_>>(), vec![0, 1, 2]);
        first.ack(&[got[1].id]).await.unwrap();
        drop(first);
        let mut again = GroupReader::join(bus.clone(), &s, "g", "w", StartId::Beginning, config)
            .await
            .unwrap();
        let resumed = again.next_batch().await.unwrap();
        assert_eq!(resumed.iter().map(index_of).collect::<Vec<_>>(), vec![0, 2]);
        assert!(resumed.iter().all(|d| d.delivery_count == 2), "{resumed:?}");
        let ids: Vec<MessageId> = resumed.iter().map(|d| d.id).collect();
        again.ack(&ids).await.unwrap();
        let next = again.next_batch().await.unwrap();
        assert_eq!(next.iter().map(index_of).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(next[0].delivery_count, 1);
    }

    pub async fn chain_events_round_trip<B: Bus>(bus: Arc<B>, s: String) {
        use stratbox_proto::v1::{BlockInfo, ChainEvent, TraceContext, chain_event::Kind};
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        let event = ChainEvent {
            event_id: "31337:5:0:0xabc".into(),
            last_sync_block: 5,
            timestamp: 1_700_000_000,
            chain_id: 31337,
            trace: None,
            kind: Some(Kind::NewBlock(BlockInfo {
                number: 5,
                timestamp: 1_700_000_000,
                hash: "0xabc".into(),
                parent_hash: "0xdef".into(),
            })),
        };
        let id = publish_event(bus.as_ref(), &s, &event).await.unwrap();
        // A publisher's own trace id is kept exactly.
        let traced = ChainEvent {
            event_id: "31337:5:1:0xabc".into(),
            trace: Some(TraceContext {
                trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
                span_id: "b7ad6b7169203331".into(),
            }),
            ..event.clone()
        };
        let traced_id = publish_event(bus.as_ref(), &s, &traced).await.unwrap();
        bus.publish(&s, b"\xff\xff not protobuf").await.unwrap();
        let got = bus
            .read_group(&s, "g", "c", 10, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(got.len(), 3);
        // An event published without a trace id is born with one.
        let mut decoded = decode_event(&got[0]).unwrap();
        assert_eq!(decoded.id, id);
        let born = decoded
            .event
            .trace
            .take()
            .expect("a trace context")
            .trace_id;
        assert_eq!(born.len(), 32, "{born}");
        assert!(stratbox_proto::trace::is_usable(&born), "{born}");
        assert_eq!(decoded.event, event);
        let decoded = decode_event(&got[1]).unwrap();
        assert_eq!(decoded.id, traced_id);
        assert_eq!(decoded.event, traced);
        assert!(matches!(
            decode_event(&got[2]),
            Err(BusError::Decode { .. })
        ));
        assert_eq!(CHAIN_EVENTS_STREAM, "stream:chain:events");
    }
}

macro_rules! conformance {
    ($flavour:ident, $make:path) => {
        mod $flavour {
            use super::*;
            conformance!(@case $make, ordering, group_start_positions, missing_group_is_an_error,
                consumers_split_the_work, concurrent_consumers_each_message_once,
                ack_removes_from_pending, dead_consumer_messages_are_claimed,
                restarted_consumer_rereads_its_own, blocking_read_wakes_on_publish,
                large_and_empty_payloads, trim_drops_oldest_and_their_pending,
                nothing_lost_when_a_worker_dies, rejoining_reader_resumes_its_own, chain_events_round_trip);
        }
    };
    (@case $make:path, $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                run($make().await, stringify!($case), suite::$case).await;
            }
        )*
    };
}

conformance!(memory, memory_bus);
conformance!(redis, redis_bus);

/// Kills every connection the Redis bus holds while a consumer is blocked reading and a
/// producer is publishing: the bus reconnects and every message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_survives_killed_connections() {
    let bus = redis_bus().await;
    run(bus, "killed", |bus: Arc<RedisBus>, s: String| async move {
        const N: usize = 200;
        bus.ensure_group(&s, "g", StartId::Beginning).await.unwrap();
        // Opens the consumer's blocking connection so it can be killed too.
        assert!(
            bus.read_group(&s, "g", "c", 1, Duration::from_millis(1))
                .await
                .unwrap()
                .is_empty()
        );
        let ids = bus.connection_ids().await.unwrap();
        assert_eq!(
            ids.len(),
            2,
            "one shared and one blocking connection expected: {ids:?}"
        );

        // How many distinct messages the consumer has acknowledged so far.
        let caught_up = Arc::new(AtomicUsize::new(0));
        let consumer = {
            let (bus, s, caught_up) = (bus.clone(), s.clone(), caught_up.clone());
            tokio::spawn(async move {
                let mut seen = BTreeSet::new();
                while seen.len() < N {
                    let got = bus
                        .read_group(&s, "g", "c", 10, Duration::from_millis(500))
                        .await
                        .unwrap();
                    let acks: Vec<MessageId> = got.iter().map(|d| d.id).collect();
                    seen.extend(got.iter().map(index_of));
                    bus.ack(&s, "g", &acks).await.unwrap();
                    caught_up.store(seen.len(), Ordering::SeqCst);
                }
                seen
            })
        };
        let admin = ::redis::Client::open(stratbox_testenv::redis_url()).unwrap();
        let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
        for i in 0..N {
            bus.publish(&s, &payload(i)).await.unwrap();
            if i == N / 3 || i == 2 * N / 3 {
                // The kill must catch the consumer in a blocking read: wait until it has
                // everything published so far and is parked waiting for more.
                // (A loop, not `wait_until`: an async closure here makes the case's future
                // not provably `Send`.)
                let deadline = Instant::now() + Duration::from_secs(30);
                // The connections are asked afresh each time: a kill makes the bus reconnect (this
                // may wait out a 500 ms block on the reader's connection, which is harmless).
                while !(caught_up.load(Ordering::SeqCst) > i
                    && bus.reader_parked(&bus.connections().await).await)
                {
                    assert!(
                        Instant::now() < deadline,
                        "the consumer did not catch up and block again within 30 s"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                for id in bus.connection_ids().await.unwrap() {
                    let killed: i64 = ::redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("ID")
                        .arg(id)
                        .query_async(&mut admin)
                        .await
                        .unwrap();
                    assert_eq!(killed, 1, "connection {id} was not killed");
                }
            }
        }
        let seen = tokio::time::timeout(Duration::from_secs(60), consumer)
            .await
            .expect("consumer stalled after the connections were killed")
            .unwrap();
        assert_eq!(seen, (0..N).collect::<BTreeSet<_>>());
        // Publishes retried after a lost reply may have appended a message twice; none lost.
        assert!(bus.len(&s).await.unwrap() >= N as u64);
        let new_ids = bus.connection_ids().await.unwrap();
        assert!(
            new_ids.iter().all(|id| !ids.contains(id)),
            "connections were not replaced: {ids:?} -> {new_ids:?}"
        );
        assert_eq!(bus.pending(&s, "g").await.unwrap().total, 0);
    })
    .await;
}
