//! Building the instances of a strategy before they join a fleet.
//!
//! Instances are built and `init`-ed here, off the event path, so that a hot swap or a
//! scale-up only moves ready instances into the fleet; a version whose instances cannot
//! start never reaches it.

use stratbox_host::{
    InstanceSpec, LoadedComponent, StrategyInstance, StrategyLimits, StrategyMemory,
};

use crate::fleet::{Identity, Member};
use crate::market::SharedMarketHistory;

/// What an operator asks for: `count` instances of one component version.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Strategy name.
    pub strategy: String,
    /// Component version.
    pub version: String,
    /// The account every instance trades for (0x address).
    pub account: String,
    /// JSON given to each instance's `init`.
    pub config: String,
    /// Instances to run.
    pub count: usize,
    /// Limits of each instance.
    pub limits: StrategyLimits,
    /// The strategy's memory, shared by every instance (world 0.2.0).
    pub memory: StrategyMemory,
}

/// An instance whose `init` failed, so the deployment did not start.
#[derive(Debug, thiserror::Error)]
#[error("instance {instance} of {strategy}@{version} failed to start: {source}")]
pub struct StartError {
    /// Strategy name.
    pub strategy: String,
    /// Component version.
    pub version: String,
    /// The instance that failed.
    pub instance: String,
    /// How its start failed.
    #[source]
    pub source: stratbox_host::CallError,
}

/// Builds and initialises every instance, or none: the first failure is returned and the
/// instances built so far are dropped.
pub fn build(
    component: &LoadedComponent,
    deployment: &Deployment,
    history: &SharedMarketHistory,
) -> Result<Vec<Member>, StartError> {
    let ids: Vec<String> = (0..deployment.count)
        .map(|i| instance_id(&deployment.strategy, i))
        .collect();
    build_ids(component, deployment, history, &ids)
}

/// The id of a strategy's `i`-th instance. A new version's instance with the same id is
/// the one that takes the old one's place (and state).
pub fn instance_id(strategy: &str, i: usize) -> String {
    format!("{strategy}-{i}")
}

/// [`build`] for exactly these instance ids (a scale-up builds only the new ones);
/// `deployment.count` is not consulted.
pub fn build_ids(
    component: &LoadedComponent,
    deployment: &Deployment,
    history: &SharedMarketHistory,
    ids: &[String],
) -> Result<Vec<Member>, StartError> {
    let mut members = Vec::with_capacity(ids.len());
    for instance_id in ids {
        let instance_id = instance_id.clone();
        let spec = InstanceSpec::new(instance_id.clone(), deployment.config.clone())
            .with_limits(deployment.limits.clone())
            .with_memory(deployment.memory.clone());
        let mut instance = StrategyInstance::new(component, spec, history.clone());
        instance.start().map_err(|source| StartError {
            strategy: deployment.strategy.clone(),
            version: deployment.version.clone(),
            instance: instance_id.clone(),
            source,
        })?;
        members.push(Member {
            identity: Identity {
                strategy: deployment.strategy.clone(),
                version: deployment.version.clone(),
                instance_id,
                account: deployment.account.clone(),
            },
            runner: Box::new(instance),
        });
    }
    Ok(members)
}
