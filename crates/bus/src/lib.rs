//! The event bus between stratbox's zones.
//!
//! The chain adapter appends market events to one stream; strategy hosts read it through
//! consumer groups, so adding a host spreads the work without any configuration, and a
//! message is acknowledged only once the engine has accepted what the strategy proposed for
//! it. A host that dies leaves its un-acknowledged messages pending; another host claims them
//! after `min_idle` ([`Bus::claim_stale`], Redis' `XAUTOCLAIM`), so nothing is lost.
//!
//! Two implementations share one contract, checked by the same conformance suite:
//! [`RedisBus`] (Redis Streams, production) and [`MemoryBus`] (in-process, the embedded
//! default). Delivery is at least once: a consumer may see a message again after a crash or
//! a dropped connection, so consumers deduplicate on `ChainEvent::event_id`.
#![warn(missing_docs)]

mod error;
mod event;
mod group;
mod id;
mod memory;
mod redis_streams;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

pub use error::BusError;
pub use event::{EventDelivery, decode_event, publish_event};
pub use group::{GroupReader, GroupReaderConfig};
pub use id::MessageId;
pub use memory::MemoryBus;
pub use redis_streams::{RedisBus, RedisBusConfig};

/// The stream the chain adapter publishes `ChainEvent`s on (see DESIGN.md, storage names).
pub const CHAIN_EVENTS_STREAM: &str = "stream:chain:events";

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartId {
    /// Every message still in the stream (`0`).
    Beginning,
    /// Only messages published after the group is created (`$`).
    Latest,
    /// Messages after this id.
    After(MessageId),
}

/// One message handed to one consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Acknowledge with this id; also a resume position.
    pub id: MessageId,
    /// The message as published; the bus never inspects it.
    pub payload: Bytes,
    /// How many times the group has handed this message out, this time included; above 1 it
    /// was claimed from a consumer that did not acknowledge it (poison-message detection).
    pub delivery_count: u64,
}

/// What a group has handed out but not had acknowledged yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingSummary {
    /// Pending messages over all consumers.
    pub total: u64,
    /// Consumers with at least one pending message.
    pub per_consumer: BTreeMap<String, u64>,
}

/// Result of a bus operation, boxed so `dyn Bus` works and the engine can pick Redis or the
/// in-process bus at start-up.
pub type BusFuture<'a, T> = BoxFuture<'a, Result<T, BusError>>;

/// A log of messages per stream with consumer groups, Redis Streams semantics.
///
/// Every implementation must pass the conformance suite in `tests/conformance.rs`.
pub trait Bus: Send + Sync {
    /// Appends a message; ids increase strictly within a stream.
    fn publish<'a>(&'a self, stream: &'a str, payload: &'a [u8]) -> BusFuture<'a, MessageId>;

    /// Creates the group (and the stream) if missing; an existing group keeps its position.
    fn ensure_group<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        start: StartId,
    ) -> BusFuture<'a, ()>;

    /// Hands up to `count` messages never delivered to the group to `consumer`, waiting up to
    /// `block` for one to arrive (`Duration::ZERO`: do not wait). Each message goes to exactly
    /// one consumer of the group and stays pending until acknowledged.
    fn read_group<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        count: usize,
        block: Duration,
    ) -> BusFuture<'a, Vec<Delivery>>;

    /// Re-reads what is pending for `consumer` itself with ids above `after`, oldest first: a
    /// consumer restarting under the same name picks up what it had not acknowledged before
    /// it stopped. Counts as another delivery of each message.
    fn read_own_pending<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        after: MessageId,
        count: usize,
    ) -> BusFuture<'a, Vec<Delivery>>;

    /// Acknowledges messages; returns how many were pending.
    fn ack<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        ids: &'a [MessageId],
    ) -> BusFuture<'a, u64>;

    /// Takes over up to `count` messages pending for at least `min_idle` with any consumer
    /// (`XAUTOCLAIM`), oldest first. Messages trimmed from the stream meanwhile are dropped
    /// from the pending list instead of being returned.
    fn claim_stale<'a>(
        &'a self,
        stream: &'a str,
        group: &'a str,
        consumer: &'a str,
        min_idle: Duration,
        count: usize,
    ) -> BusFuture<'a, Vec<Delivery>>;

    /// Counts pending messages of a group.
    fn pending<'a>(&'a self, stream: &'a str, group: &'a str) -> BusFuture<'a, PendingSummary>;

    /// Number of messages in the stream (0 if it does not exist).
    fn len<'a>(&'a self, stream: &'a str) -> BusFuture<'a, u64>;

    /// Drops the oldest messages so at most `max_len` remain; returns how many were dropped.
    fn trim<'a>(&'a self, stream: &'a str, max_len: u64) -> BusFuture<'a, u64>;

    /// Deletes the stream with its groups; returns whether it existed.
    fn delete_stream<'a>(&'a self, stream: &'a str) -> BusFuture<'a, bool>;
}
