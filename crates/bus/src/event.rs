use prost::Message;
use stratbox_proto::trace;
use stratbox_proto::v1::{ChainEvent, TraceContext};

use crate::{Bus, BusError, Delivery, MessageId};

/// A `ChainEvent` as one consumer of a group received it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDelivery {
    /// Acknowledge with this id once the event is processed.
    pub id: MessageId,
    /// As [`Delivery::delivery_count`]: above 1 it is a redelivery.
    pub delivery_count: u64,
    /// The decoded event.
    pub event: ChainEvent,
}

/// Appends a `ChainEvent`, prost-encoded, to `stream`.
///
/// An event without a usable trace id is given a fresh one here, so every event is born
/// with the id its host's, engine's and signer's log lines and its task rows will carry;
/// the event's own id is kept when it has one, since its publisher may already have logged it.
pub async fn publish_event<B: Bus + ?Sized>(
    bus: &B,
    stream: &str,
    event: &ChainEvent,
) -> Result<MessageId, BusError> {
    let given = event.trace.as_ref().map_or("", |t| t.trace_id.as_str());
    if trace::is_usable(given) {
        return bus.publish(stream, &event.encode_to_vec()).await;
    }
    let mut stamped = event.clone();
    let trace_id = trace::new_id();
    if !given.is_empty() {
        tracing::warn!(
            event_id = %event.event_id.escape_debug().take(128).collect::<String>(),
            given = %given.escape_debug().take(64).collect::<String>(),
            trace_id = %trace_id,
            "unusable trace id of a published event replaced"
        );
    }
    let span_id = stamped.trace.take().map(|t| t.span_id).unwrap_or_default();
    stamped.trace = Some(TraceContext { trace_id, span_id });
    bus.publish(stream, &stamped.encode_to_vec()).await
}

/// Decodes a delivery of an event stream. A message that does not decode is a poison message:
/// the caller acknowledges (and logs) it rather than letting it be re-delivered forever.
pub fn decode_event(delivery: &Delivery) -> Result<EventDelivery, BusError> {
    let event =
        ChainEvent::decode(delivery.payload.as_ref()).map_err(|source| BusError::Decode {
            id: delivery.id,
            source,
        })?;
    Ok(EventDelivery {
        id: delivery.id,
        delivery_count: delivery.delivery_count,
        event,
    })
}
