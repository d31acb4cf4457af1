//! A strategy deployment's memory (`stratbox:strategy/memory@0.2.0`), as the host holds it.
//!
//! Guest calls run synchronously on a fleet thread, where no network call may wait, so the
//! host keeps a copy of the deployment's entries in memory: reads are served from it and
//! writes change it at once and are remembered as changes, which the host's service sends to
//! the engine (the store of record) after each event. Every instance of the deployment, of
//! any version, holds a clone of the same [`StrategyMemory`], so a hot swap sees what the old
//! version wrote without waiting for the engine.
//!
//! The cap is checked here, at `set`, so a strategy learns of it in the call that crosses it;
//! the engine checks the same cap again when it stores the changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;

/// What a deployment may hold unless configured otherwise: keys and values, in bytes.
pub const DEFAULT_MEMORY_CAP_BYTES: usize = 64 << 10;

/// Why a `set` was refused; the message is what the guest is given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// Empty, or longer than [`MAX_KEY_BYTES`].
    #[error("memory key is {0} bytes; keys are 1 to {MAX_KEY_BYTES} bytes")]
    Key(usize),
    /// The entries would take more than the cap.
    #[error(
        "memory full: setting a key of {key_bytes} bytes to {value_bytes} bytes would make the deployment's memory {would} bytes, over its cap of {cap} bytes"
    )]
    Full {
        /// The key's length.
        key_bytes: usize,
        /// The value's length.
        value_bytes: usize,
        /// What the memory would hold after the set.
        would: usize,
        /// The cap.
        cap: usize,
    },
}

/// One change to send to the engine: `None` removes the key.
pub type MemoryChange = (String, Option<Vec<u8>>);

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<String, Vec<u8>>,
    /// Sum of key and value lengths over `entries`.
    used: usize,
    cap: usize,
    /// Keys changed since the last [`StrategyMemory::take_changes`].
    dirty: BTreeSet<String>,
}

/// The entries of one deployment; cheap to clone (shared). See the module docs.
#[derive(Debug, Clone)]
pub struct StrategyMemory {
    inner: Arc<Mutex<Inner>>,
}

impl Default for StrategyMemory {
    /// Empty, with the default cap, and not persisted by anyone: what an instance gets when
    /// no deployment memory is given (a backtest, a check).
    fn default() -> Self {
        Self::new(DEFAULT_MEMORY_CAP_BYTES)
    }
}

/// The bytes an entry counts against the cap.
pub fn entry_bytes(key: &str, value: &[u8]) -> usize {
    key.len() + value.len()
}

impl StrategyMemory {
    /// Empty, holding at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self::loaded(cap, std::iter::empty())
    }

    /// The entries the engine stored, none of them a change. They are taken as they are even
    /// over `cap` (a cap lowered since they were written): nothing is lost, and every `set`
    /// that would grow the total is refused until it is back under.
    pub fn loaded(cap: usize, entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let entries: BTreeMap<String, Vec<u8>> = entries.into_iter().collect();
        let used = entries.iter().map(|(k, v)| entry_bytes(k, v)).sum();
        StrategyMemory {
            inner: Arc::new(Mutex::new(Inner {
                entries,
                used,
                cap,
                dirty: BTreeSet::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().entries.get(key).cloned()
    }

    /// Sets `key`, or refuses with the sizes and changes nothing.
    pub fn set(&self, key: &str, value: Vec<u8>) -> Result<(), MemoryError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(MemoryError::Key(key.len()));
        }
        let mut inner = self.lock();
        let old = inner
            .entries
            .get(key)
            .map(|v| entry_bytes(key, v))
            .unwrap_or(0);
        let new = entry_bytes(key, &value);
        let would = inner.used - old + new;
        if new > old && would > inner.cap {
            return Err(MemoryError::Full {
                key_bytes: key.len(),
                value_bytes: value.len(),
                would,
                cap: inner.cap,
            });
        }
        inner.used = would;
        inner.entries.insert(key.to_owned(), value);
        inner.dirty.insert(key.to_owned());
        Ok(())
    }

    /// Removes `key` if set.
    pub fn remove(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(v) = inner.entries.remove(key) {
            inner.used -= entry_bytes(key, &v);
            inner.dirty.insert(key.to_owned());
        }
    }

    /// Every key, in byte order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().entries.keys().cloned().collect()
    }

    /// Bytes held (keys and values).
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// The cap in bytes.
    pub fn cap(&self) -> usize {
        self.lock().cap
    }

    /// Every entry, for tests and reports.
    pub fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        self.lock().entries.clone()
    }

    /// The changes since the last call, each key once with its value now (`None`: removed);
    /// they are no longer changes after this. A caller that fails to store them gives them
    /// back with [`Self::unsent`].
    pub fn take_changes(&self) -> Vec<MemoryChange> {
        let mut inner = self.lock();
        let dirty = std::mem::take(&mut inner.dirty);
        dirty
            .into_iter()
            .map(|k| {
                let v = inner.entries.get(&k).cloned();
                (k, v)
            })
            .collect()
    }

    /// Marks the keys of changes that could not be stored as changed again, so the next
    /// [`Self::take_changes`] sends their values as they are then.
    pub fn unsent(&self, changes: &[MemoryChange]) {
        let mut inner = self.lock();
        for (k, _) in changes {
            inner.dirty.insert(k.clone());
        }
    }

    /// True when the same memory (a clone of this one).
    pub fn same(&self, other: &StrategyMemory) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_refuses_growth_and_changes_are_taken_once() {
        let m = StrategyMemory::new(20);
        m.set("a", vec![1; 9]).unwrap();
        m.set("b", vec![2; 9]).unwrap();
        assert_eq!(m.used(), 20);
        let err = m.set("c", vec![3]).unwrap_err();
        assert_eq!(
            err,
            MemoryError::Full {
                key_bytes: 1,
                value_bytes: 1,
                would: 22,
                cap: 20
            }
        );
        assert!(
            err.to_string().contains("over its cap of 20 bytes"),
            "{err}"
        );
        // Shrinking an entry is always allowed; the refused key was not set.
        m.set("a", vec![1; 2]).unwrap();
        assert_eq!(m.get("c"), None);
        m.remove("b");
        assert_eq!(m.keys(), vec!["a".to_string()]);
        let changes = m.take_changes();
        assert_eq!(
            changes,
            vec![("a".to_string(), Some(vec![1, 1])), ("b".to_string(), None)]
        );
        assert!(m.take_changes().is_empty());
        m.unsent(&changes);
        assert_eq!(m.take_changes().len(), 2);
        assert_eq!(m.set("", vec![]), Err(MemoryError::Key(0)));
        assert_eq!(
            m.set(&"k".repeat(MAX_KEY_BYTES + 1), vec![]),
            Err(MemoryError::Key(MAX_KEY_BYTES + 1))
        );
    }

    #[test]
    fn clones_share_entries() {
        let m = StrategyMemory::loaded(100, [("x".to_string(), vec![7])]);
        let n = m.clone();
        n.set("y", vec![8]).unwrap();
        assert_eq!(m.get("y"), Some(vec![8]));
        assert!(m.same(&n));
        assert!(!m.same(&StrategyMemory::default()));
        assert_eq!(m.take_changes(), vec![("y".to_string(), Some(vec![8]))]);
    }
}
