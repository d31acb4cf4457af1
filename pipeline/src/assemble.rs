//! Putting a host together: the engine's markets, a fleet with the requested strategies
//! started, and a service reading the bus. `stratbox host`, `stratbox up` and the
//! end-to-end tests all build their hosts here, so they run the same thing.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use stratbox_bus::{Bus, BusError, GroupReader, GroupReaderConfig, StartId};
use stratbox_host::LoadedComponent;
use tokio::sync::watch;

use crate::delivery::{DeliveryError, EngineLink};
use crate::fleet::{Fleet, FleetError};
use crate::market::Market;
use crate::roster::{self, Deployment, StartError};
use crate::service::HostService;

/// Where a host reads and who it is there.
#[derive(Debug, Clone)]
pub struct BusSeat {
    pub stream: String,
    pub group: String,
    pub consumer: String,
    pub block: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Builds a host. `{pool}` in a deployment's config is replaced by the engine's first pool.
pub async fn host<B: Bus + ?Sized>(
    link: EngineLink,
    bus: Arc<B>,
    seat: &BusSeat,
    strategies: Vec<(LoadedComponent, Deployment)>,
    workers: usize,
    stop: &watch::Receiver<bool>,
) -> Result<(HostService<B>, Arc<Fleet>), AssembleError> {
    let markets = link.markets(&mut stop.clone()).await?;
    let pool = markets
        .first()
        .and_then(|m| m.pool.as_ref())
        .map(|a| a.value.clone())
        .unwrap_or_default();
    let market = Arc::new(RwLock::new(Market::from_markets(&markets)));
    let history = market.read().unwrap_or_else(|p| p.into_inner()).history();
    let fleet = Arc::new(Fleet::start(workers, market)?);
    for (component, mut deployment) in strategies {
        deployment.config = deployment.config.replace("{pool}", &pool);
        let members = roster::build(&component, &deployment, &history)?;
        fleet.replace(&deployment.strategy, members).await?;
    }
    let reader = GroupReader::join(
        bus,
        &seat.stream,
        &seat.group,
        &seat.consumer,
        StartId::Beginning,
        GroupReaderConfig {
            block: seat.block,
            ..GroupReaderConfig::default()
        },
    )
    .await?;
    Ok((HostService::new(reader, fleet.clone(), link), fleet))
}
