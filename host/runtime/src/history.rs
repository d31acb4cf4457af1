//! `host.history`: past events a strategy may ask for, and the zero look-ahead rule.
//!
//! The embedder supplies the events (the backtest from what it has replayed, the live
//! pipeline from its store), but the host enforces the rule itself in [`clip`]: whatever a
//! provider returns, nothing after the snapshot's watermark, nothing before `from-block`,
//! oldest first, at most the limit. A provider bug therefore cannot leak the future.

use crate::wit::{Event, event_block, event_pool};
use std::sync::{Arc, Mutex};

/// Past events for one instance. Called on the thread running the instance, inside a
/// call, so it should answer from memory.
pub trait History: Send {
    /// Events of `pool` from `from_block` on, oldest first, at most `limit`, none after
    /// `watermark`. The host re-checks all of this.
    fn events(&mut self, pool: &str, from_block: u64, limit: usize, watermark: u64) -> Vec<Event>;
}

/// For instances that get no history.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHistory;

impl History for NoHistory {
    fn events(&mut self, _: &str, _: u64, _: usize, _: u64) -> Vec<Event> {
        Vec::new()
    }
}

/// Events the embedder appends as it delivers them (the backtest appends each event
/// before the call it belongs to). Cloning shares the log.
#[derive(Debug, Default, Clone)]
pub struct SharedHistory {
    events: Arc<Mutex<Vec<Event>>>,
}

impl SharedHistory {
    /// An empty log; clones share it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a delivered event. Events are expected in chain order.
    pub fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// Events recorded so far.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True before the first event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl History for SharedHistory {
    fn events(&mut self, pool: &str, from_block: u64, limit: usize, watermark: u64) -> Vec<Event> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events
            .iter()
            .filter(|e| event_pool(e).is_some_and(|p| p.eq_ignore_ascii_case(pool)))
            .filter(|e| {
                let b = event_block(e);
                b >= from_block && b <= watermark
            })
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Enforces the history contract on whatever a provider returned. Returns how many
/// events it had to drop for being after the watermark (a provider bug worth logging).
pub(crate) fn clip(
    events: &mut Vec<Event>,
    from_block: u64,
    limit: usize,
    watermark: u64,
) -> usize {
    let before = events.len();
    events.retain(|e| event_block(e) <= watermark);
    let future = before - events.len();
    events.retain(|e| event_block(e) >= from_block);
    // Oldest first; stable, so the provider's order within a block is kept.
    events.sort_by_key(event_block);
    events.truncate(limit);
    future
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::{BlockInfo, Event};

    fn block(n: u64) -> Event {
        Event::NewBlock(BlockInfo {
            number: n,
            timestamp: n * 12,
            hash: String::new(),
        })
    }

    #[test]
    fn clip_drops_the_future_and_bounds_the_rest() {
        let mut events = vec![block(9), block(3), block(5), block(7), block(4)];
        let future = clip(&mut events, 4, 2, 6);
        assert_eq!(future, 2, "blocks 9 and 7 are after the watermark");
        let blocks: Vec<u64> = events.iter().map(event_block).collect();
        assert_eq!(blocks, vec![4, 5]);
    }
}
