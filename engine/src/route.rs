//! The private route: which live trades are sent to a private relay as bundles instead of
//! to the public mempool, and the public route as an explicit, configured fallback.
//!
//! A trade in the public mempool is seen before it is mined, and a large one is worth
//! sandwiching. So, with a relay configured ([`PrivateRoute`]), a trade whose value is at
//! least `min_value`, or whose strategy is marked sensitive, is sent with `eth_sendBundle`
//! (the JSON-RPC Flashbots-style relays take: `{"txs": [raw], "blockNumber": next}` →
//! `{"bundleHash"}`) for the next block, and sent again for the following block while the
//! chain does not include it (a bundle is for one block only).
//!
//! - **Value** is the trade's input valued in its pool's token1 — the engine's quote unit,
//!   as the risk gates value a trade's notional (`crate::gates`): a swap's `amount_in` at
//!   the pool's spot price when it pays token0, at par when it pays token1; liquidity at its
//!   expected amounts. In raw units of that token1.
//! - **Sensitive** is a per-deployment setting by strategy name, not a proposal field:
//!   strategies cannot mark their own proposals without a change to the WIT world, and a
//!   new field on the `Proposal` message would break every literal of it in the workspace.
//!
//! The route is decided once, when the signed transaction is first sent, and stored before
//! anything is sent (`live_routes`), so a restarted engine resends by the same route, and
//! the task's fee bumps and cancel follow it. A task with no stored route (an engine
//! without a relay) is public.
//!
//! **Fallback.** Off unless `fallback_after_blocks` is set. Then a private trade goes to
//! the public mempool when the relay cannot be reached, refuses the bundle, or has not
//! got it included `fallback_after_blocks` blocks after it first took it; the fallback is
//! stored with its reason, audited on the task (`route_fallback`), logged at warn level
//! and counted (`stratbox_engine_route_fallbacks_total{reason}`). Without a fallback, a
//! trade the relay does not take is not sent anywhere (SIGNED, tried again every second);
//! one it takes and never includes meets the inclusion deadline like any other, and its
//! cancel goes to the relay too: a cancel sent publicly while the trade's bundle may still
//! be included would only race it, and nothing is sent publicly that the operator did not
//! allow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use prost::Message;
use stratbox_proto::U256;
use stratbox_proto::v1;
use tracing::{info, warn};

use crate::chain::ChainState;
use crate::engine::Engine;
use crate::gates::token0_in_token1;
use crate::proposal::{self, Address, TradeAction, hex_address};
use crate::store::{LiveTask, RouteKind, StoreError, StoredRoute};

/// Why a transaction could not be routed; the live path repeats its step.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain's node failed.
    #[error("chain node: {0}")]
    Rpc(String),
    /// Bad configuration (the relay's URL).
    #[error("private route configuration: {0}")]
    Config(String),
}

/// A relay that failed is not asked again for the same task for this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The private route's configuration (`LiveConfig::private`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateRoute {
    /// The relay's JSON-RPC endpoint (`eth_sendBundle`).
    pub relay_url: String,
    /// Trades worth at least this (raw units of their pool's token1) go private; `None`:
    /// only sensitive strategies' trades do.
    pub min_value: Option<U256>,
    /// Strategies whose every trade goes private.
    pub sensitive_strategies: Vec<String>,
    /// The public fallback (see the module docs): `None` is off; `Some(n)` falls back when
    /// the relay fails or has not had the trade included `n` blocks after it first took it.
    pub fallback_after_blocks: Option<u64>,
    /// How long one relay call may take before the relay counts as unreachable.
    pub relay_timeout: Duration,
}

impl PrivateRoute {
    /// A relay with no threshold, no sensitive strategy and no fallback.
    pub fn new(relay_url: &str) -> Self {
        PrivateRoute {
            relay_url: relay_url.to_owned(),
            min_value: None,
            sensitive_strategies: Vec::new(),
            fallback_after_blocks: None,
            relay_timeout: Duration::from_secs(5),
        }
    }
}

/// What the live path does with a transaction the router has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Send it to the node, as ever.
    Public,
    /// The relay took it: nothing more to send.
    Private,
    /// Sent nowhere (the relay failed and no fallback is configured): tried again later.
    Held,
}

/// Why the relay did not take a bundle.
#[derive(Debug, thiserror::Error)]
enum RelayFailure {
    /// No answer (connection refused, timeout, not JSON-RPC).
    #[error("relay unreachable: {0}")]
    Unreachable(String),
    /// A JSON-RPC error answer.
    #[error("relay refused the bundle: {0}")]
    Refused(String),
}

impl RelayFailure {
    fn reason(&self) -> &'static str {
        match self {
            RelayFailure::Unreachable(_) => "unreachable",
            RelayFailure::Refused(_) => "refused",
        }
    }
}

/// What the router remembers of a private task between steps (in memory: after a restart
/// the bundle is simply sent again for the next block).
#[derive(Debug, Default)]
struct Pending {
    /// The block the last accepted bundle was for.
    target: Option<u64>,
    /// Not before this is the relay asked again after a failure.
    retry_at: Option<Instant>,
}

/// Routes one live path's transactions (see the module docs).
pub(crate) struct Router {
    engine: Engine,
    node: DynProvider,
    config: Option<PrivateRoute>,
    relay: Option<DynProvider>,
    holder: String,
    /// Per task; never held across a call.
    pending: Mutex<HashMap<String, Pending>>,
}

/// The value of a trade in its pool's token1 (see the module docs), with that token; `None`
/// for a pool the engine does not trade.
pub fn trade_value(
    chain: &ChainState,
    action: &TradeAction,
    expected0: U256,
    expected1: U256,
) -> Option<(U256, Address)> {
    let info = chain.pool(&action.pool())?;
    let value = match *action {
        TradeAction::Swap {
            zero_for_one: true,
            amount_in,
            ..
        } => token0_in_token1(amount_in, info.sqrt_price_x96),
        TradeAction::Swap { amount_in, .. } => amount_in,
        TradeAction::AddLiquidity(_) | TradeAction::RemoveLiquidity(_) => {
            token0_in_token1(expected0, info.sqrt_price_x96).saturating_add(expected1)
        }
    };
    Some((value, info.token1))
}

/// The `eth_sendBundle` parameters for one transaction targeted at `block`.
fn bundle_params(raw: &[u8], block: u64) -> serde_json::Value {
    serde_json::json!([{
        "txs": [format!("0x{}", hex::encode(raw))],
        "blockNumber": format!("{block:#x}"),
    }])
}

impl Router {
    pub(crate) fn new(
        engine: &Engine,
        node: &DynProvider,
        config: Option<PrivateRoute>,
        holder: &str,
    ) -> Result<Router, RouteError> {
        let relay = match &config {
            Some(c) => {
                let url = c
                    .relay_url
                    .parse()
                    .map_err(|e| RouteError::Config(format!("relay url {}: {e}", c.relay_url)))?;
                Some(ProviderBuilder::new().connect_http(url).erased())
            }
            None => None,
        };
        Ok(Router {
            engine: engine.clone(),
            node: node.clone(),
            config,
            relay,
            holder: holder.to_owned(),
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // A panic elsewhere cannot leave this map inconsistent: every update is one insert.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn head(&self) -> Result<u64, RouteError> {
        self.node
            .get_block_number()
            .await
            .map_err(|e| RouteError::Rpc(e.to_string()))
    }

    /// The route for a SIGNED task's first send: the stored one, else decided now and
    /// stored before anything is sent; then the transaction sent by it.
    pub(crate) async fn first_send(&self, task: &LiveTask, raw: &[u8]) -> Result<Sent, RouteError> {
        let store = self.engine.store();
        let stored = match store.route(&task.task_id).await? {
            Some(r) => r,
            None => {
                let Some(config) = &self.config else {
                    return Ok(Sent::Public);
                };
                let (kind, why) = self.decide(config, task);
                let r = store
                    .choose_route(&task.task_id, kind, &why, &self.holder)
                    .await?;
                if r.route == kind && r.why == why {
                    self.engine
                        .metrics()
                        .routes
                        .get_or_create(&[("route", kind.as_str())])
                        .inc();
                    info!(route = kind.as_str(), why = %why, "route chosen");
                }
                r
            }
        };
        self.send(&stored, raw).await
    }

    /// A replacement (fee bump or cancel) of a task goes the task's route.
    pub(crate) async fn replacement(&self, task_id: &str, raw: &[u8]) -> Result<Sent, RouteError> {
        match self.engine.store().route(task_id).await? {
            Some(stored) => self.send(&stored, raw).await,
            None => Ok(Sent::Public),
        }
    }

    /// For a BROADCAST task's newest transaction, with no receipt yet: `true` when it goes
    /// by the public route (the caller checks the node holds it, as before). A private one
    /// is sent to the relay again for the next block once the block its last bundle was
    /// for has passed, or falls back when due.
    pub(crate) async fn follow_up(&self, task_id: &str, raw: &[u8]) -> Result<bool, RouteError> {
        let Some(stored) = self.engine.store().route(task_id).await? else {
            return Ok(true);
        };
        if stored.route == RouteKind::Public {
            return Ok(true);
        }
        let Some(config) = &self.config else {
            return Ok(self.held_without_relay(task_id));
        };
        let head = self.head().await?;
        if let (Some(n), Some(first)) = (config.fallback_after_blocks, stored.first_block)
            && head >= first.saturating_add(n)
        {
            let detail = format!(
                "not included by the relay within {n} blocks of block {first} (head {head})"
            );
            self.fall_back(task_id, "not_included", &detail).await?;
            return Ok(true);
        }
        {
            let mut pending = self.pending();
            pending.retain(|_, p| p.target.is_none_or(|t| t.saturating_add(64) > head));
            if let Some(p) = pending.get(task_id)
                && (p.target.is_some_and(|t| head < t)
                    || p.retry_at.is_some_and(|at| Instant::now() < at))
            {
                return Ok(false);
            }
        }
        Ok(self.submit(config, &stored, raw, head).await? == Sent::Public)
    }

    /// Sends `raw` by the stored route: `Public` is the caller's to send.
    async fn send(&self, stored: &StoredRoute, raw: &[u8]) -> Result<Sent, RouteError> {
        if stored.route == RouteKind::Public {
            return Ok(Sent::Public);
        }
        let Some(config) = &self.config else {
            self.held_without_relay(&stored.task_id);
            return Ok(Sent::Held);
        };
        if self
            .pending()
            .get(&stored.task_id)
            .and_then(|p| p.retry_at)
            .is_some_and(|at| Instant::now() < at)
        {
            return Ok(Sent::Held);
        }
        let head = self.head().await?;
        self.submit(config, stored, raw, head).await
    }

    /// One `eth_sendBundle` for block `head + 1`; a failure falls back if configured.
    async fn submit(
        &self,
        config: &PrivateRoute,
        stored: &StoredRoute,
        raw: &[u8],
        head: u64,
    ) -> Result<Sent, RouteError> {
        let task_id = stored.task_id.as_str();
        let target = head.saturating_add(1);
        match self.send_bundle(config, raw, target).await {
            Ok(bundle_hash) => {
                if stored.first_block.is_none() {
                    self.engine.store().route_first_block(task_id, head).await?;
                }
                self.pending().insert(
                    task_id.to_owned(),
                    Pending {
                        target: Some(target),
                        retry_at: None,
                    },
                );
                info!(bundle_hash = %bundle_hash, block = target, "bundle sent to the private relay");
                Ok(Sent::Private)
            }
            Err(failure) if config.fallback_after_blocks.is_some() => {
                self.fall_back(task_id, failure.reason(), &failure.to_string())
                    .await?;
                Ok(Sent::Public)
            }
            Err(failure) => {
                self.pending().insert(
                    task_id.to_owned(),
                    Pending {
                        target: None,
                        retry_at: Some(Instant::now() + RETRY_AFTER),
                    },
                );
                warn!(
                    relay = %config.relay_url,
                    error = %failure,
                    "the private relay did not take the bundle and no public fallback is configured: not sent; trying again"
                );
                Ok(Sent::Held)
            }
        }
    }

    /// A private task on an engine started without a relay: held (logged once a second).
    fn held_without_relay(&self, task_id: &str) -> bool {
        let mut pending = self.pending();
        let p = pending.entry(task_id.to_owned()).or_default();
        if p.retry_at.is_none_or(|at| Instant::now() >= at) {
            p.retry_at = Some(Instant::now() + RETRY_AFTER);
            warn!(
                task_id,
                "a trade stored for the private route and no relay configured: not sent (start the engine with --private-relay)"
            );
        }
        false
    }

    /// The public fallback: stored with its reason and audited, counted, logged.
    async fn fall_back(
        &self,
        task_id: &str,
        reason: &'static str,
        detail: &str,
    ) -> Result<(), RouteError> {
        let text = format!("{reason}: {detail}");
        let moved = self
            .engine
            .store()
            .route_fallback(task_id, &text, &self.holder)
            .await?;
        self.pending().remove(task_id);
        if moved {
            self.engine
                .metrics()
                .route_fallbacks
                .get_or_create(&[("reason", reason)])
                .inc();
            warn!(
                task_id,
                reason, detail, "private route: falling back to the public mempool"
            );
        }
        Ok(())
    }

    async fn send_bundle(
        &self,
        config: &PrivateRoute,
        raw: &[u8],
        block: u64,
    ) -> Result<String, RelayFailure> {
        let Some(relay) = &self.relay else {
            return Err(RelayFailure::Unreachable("no relay configured".into()));
        };
        let call = relay.raw_request::<_, serde_json::Value>(
            "eth_sendBundle".into(),
            bundle_params(raw, block),
        );
        match tokio::time::timeout(config.relay_timeout, call).await {
            Err(_) => Err(RelayFailure::Unreachable(format!(
                "no answer within {} ms",
                config.relay_timeout.as_millis()
            ))),
            Ok(Err(e)) => match e.as_error_resp() {
                Some(resp) => Err(RelayFailure::Refused(format!(
                    "{} (code {})",
                    resp.message, resp.code
                ))),
                None => Err(RelayFailure::Unreachable(e.to_string())),
            },
            Ok(Ok(answer)) => answer
                .get("bundleHash")
                .and_then(|h| h.as_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    RelayFailure::Refused(format!("answer without a bundleHash: {answer}"))
                }),
        }
    }

    /// Public or private for a task, and why (stored with it).
    fn decide(&self, config: &PrivateRoute, task: &LiveTask) -> (RouteKind, String) {
        let checked = v1::Proposal::decode(task.proposal.as_slice())
            .ok()
            .and_then(|p| proposal::check(&p).ok());
        // Signed from this very proposal, so it decodes; if it ever did not, the trade's
        // value is unknown and it is kept out of the public mempool.
        let Some(cp) = checked else {
            return (
                RouteKind::Private,
                "the stored proposal does not decode: value unknown".into(),
            );
        };
        if config.sensitive_strategies.contains(&cp.strategy) {
            return (
                RouteKind::Private,
                format!("strategy {} is marked sensitive", cp.strategy),
            );
        }
        let Some(min) = config.min_value else {
            return (
                RouteKind::Public,
                format!(
                    "strategy {} is not sensitive and no value threshold is set",
                    cp.strategy
                ),
            );
        };
        let chain = self.engine.chain();
        match trade_value(&chain, &cp.action, cp.expected_amount0, cp.expected_amount1) {
            Some((value, quote)) if value >= min => (
                RouteKind::Private,
                format!(
                    "value {value} >= {min} (raw units of {})",
                    hex_address(&quote)
                ),
            ),
            Some((value, quote)) => (
                RouteKind::Public,
                format!(
                    "value {value} < {min} (raw units of {})",
                    hex_address(&quote)
                ),
            ),
            None => (
                RouteKind::Private,
                format!(
                    "pool {} is not traded by the engine: value unknown",
                    hex_address(&cp.action.pool())
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_one_raw_transaction_for_one_block_in_hex() {
        assert_eq!(
            bundle_params(&[0x02, 0xab], 0x1f),
            serde_json::json!([{ "txs": ["0x02ab"], "blockNumber": "0x1f" }])
        );
    }
}
