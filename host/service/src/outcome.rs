//! What reconciling one deployment did. Its own module because both the rollout (which
//! produces it) and the metrics (which count it) need it, and neither should need the other.

use std::time::{SystemTime, UNIX_EPOCH};

use stratbox_proto::v1::RolloutReport;

use crate::fleet::Switch;

/// What reconciling one deployment did; also sent to the registry as a `RolloutReport`.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The strategy's name.
    pub name: String,
    /// The version deployed (or refused).
    pub version: String,
    /// The registry's deployment revision this answers.
    pub revision: u64,
    /// What kind of change it was.
    pub kind: OutcomeKind,
    /// `Err(reason)`: nothing switched.
    pub result: Result<Switch, String>,
    /// `RolloutError::kind()` of the refusal, `""` when it switched.
    pub error_kind: &'static str,
    /// Instances running after the change.
    pub instances: usize,
    /// Instances built and `init`-ed for this change (a scale builds only the added ones).
    pub built: usize,
}

/// What a deployment change asked of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// First deployment of a strategy on this host.
    Start,
    /// A different version or config replaced the running one.
    Swap,
    /// Same version, other instance count.
    Scale,
    /// The strategy left the desired set.
    Stop,
}

impl Outcome {
    /// True when the change took effect.
    pub fn switched(&self) -> bool {
        self.result.is_ok()
    }

    /// Why it was refused, escaped for a terminal; `None` when it switched.
    pub fn refusal(&self) -> Option<String> {
        self.result
            .as_ref()
            .err()
            .map(|e| stratbox_host::display::escape(e).into_owned())
    }

    /// The report for the registry, from `host` watching `markets` markets.
    pub fn to_report(&self, host: &str, markets: u32) -> RolloutReport {
        let (switched, error, max_pause_ns) = match &self.result {
            Ok(s) => (
                true,
                String::new(),
                u64::try_from(s.max_pause.as_nanos()).unwrap_or(u64::MAX),
            ),
            Err(e) => (false, e.clone(), 0),
        };
        RolloutReport {
            host: host.to_owned(),
            name: self.name.clone(),
            version: self.version.clone(),
            revision: self.revision,
            switched,
            error,
            max_pause_ns,
            markets,
            instances: u32::try_from(self.instances).unwrap_or(u32::MAX),
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or_default(),
        }
    }
}
