//! The recent canonical chain as the feed has published it: the memory reorg detection
//! compares new blocks against, and what a checkpoint persists.

use std::collections::VecDeque;

use alloy_primitives::B256;

/// Block hashes of the last `capacity` published blocks, contiguous by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalChain {
    blocks: VecDeque<(u64, B256)>,
    capacity: usize,
}

impl CanonicalChain {
    /// Remembers at most `capacity` blocks (at least 1): the deepest reorg the feed can resolve.
    pub fn new(capacity: usize) -> Self {
        CanonicalChain {
            blocks: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Rebuilds from persisted `(number, hash)` pairs; `None` if they are not contiguous.
    pub fn from_blocks(
        blocks: impl IntoIterator<Item = (u64, B256)>,
        capacity: usize,
    ) -> Option<Self> {
        let mut chain = CanonicalChain::new(capacity);
        for (n, h) in blocks {
            if let Some((head, _)) = chain.head()
                && head.checked_add(1) != Some(n)
            {
                return None;
            }
            chain.push(n, h);
        }
        Some(chain)
    }

    /// True before the first block, i.e. with no checkpoint to resume from.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The last block fully published, `(number, hash)`.
    pub fn head(&self) -> Option<(u64, B256)> {
        self.blocks.back().copied()
    }

    /// The oldest block still remembered: a reorg deeper than this cannot be resolved.
    pub fn oldest(&self) -> Option<u64> {
        self.blocks.front().map(|(n, _)| *n)
    }

    /// The remembered hash at `number`; `None` outside the window. Used to find a reorg's common
    /// ancestor.
    pub fn hash_at(&self, number: u64) -> Option<B256> {
        let oldest = self.oldest()?;
        let offset = usize::try_from(number.checked_sub(oldest)?).ok()?;
        self.blocks.get(offset).map(|(_, h)| *h)
    }

    /// Appends the next block. A block that does not follow the head restarts the window
    /// (callers check continuity first; this keeps the window contiguous regardless).
    pub fn push(&mut self, number: u64, hash: B256) {
        if let Some((head, _)) = self.head()
            && head.checked_add(1) != Some(number)
        {
            self.blocks.clear();
        }
        self.blocks.push_back((number, hash));
        while self.blocks.len() > self.capacity {
            self.blocks.pop_front();
        }
    }

    /// Forgets every block after `number`.
    pub fn truncate_after(&mut self, number: u64) {
        while self.head().is_some_and(|(n, _)| n > number) {
            self.blocks.pop_back();
        }
    }

    /// The remembered blocks, oldest first, as a checkpoint saves them.
    pub fn blocks(&self) -> impl Iterator<Item = (u64, B256)> + '_ {
        self.blocks.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> B256 {
        B256::repeat_byte(i)
    }

    #[test]
    fn keeps_a_bounded_contiguous_window() {
        let mut c = CanonicalChain::new(3);
        for n in 10..15u8 {
            c.push(u64::from(n), h(n));
        }
        assert_eq!(c.oldest(), Some(12));
        assert_eq!(c.head(), Some((14, h(14))));
        assert_eq!(c.hash_at(13), Some(h(13)));
        assert_eq!(c.hash_at(11), None);
        assert_eq!(c.hash_at(15), None);
        c.truncate_after(12);
        assert_eq!(c.head(), Some((12, h(12))));
        c.push(20, h(20));
        assert_eq!(c.blocks().collect::<Vec<_>>(), vec![(20, h(20))]);
    }

    #[test]
    fn rebuild_refuses_gaps() {
        assert!(CanonicalChain::from_blocks([(1, h(1)), (3, h(3))], 8).is_none());
        let c = CanonicalChain::from_blocks([(1, h(1)), (2, h(2))], 8).unwrap();
        assert_eq!(c.head(), Some((2, h(2))));
    }
}
