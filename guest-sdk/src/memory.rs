//! The strategy's memory (world `stratbox:strategy@0.2.0`): a small key-value store the
//! engine keeps per deployment, shared by every instance and version of the strategy and
//! kept across hot swaps and restarts. Use it for what a strategy learns that should
//! outlive an instance (a widened threshold, counters), not for per-event state.
//!
//! Only strategies exported with [`crate::export_outcome_strategy!`] may call these: the
//! import is part of world 0.2.0. On targets other than wasm32 a per-thread map with the
//! host's limits stands in ([`testing`]).

/// The value under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::v0_2::stratbox::strategy0_2_0::memory::get(key)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        testing::get(key)
    }
}

/// Sets `key` (1 to 128 bytes) to `value`; refused with the sizes when the deployment's
/// memory would go over its cap.
pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::v0_2::stratbox::strategy0_2_0::memory::set(key, value)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        testing::set(key, value)
    }
}

/// Removes `key` if set.
pub fn remove(key: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::v0_2::stratbox::strategy0_2_0::memory::remove(key);
    #[cfg(not(target_arch = "wasm32"))]
    testing::remove(key);
}

/// Every key, in byte order.
pub fn keys() -> Vec<String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::v0_2::stratbox::strategy0_2_0::memory::keys()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        testing::keys()
    }
}

/// A `u64` stored little-endian under `key`; `None` when unset or not 8 bytes.
pub fn get_u64(key: &str) -> Option<u64> {
    let bytes: [u8; 8] = get(key)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Stores `value` little-endian under `key`.
pub fn set_u64(key: &str, value: u64) -> Result<(), String> {
    set(key, &value.to_le_bytes())
}

/// The native stand-in for the host's memory (not compiled for wasm32): one map per
/// thread, with the host's key limit and default cap.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// As the host's default.
    pub const CAP_BYTES: usize = 64 << 10;

    thread_local! {
        static MEMORY: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    }

    /// Empties this thread's memory (a fresh deployment).
    pub fn clear() {
        MEMORY.with(|m| m.borrow_mut().clear());
    }

    pub(crate) fn get(key: &str) -> Option<Vec<u8>> {
        MEMORY.with(|m| m.borrow().get(key).cloned())
    }

    pub(crate) fn set(key: &str, value: &[u8]) -> Result<(), String> {
        if key.is_empty() || key.len() > 128 {
            return Err(format!(
                "memory key is {} bytes; keys are 1 to 128 bytes",
                key.len()
            ));
        }
        MEMORY.with(|m| {
            let mut m = m.borrow_mut();
            let used: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
            let old = m.get(key).map_or(0, |v| key.len() + v.len());
            let would = used - old + key.len() + value.len();
            if would > CAP_BYTES && would > used {
                return Err(format!(
                    "memory full: {would} bytes over the cap of {CAP_BYTES}"
                ));
            }
            m.insert(key.to_owned(), value.to_vec());
            Ok(())
        })
    }

    pub(crate) fn remove(key: &str) {
        MEMORY.with(|m| m.borrow_mut().remove(key));
    }

    pub(crate) fn keys() -> Vec<String> {
        MEMORY.with(|m| m.borrow().keys().cloned().collect())
    }
}
