use prost::Message;
use stratbox_proto::v1::ChainEvent;

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
pub async fn publish_event<B: Bus + ?Sized>(
    bus: &B,
    stream: &str,
    event: &ChainEvent,
) -> Result<MessageId, BusError> {
    bus.publish(stream, &event.encode_to_vec()).await
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
