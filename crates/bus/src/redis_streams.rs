use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, RedisError, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{Bus, BusError, BusFuture, Delivery, MessageId, PendingSummary, StartId};

/// The field each stream entry stores its payload under.
const PAYLOAD_FIELD: &str = "p";

/// Bounds one `claim_stale` call: `XAUTOCLAIM` scans at most `COUNT * 10` pending entries per
/// call, and a script must not block Redis for long.
const CLAIM_SCRIPT: &str = r#"
local want = tonumber(ARGV[4])
local out = {}
local cursor = '0-0'
local rounds = 0
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', want - #out)
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if type(e) == 'table' then
      local payload = false
      local fields = e[2]
      if type(fields) == 'table' then
        for i = 1, #fields, 2 do
          if fields[i] == ARGV[5] then payload = fields[i + 1] end
        end
      end
      local n = 1
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
      if p[1] then n = p[1][4] end
      table.insert(out, {e[1], payload, n})
    end
  end
  rounds = rounds + 1
until cursor == '0-0' or #out >= want or rounds >= 10
return out
"#;

/// How [`RedisBus`] connects and how long it keeps retrying a dropped connection.
#[derive(Debug, Clone)]
pub struct RedisBusConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// How long one operation keeps retrying transient failures (dropped connection, Redis
    /// restarting) before it reports [`BusError::Unavailable`].
    pub retry_for: Duration,
    /// First pause between retries; doubles up to `retry_max_delay`.
    pub retry_initial_delay: Duration,
    /// The ceiling of the doubling retry pause.
    pub retry_max_delay: Duration,
    /// How long one connection attempt may take before it counts as a transient failure.
    pub connect_timeout: Duration,
    /// Bounds every non-blocking command; blocking reads use their own connections and are
    /// bounded by their `block` argument instead.
    pub response_timeout: Duration,
}

impl RedisBusConfig {
    /// The defaults for `url` (retry budget, delays, timeouts), meant for production use.
    pub fn new(url: impl Into<String>) -> Self {
        RedisBusConfig {
            url: url.into(),
            retry_for: Duration::from_secs(30),
            retry_initial_delay: Duration::from_millis(50),
            retry_max_delay: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(10),
        }
    }
}

/// The production bus: Redis Streams through `redis-rs`.
///
/// Non-blocking commands share one multiplexed connection; each (stream, group, consumer)
/// that blocks in `read_group` gets a connection of its own, because Redis serves a
/// connection's commands in order and a blocked `XREADGROUP` would stall every publish and
/// ack queued behind it. Every connection reconnects on its own after a drop, and every
/// operation retries transient failures with exponential backoff for `retry_for`.
///
/// A dropped connection can lose the reply of an `XREADGROUP` that Redis did execute: the
/// messages are then pending for this consumer without it knowing. The bus remembers the
/// newest id it returned to each consumer and, after such a failure, first re-reads the
/// consumer's own pending messages above that id, so they are delivered now rather than only
/// after another consumer's `claim_stale`. A retried `XADD` whose first reply was lost may
/// append the message twice; consumers deduplicate on the event id.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    config: RedisBusConfig,
    shared: ConnectionManager,
    readers: Mutex<HashMap<ReaderKey, ConnectionManager>>,
    last_returned: StdMutex<HashMap<ReaderKey, MessageId>>,
    claim: redis::Script,
}

type ReaderKey = (String, String, String);

fn key(stream: &str, group: &str, consumer: &str) -> ReaderKey {
    (stream.to_owned(), group.to_owned(), consumer.to_owned())
}

fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || matches!(
            e.kind(),
            ErrorKind::BusyLoadingError | ErrorKind::TryAgain | ErrorKind::MasterDown
        )
}

/// Exponential backoff over one operation's retry budget.
struct Retry<'a> {
    op: &'static str,
    stream: &'a str,
    group: &'a str,
    started: Instant,
    delay: Duration,
    config: &'a RedisBusConfig,
}

impl<'a> Retry<'a> {
    fn new(op: &'static str, stream: &'a str, group: &'a str, config: &'a RedisBusConfig) -> Self {
        Retry {
            op,
            stream,
            group,
            started: Instant::now(),
            delay: config.retry_initial_delay,
            config,
        }
    }

    fn fatal(&self, e: RedisError) -> BusError {
        if e.code() == Some("NOGROUP") {
            BusError::NoGroup {
                stream: self.stream.to_owned(),
                group: self.group.to_owned(),
            }
        } else {
            BusError::Redis {
                op: self.op,
                source: e,
            }
        }
    }

    /// Waits before the next attempt, or says why there is none.
    async fn after(&mut self, e: RedisError) -> Result<(), BusError> {
        if !is_transient(&e) {
            return Err(self.fatal(e));
        }
        let waited = self.started.elapsed();
        if waited >= self.config.retry_for {
            return Err(BusError::Unavailable {
                op: self.op,
                waited,
                reason: e.to_string(),
            });
        }
        tracing::warn!(op = self.op, stream = self.stream, error = %e, retry_in = ?self.delay, "redis bus: transient failure, retrying");
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(self.config.retry_max_delay);
        Ok(())
    }
}

fn protocol(op: &'static str, detail: impl Into<String>) -> BusError {
    BusError::Protocol {
        op,
        detail: detail.into(),
    }
}

fn as_text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => as_text(other).and_then(|t| std::str::from_utf8(t).ok()?.parse().ok()),
    }
}

fn parse_id(op: &'static str, v: &Value) -> Result<MessageId, BusError> {
    let text = as_text(v).ok_or_else(|| protocol(op, format!("message id is {v:?}")))?;
    let text = std::str::from_utf8(text).map_err(|_| protocol(op, "message id is not UTF-8"))?;
    text.parse()
}

fn payload_of(fields: &Value) -> Option<Bytes> {
    let pairs: Vec<(&Value, &Value)> = match fields {
        Value::Array(items) => items.chunks_exact(2).map(|c| (&c[0], &c[1])).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    pairs
        .into_iter()
        .find(|(k, _)| as_text(k) == Some(PAYLOAD_FIELD.as_bytes()))
        .and_then(|(_, v)| as_text(v).map(Bytes::copy_from_slice))
}

/// Entries of an `XREADGROUP` reply. Entries whose message was trimmed away (nil fields)
/// are skipped, as the in-process bus does.
fn parse_read(
    op: &'static str,
    reply: Value,
    delivery_count: u64,
) -> Result<Vec<Delivery>, BusError> {
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        Value::Map(items) => items
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        other => return Err(protocol(op, format!("reply is {other:?}"))),
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(mut pair) = s else {
            return Err(protocol(op, "stream reply is not a pair"));
        };
        let Some(Value::Array(entries)) = pair.pop() else {
            return Err(protocol(op, "stream reply has no entry list"));
        };
        for entry in entries {
            let Value::Array(parts) = entry else {
                return Err(protocol(op, "entry is not an array"));
            };
            let [id, fields] = parts.as_slice() else {
                return Err(protocol(op, "entry is not [id, fields]"));
            };
            let id = parse_id(op, id)?;
            if let Some(payload) = payload_of(fields) {
                out.push(Delivery {
                    id,
                    payload,
                    delivery_count,
                });
            }
        }
    }
    Ok(out)
}

fn block_arg(block: Duration) -> Option<u64> {
    // BLOCK 0 would mean "forever" to Redis; a sub-millisecond wait becomes 1 ms.
    (!block.is_zero()).then(|| u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1))
}

impl RedisBus {
    /// Connects (retrying for `connect_timeout` per attempt, with backoff) and checks the
    /// server answers.
    pub async fn connect(config: RedisBusConfig) -> Result<Self, BusError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|source| BusError::Redis { op: "open", source })?;
        let shared = Self::manager(&client, &config, Some(config.response_timeout)).await?;
        let bus = RedisBus {
            inner: Arc::new(Inner {
                client,
                config,
                shared,
                readers: Mutex::new(HashMap::new()),
                last_returned: StdMutex::new(HashMap::new()),
                claim: redis::Script::new(CLAIM_SCRIPT),
            }),
        };
        let mut retry = Retry::new("PING", "", "", &bus.inner.config);
        loop {
            let mut conn = bus.inner.shared.clone();
            match redis::cmd("PING").query_async::<String>(&mut conn).await {
                Ok(_) => return Ok(bus),
                Err(e) => retry.after(e).await?,
            }
        }
    }

    async fn manager(
        client: &redis::Client,
        config: &RedisBusConfig,
        response_timeout: Option<Duration>,
    ) -> Result<ConnectionManager, BusError> {
        let max_delay = u64::try_from(config.retry_max_delay.as_millis()).unwrap_or(u64::MAX);
        let factor = u64::try_from(config.retry_initial_delay.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(config.connect_timeout)
            .set_factor(factor)
            .set_max_delay(max_delay)
            .set_number_of_retries(8);
        if let Some(t) = response_timeout {
            cfg = cfg.set_response_timeout(t);
        }
        ConnectionManager::new_with_config(client.clone(), cfg)
            .await
            .map_err(|e| BusError::Unavailable {
                op: "connect",
                waited: config.connect_timeout,
                reason: e.to_string(),
            })
    }

    async fn reader(&self, k: &ReaderKey) -> Result<ConnectionManager, BusError> {
        let mut readers = self.inner.readers.lock().await;
        if let Some(c) = readers.get(k) {
            return Ok(c.clone());
        }
        let c = Self::manager(&self.inner.client, &self.inner.config, None).await?;
        readers.insert(k.clone(), c.clone());
        Ok(c)
    }

    fn note_returned(&self, k: &ReaderKey, got: &[Delivery]) {
        if let Some(max) = got.iter().map(|d| d.id).max() {
            let mut last = self
                .inner
                .last_returned
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let slot = last.entry(k.clone()).or_default();
            *slot = (*slot).max(max);
        }
    }

    fn last_returned(&self, k: &ReaderKey) -> MessageId {
        let last = self
            .inner
            .last_returned
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        last.get(k).copied().unwrap_or_default()
    }

    /// Runs one non-blocking command on the shared connection with retries.
    async fn run(
        &self,
        op: &'static str,
        stream: &str,
        group: &str,
        cmd: &Cmd,
    ) -> Result<Value, BusError> {
        let mut retry = Retry::new(op, stream, group, &self.inner.config);
        loop {
            let mut conn = self.inner.shared.clone();
            match cmd.query_async::<Value>(&mut conn).await {
                Ok(v) => return Ok(v),
                Err(e) => retry.after(e).await?,
            }
        }
    }

    /// Redis client ids of every connection this bus holds (diagnostics; the tests kill them
    /// with `CLIENT KILL ID` to prove the bus survives a dropped connection).
    pub async fn connection_ids(&self) -> Result<Vec<i64>, BusError> {
        let mut conns = vec![self.inner.shared.clone()];
        conns.extend(self.inner.readers.lock().await.values().cloned());
        let mut ids = Vec::new();
        for mut c in conns {
            let id = redis::cmd("CLIENT")
                .arg("ID")
                .query_async::<i64>(&mut c)
                .await
                .map_err(|source| BusError::Redis {
                    op: "CLIENT ID",
                    source,
                })?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// History reads do not say how often a message was delivered; `XPENDING` does (these
    /// are the consumer's own entries, so only a concurrent claim could change them).
    async fn fill_counts(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        got: &mut [Delivery],
    ) -> Result<(), BusError> {
        let (Some(first), Some(last)) = (got.first().map(|d| d.id), got.last().map(|d| d.id))
        else {
            return Ok(());
        };
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(stream)
            .arg(group)
            .arg(first.to_string())
            .arg(last.to_string())
            .arg(got.len())
            .arg(consumer);
        let reply = self.run("XPENDING", stream, group, &cmd).await?;
        let counts = parse_pending_counts(reply)?;
        for d in got.iter_mut() {
            d.delivery_count = counts.get(&d.id).copied().unwrap_or(1);
        }
        Ok(())
    }

    fn history_cmd(
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        after: MessageId,
    ) -> Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(stream)
            .arg(after.to_string());
        cmd
    }
}

impl Bus for RedisBus {
    fn publish<'a>(&'a self, stream: &'a str, payload: &'a [u8]) -> BusFuture<'a, MessageId> {
        Box::pin(async move {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(stream).arg("*").arg(PAYLOAD_FIELD).arg(payload);
            let reply = self.run("XADD", stream, "", &cmd).await?;
            parse_id("XADD", &reply)
        })
    }

    fn ensure_group<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        start: StartId,
    ) -> BusFuture<'a, ()> {
        Box::pin(async move {
            let start = match start {
                StartId::Beginning => "0".to_owned(),
                StartId::Latest => "$".to_owned(),
                StartId::After(id) => id.to_string(),
            };
            let mut cmd = redis::cmd("XGROUP");
            cmd.arg("CREATE")
                .arg(stream)
                .arg(group)
                .arg(start)
                .arg("MKSTREAM");
            match self.run("XGROUP CREATE", stream, group, &cmd).await {
                Ok(_) => Ok(()),
                Err(BusError::Redis { source, .. }) if source.code() == Some("BUSYGROUP") => Ok(()),
                Err(e) => Err(e),
            }
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
            let k = key(stream, group, consumer);
            let mut retry = Retry::new("XREADGROUP", stream, group, &self.inner.config);
            let mut recovering = false;
            loop {
                let result = if recovering {
                    let cmd =
                        Self::history_cmd(stream, group, consumer, count, self.last_returned(&k));
                    let mut conn = self.inner.shared.clone();
                    cmd.query_async::<Value>(&mut conn).await.map(|v| (v, true))
                } else {
                    let mut cmd = redis::cmd("XREADGROUP");
                    cmd.arg("GROUP")
                        .arg(group)
                        .arg(consumer)
                        .arg("COUNT")
                        .arg(count);
                    if let Some(ms) = block_arg(block) {
                        cmd.arg("BLOCK").arg(ms);
                    }
                    cmd.arg("STREAMS").arg(stream).arg(">");
                    let mut conn = if block.is_zero() {
                        self.inner.shared.clone()
                    } else {
                        self.reader(&k).await?
                    };
                    cmd.query_async::<Value>(&mut conn)
                        .await
                        .map(|v| (v, false))
                };
                match result {
                    Ok((reply, was_history)) => {
                        let mut got = parse_read("XREADGROUP", reply, 1)?;
                        if was_history {
                            recovering = false;
                            if got.is_empty() {
                                continue;
                            }
                            self.fill_counts(stream, group, consumer, &mut got).await?;
                            tracing::info!(
                                stream,
                                group,
                                consumer,
                                recovered = got.len(),
                                "redis bus: re-read messages whose delivery was cut off"
                            );
                        }
                        self.note_returned(&k, &got);
                        return Ok(got);
                    }
                    Err(e) => {
                        retry.after(e).await?;
                        recovering = true;
                    }
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
            let k = key(stream, group, consumer);
            let cmd = Self::history_cmd(stream, group, consumer, count, after);
            let reply = self.run("XREADGROUP", stream, group, &cmd).await?;
            let mut got = parse_read("XREADGROUP", reply, 0)?;
            self.fill_counts(stream, group, consumer, &mut got).await?;
            self.note_returned(&k, &got);
            Ok(got)
        })
    }

    fn ack<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        ids: &'a [MessageId],
    ) -> BusFuture<'a, u64> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(0);
            }
            let mut cmd = redis::cmd("XACK");
            cmd.arg(stream).arg(group);
            for id in ids {
                cmd.arg(id.to_string());
            }
            let reply = self.run("XACK", stream, group, &cmd).await?;
            as_int(&reply).ok_or_else(|| protocol("XACK", format!("reply is {reply:?}")))
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
            let min_idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
            let mut retry = Retry::new("XAUTOCLAIM", stream, group, &self.inner.config);
            let reply = loop {
                let mut conn = self.inner.shared.clone();
                let mut inv = self.inner.claim.prepare_invoke();
                inv.key(stream)
                    .arg(group)
                    .arg(consumer)
                    .arg(min_idle_ms)
                    .arg(count)
                    .arg(PAYLOAD_FIELD);
                match inv.invoke_async::<Value>(&mut conn).await {
                    Ok(v) => break v,
                    Err(e) => retry.after(e).await?,
                }
            };
            let Value::Array(items) = reply else {
                return Err(protocol("XAUTOCLAIM", format!("reply is {reply:?}")));
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let Value::Array(parts) = item else {
                    return Err(protocol("XAUTOCLAIM", "claimed entry is not an array"));
                };
                let [id, payload, n] = parts.as_slice() else {
                    return Err(protocol(
                        "XAUTOCLAIM",
                        "claimed entry is not [id, payload, count]",
                    ));
                };
                let id = parse_id("XAUTOCLAIM", id)?;
                // `false` from Lua arrives as nil: an entry without our payload field.
                let Some(payload) = as_text(payload).map(Bytes::copy_from_slice) else {
                    continue;
                };
                let delivery_count = as_int(n)
                    .ok_or_else(|| protocol("XAUTOCLAIM", "delivery count is not a number"))?;
                out.push(Delivery {
                    id,
                    payload,
                    delivery_count,
                });
            }
            self.note_returned(&key(stream, group, consumer), &out);
            Ok(out)
        })
    }

    fn pending<'a>(&'a self, stream: &'a str, group: &'a str) -> BusFuture<'a, PendingSummary> {
        Box::pin(async move {
            let mut cmd = redis::cmd("XPENDING");
            cmd.arg(stream).arg(group);
            let reply = self.run("XPENDING", stream, group, &cmd).await?;
            let Value::Array(parts) = reply else {
                return Err(protocol("XPENDING", format!("reply is {reply:?}")));
            };
            let [total, _, _, consumers] = parts.as_slice() else {
                return Err(protocol(
                    "XPENDING",
                    "summary is not [count, min, max, consumers]",
                ));
            };
            let mut summary = PendingSummary {
                total: as_int(total)
                    .ok_or_else(|| protocol("XPENDING", "count is not a number"))?,
                ..PendingSummary::default()
            };
            if let Value::Array(consumers) = consumers {
                for c in consumers {
                    let Value::Array(pair) = c else {
                        return Err(protocol("XPENDING", "consumer entry is not a pair"));
                    };
                    let [name, n] = pair.as_slice() else {
                        return Err(protocol("XPENDING", "consumer entry is not [name, count]"));
                    };
                    let name = as_text(name).map(|n| String::from_utf8_lossy(n).into_owned());
                    let n = as_int(n);
                    let (Some(name), Some(n)) = (name, n) else {
                        return Err(protocol("XPENDING", "consumer entry has the wrong types"));
                    };
                    summary.per_consumer.insert(name, n);
                }
            }
            Ok(summary)
        })
    }

    fn len<'a>(&'a self, stream: &'a str) -> BusFuture<'a, u64> {
        Box::pin(async move {
            let mut cmd = redis::cmd("XLEN");
            cmd.arg(stream);
            let reply = self.run("XLEN", stream, "", &cmd).await?;
            as_int(&reply).ok_or_else(|| protocol("XLEN", format!("reply is {reply:?}")))
        })
    }

    fn trim<'a>(&'a self, stream: &'a str, max_len: u64) -> BusFuture<'a, u64> {
        Box::pin(async move {
            let mut cmd = redis::cmd("XTRIM");
            cmd.arg(stream).arg("MAXLEN").arg("=").arg(max_len);
            let reply = self.run("XTRIM", stream, "", &cmd).await?;
            as_int(&reply).ok_or_else(|| protocol("XTRIM", format!("reply is {reply:?}")))
        })
    }

    fn delete_stream<'a>(&'a self, stream: &'a str) -> BusFuture<'a, bool> {
        Box::pin(async move {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(stream);
            let reply = self.run("DEL", stream, "", &cmd).await?;
            let removed =
                as_int(&reply).ok_or_else(|| protocol("DEL", format!("reply is {reply:?}")))?;
            // Blocking connections of consumers of the deleted stream are no longer needed.
            self.inner
                .readers
                .lock()
                .await
                .retain(|(s, _, _), _| s != stream);
            Ok(removed > 0)
        })
    }
}

/// Delivery counts from the extended form of `XPENDING`.
fn parse_pending_counts(reply: Value) -> Result<HashMap<MessageId, u64>, BusError> {
    let Value::Array(rows) = reply else {
        return Err(protocol("XPENDING", format!("reply is {reply:?}")));
    };
    let mut out = HashMap::new();
    for row in rows {
        let Value::Array(cols) = row else {
            return Err(protocol("XPENDING", "row is not an array"));
        };
        let [id, _consumer, _idle, n] = cols.as_slice() else {
            return Err(protocol(
                "XPENDING",
                "row is not [id, consumer, idle, count]",
            ));
        };
        let n = as_int(n).ok_or_else(|| protocol("XPENDING", "count is not a number"))?;
        out.insert(parse_id("XPENDING", id)?, n);
    }
    Ok(out)
}
