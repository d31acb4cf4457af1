//! Which strategies may propose: the versions the registry has admitted.
//!
//! A proposal names its strategy and version, and the engine books it under that name. A
//! name the registry never admitted is either a mistake or someone trying to trade under a
//! book that is not theirs, so the engine refuses it (`unknown_strategy`) before any gate,
//! and such a proposal leaves no task behind (see [`crate::engine`]).
//!
//! A version is accepted in either form a host sends: the registry's version number ("3")
//! for what it deploys, or at least the first 12 hex digits of the component's sha256 for
//! a component the host was started with from a file (`stratbox host --strategy N=F.wasm`),
//! which must still be a version the registry admitted under that name.
//!
//! The registry lives in the engine's database (`strategies`), so the catalog reads it
//! there: once at start, and again when a proposal names something it does not know (an
//! upload since, possibly through another engine process), at most once a second so a
//! stream of junk names cannot turn into a stream of queries.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Row;

use crate::store::{Store, StoreError};

/// The shortest sha256 prefix accepted as a version.
pub const MIN_SHA_PREFIX: usize = 12;

/// How often an unknown name or version may cause a re-read of the registry.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Whether the engine checks proposals against the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrategyCheck {
    /// Only strategies and versions the registry admitted may propose (what `stratbox
    /// engine` and `stratbox up` run).
    Registry,
    /// Any name is accepted: an engine used as a library by tests or benchmarks that have
    /// no registry.
    #[default]
    Any,
}

#[derive(Default)]
struct Known {
    /// name -> (version numbers, sha256s)
    versions: HashMap<String, (HashSet<String>, Vec<String>)>,
    refreshed: Option<Instant>,
}

impl Known {
    fn knows(&self, name: &str, version: &str) -> bool {
        let Some((numbers, shas)) = self.versions.get(name) else {
            return false;
        };
        if numbers.contains(version) {
            return true;
        }
        let is_prefix = version.len() >= MIN_SHA_PREFIX
            && version.len() <= 64
            && version.bytes().all(|b| b.is_ascii_hexdigit());
        is_prefix
            && shas
                .iter()
                .any(|s| s.as_bytes()[..version.len()].eq_ignore_ascii_case(version.as_bytes()))
    }
}

/// The registry's admitted versions, as the engine checks proposals against them.
pub struct Catalog {
    check: StrategyCheck,
    known: Mutex<Known>,
}

impl Catalog {
    /// An empty catalog; fill it with `refresh` before proposals are checked against it.
    pub fn new(check: StrategyCheck) -> Catalog {
        Catalog {
            check,
            known: Mutex::new(Known::default()),
        }
    }

    /// Whether proposals are checked against the registry.
    pub fn check(&self) -> StrategyCheck {
        self.check
    }

    /// Reads every admitted version from the registry's table.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        if self.check == StrategyCheck::Any {
            return Ok(());
        }
        let rows = sqlx::query("SELECT name, version, sha256 FROM strategies")
            .fetch_all(store.pool())
            .await?;
        let mut versions: HashMap<String, (HashSet<String>, Vec<String>)> = HashMap::new();
        for r in &rows {
            let name: String = r.try_get("name")?;
            let version: String = r.try_get("version")?;
            let sha: String = r.try_get("sha256")?;
            let e = versions.entry(name).or_default();
            e.0.insert(version);
            if sha.len() == 64 {
                e.1.push(sha);
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.versions = versions;
        known.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Whether `name` at `version` may propose. A miss re-reads the registry first (at most
    /// once a second).
    pub async fn admits(&self, store: &Store, name: &str, version: &str) -> bool {
        if self.check == StrategyCheck::Any {
            return true;
        }
        let stale = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if known.knows(name, version) {
                return true;
            }
            known
                .refreshed
                .is_none_or(|t| t.elapsed() >= REFRESH_AT_MOST_EVERY)
        };
        if stale && let Err(e) = self.refresh(store).await {
            tracing::warn!(error = %e, "reading the registry's strategies");
        }
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.knows(name, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_by_number_or_sha_prefix() {
        let mut k = Known::default();
        let sha = "ab".repeat(32);
        k.versions.insert(
            "mom".into(),
            (HashSet::from(["1".to_owned()]), vec![sha.clone()]),
        );
        assert!(k.knows("mom", "1"));
        assert!(k.knows("mom", &sha[..12]));
        assert!(k.knows("mom", &sha.to_uppercase()[..16]));
        assert!(k.knows("mom", &sha));
        assert!(!k.knows("mom", "2"));
        assert!(!k.knows("mom", &sha[..11]), "too short a prefix");
        assert!(!k.knows("mom", "cdcdcdcdcdcd"));
        assert!(!k.knows("other", "1"));
        assert!(!k.knows("mom", ""));
    }
}
