//! A local private relay for development and tests: it stands in for a real one
//! (Flashbots-style relays and block builders), which stratbox's private route
//! (`stratbox_engine::route`) talks to in production.
//!
//! It speaks the same JSON-RPC over HTTP: `eth_sendBundle` with
//! `[{"txs": ["0x<raw signed transaction>", ...], "blockNumber": "0x<block>"}]` answers
//! `{"bundleHash": "0x…"}` (keccak-256 of the transactions' hashes, as Flashbots computes
//! it); a malformed bundle (not JSON, no `txs`, a transaction that does not decode, a block
//! that is not in the future) is refused with a JSON-RPC error. A bundle is kept in this
//! process only — the node's mempool never sees it — until the block it targets is built;
//! then its transactions are put on the chain together, in that block, or not at all.
//!
//! How a bundle is included on Anvil, honestly: Anvil has no call that mines a block from
//! given transactions, so the relay sends them to Anvil with `eth_sendRawTransaction` and
//! mines at once (`evm_mine`), with the node's automine off so that nothing mines them one
//! by one. If Anvil refuses any of them, the ones already sent are dropped again
//! (`anvil_dropTransaction`) before the block is mined: all or nothing. For those few
//! milliseconds the transactions are in Anvil's pool; no block can be produced in between
//! except by the relay itself.
//!
//! Two ways to run it:
//! - `--block-time D`: the relay is the chain's block producer, as a builder is: it turns
//!   the node's automine off and mines a block every `D`, with the bundles due for it and
//!   whatever public transactions wait in the node's pool (visible there, as in a public
//!   mempool). Its automine is turned back on when the relay stops.
//! - without it: the relay follows the node's blocks and includes a bundle as soon as the
//!   node's head is the block before its target, mining that block itself (turning an
//!   automining node's automine off for the moment it takes).
//!
//! What differs from a real relay: no searcher authentication (`X-Flashbots-Signature`),
//! no simulation before inclusion (a reverting transaction is included, as if listed in
//! `revertingTxHashes`), no auction (every valid bundle for a block is included, in
//! arrival order), no `eth_cancelBundle`, `eth_callBundle` or replacement UUIDs, and no
//! privacy from the operator of the machine. Two extra methods exist for tests:
//! `relay_bundles` (every bundle it was sent, with its state) and `relay_setBuilding`
//! (`false` holds every bundle and, with `--block-time`, every block, until `true`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Decodable2718;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy_primitives::{B256, keccak256};
use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{info, warn};

/// At most this many transactions in one bundle.
const MAX_TXS: usize = 16;
/// At most this many bundles remembered (`relay_bundles`); the oldest ended ones go first.
const MAX_BUNDLES: usize = 4096;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The chain's JSON-RPC node (Anvil: the relay uses its `evm_*`/`anvil_*` methods).
    pub rpc: String,
    /// `Some`: the relay produces a block this often (see the module docs).
    pub block_time: Option<Duration>,
    /// How often the node's head is read.
    pub poll: Duration,
}

/// Where a bundle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleState {
    /// Kept by the relay, waiting for its block.
    Held,
    /// Being put on the chain now.
    Including,
    /// Mined in its block.
    Included,
    /// Not included (its block passed, or the node refused a transaction of it).
    Dropped,
}

/// One bundle the relay was sent, as `relay_bundles` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bundle {
    /// keccak-256 of its transactions' hashes.
    pub bundle_hash: String,
    /// The block it is for.
    pub block: u64,
    /// Its transactions' hashes, in order.
    pub tx_hashes: Vec<String>,
    /// Where it is.
    pub state: BundleState,
    /// Why it was dropped, or the block it was included in.
    pub detail: String,
    #[serde(skip)]
    raw: Vec<String>,
}

struct Shared {
    node: DynProvider,
    bundles: Mutex<VecDeque<Bundle>>,
    building: AtomicBool,
}

impl Shared {
    fn bundles(&self) -> std::sync::MutexGuard<'_, VecDeque<Bundle>> {
        // Every update is a whole-field assignment: a panic cannot leave one half done.
        self.bundles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, hash: &str, block: u64, state: BundleState, detail: String) {
        for b in self.bundles().iter_mut() {
            if b.bundle_hash == hash && b.block == block {
                b.state = state;
                b.detail = detail.clone();
            }
        }
    }
}

/// A JSON-RPC error: code and message.
type RpcError = (i64, String);

fn invalid(message: impl Into<String>) -> RpcError {
    (-32602, message.into())
}

/// Serves the relay on `listener` until `stop` turns true.
pub async fn serve(
    config: RelayConfig,
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let url = config
        .rpc
        .parse()
        .with_context(|| format!("--rpc {}", config.rpc))?;
    let node = ProviderBuilder::new().connect_http(url).erased();
    node.get_block_number()
        .await
        .with_context(|| format!("reaching the node at {}", config.rpc))?;
    if config.block_time.is_some() {
        let _: Value = node
            .raw_request("evm_setAutomine".into(), (false,))
            .await
            .context("turning the node's automine off (the relay produces the blocks)")?;
    }
    let shared = Arc::new(Shared {
        node,
        bundles: Mutex::new(VecDeque::new()),
        building: AtomicBool::new(true),
    });
    let app = axum::Router::new()
        .route("/", axum::routing::post(rpc))
        .with_state(shared.clone());
    let mut server_stop = stop.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = server_stop.wait_for(|s| *s).await;
    });
    let builder = build_blocks(shared.clone(), config.clone(), stop.clone());
    let (served, ()) = tokio::join!(server, builder);
    let _ = stop.wait_for(|s| *s).await;
    if config.block_time.is_some() {
        let restored: Result<Value, _> = shared
            .node
            .raw_request("evm_setAutomine".into(), (true,))
            .await;
        if let Err(e) = restored {
            warn!(error = %e, "turning the node's automine back on");
        }
    }
    served.context("serving JSON-RPC")
}

async fn rpc(State(shared): State<Arc<Shared>>, body: Bytes) -> impl IntoResponse {
    let (id, answer) = match serde_json::from_slice::<Value>(&body) {
        Err(e) => (Value::Null, Err((-32700, format!("parse error: {e}")))),
        Ok(Value::Object(call)) => {
            let id = call.get("id").cloned().unwrap_or(Value::Null);
            let params = call.get("params").cloned().unwrap_or(Value::Null);
            let answer = match call.get("method").and_then(Value::as_str) {
                Some("eth_sendBundle") => send_bundle(&shared, &params).await,
                Some("relay_bundles") => {
                    let list: Vec<Bundle> = shared.bundles().iter().cloned().collect();
                    serde_json::to_value(list).map_err(|e| (-32603, e.to_string()))
                }
                Some("relay_setBuilding") => match params.get(0).and_then(Value::as_bool) {
                    Some(on) => {
                        shared.building.store(on, Ordering::Release);
                        Ok(Value::Bool(on))
                    }
                    None => Err(invalid("relay_setBuilding takes [true] or [false]")),
                },
                Some(other) => Err((-32601, format!("method {other:?} not found"))),
                None => Err((-32600, "no method".to_owned())),
            };
            (id, answer)
        }
        Ok(_) => (
            Value::Null,
            Err((
                -32600,
                "a single JSON-RPC call object is expected".to_owned(),
            )),
        ),
    };
    let reply = match answer {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, message)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        }
    };
    ([(CONTENT_TYPE, "application/json")], reply.to_string())
}

/// Checks and keeps one bundle (see the module docs).
async fn send_bundle(shared: &Shared, params: &Value) -> Result<Value, RpcError> {
    let bundle = params.get(0).and_then(Value::as_object).ok_or_else(|| {
        invalid("eth_sendBundle takes [{\"txs\": [...], \"blockNumber\": \"0x..\"}]")
    })?;
    let txs = bundle
        .get("txs")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("txs: an array of signed transactions is required"))?;
    if txs.is_empty() || txs.len() > MAX_TXS {
        return Err(invalid(format!("txs: 1 to {MAX_TXS} transactions")));
    }
    let mut raw = Vec::with_capacity(txs.len());
    let mut hashes = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        let text = tx
            .as_str()
            .ok_or_else(|| invalid(format!("txs[{i}]: not a string")))?;
        let bytes = text
            .strip_prefix("0x")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| invalid(format!("txs[{i}]: not 0x-prefixed hex")))?;
        let envelope = TxEnvelope::decode_2718(&mut bytes.as_slice())
            .map_err(|e| invalid(format!("txs[{i}]: not a signed transaction: {e}")))?;
        hashes.push(*envelope.tx_hash());
        raw.push(text.to_owned());
    }
    let block = bundle
        .get("blockNumber")
        .and_then(Value::as_str)
        .and_then(|b| b.strip_prefix("0x"))
        .and_then(|b| u64::from_str_radix(b, 16).ok())
        .ok_or_else(|| invalid("blockNumber: a 0x-prefixed hex block number is required"))?;
    let head = shared
        .node
        .get_block_number()
        .await
        .map_err(|e| (-32603, format!("the relay cannot reach its node: {e}")))?;
    if block <= head {
        return Err(invalid(format!(
            "blockNumber {block:#x} is not in the future (head {head:#x})"
        )));
    }
    let joined: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
    let bundle_hash = keccak256(&joined).to_string();
    let mut bundles = shared.bundles();
    if !bundles
        .iter()
        .any(|b| b.bundle_hash == bundle_hash && b.block == block)
    {
        info!(bundle_hash = %bundle_hash, block, txs = raw.len(), "bundle received");
        bundles.push_back(Bundle {
            bundle_hash: bundle_hash.clone(),
            block,
            tx_hashes: hashes.iter().map(B256::to_string).collect(),
            state: BundleState::Held,
            detail: String::new(),
            raw,
        });
        while bundles.len() > MAX_BUNDLES {
            let Some(ended) = bundles
                .iter()
                .position(|b| matches!(b.state, BundleState::Included | BundleState::Dropped))
            else {
                break;
            };
            bundles.remove(ended);
        }
    }
    Ok(json!({ "bundleHash": bundle_hash }))
}

/// Drops bundles whose block passed, and builds the next block when it is due (see the
/// module docs), until `stop`.
async fn build_blocks(shared: Arc<Shared>, config: RelayConfig, mut stop: watch::Receiver<bool>) {
    let mut next_block_at = config.block_time.map(|bt| Instant::now() + bt);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.poll) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let head = match shared.node.get_block_number().await {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "reading the node's head");
                continue;
            }
        };
        let due: Vec<(String, u64, Vec<String>)> = {
            let mut bundles = shared.bundles();
            for b in bundles.iter_mut() {
                if b.state == BundleState::Held && b.block <= head {
                    b.state = BundleState::Dropped;
                    b.detail = format!("block {} was built without it", b.block);
                }
            }
            bundles
                .iter()
                .filter(|b| b.state == BundleState::Held && b.block == head + 1)
                .map(|b| (b.bundle_hash.clone(), b.block, b.raw.clone()))
                .collect()
        };
        if !shared.building.load(Ordering::Acquire) {
            continue;
        }
        let build = match (config.block_time, next_block_at) {
            (Some(bt), Some(at)) => {
                let now = Instant::now();
                if now < at {
                    false
                } else {
                    // The next block is due one block time after this one, not after the
                    // late wake-up: a slow step does not slow the chain down.
                    next_block_at = Some((at + bt).max(now));
                    true
                }
            }
            _ => !due.is_empty(),
        };
        if build && let Err(e) = build_block(&shared, config.block_time.is_none(), head, due).await
        {
            warn!(error = %e, "building a block");
        }
    }
}

/// Puts the due bundles on the chain and mines block `head + 1` (see the module docs).
async fn build_block(
    shared: &Shared,
    follow: bool,
    head: u64,
    due: Vec<(String, u64, Vec<String>)>,
) -> Result<(), alloy::transports::TransportError> {
    let node = &shared.node;
    let automine = follow
        && node
            .raw_request::<_, bool>("anvil_getAutomine".into(), ())
            .await?;
    if automine {
        let _: Value = node.raw_request("evm_setAutomine".into(), (false,)).await?;
    }
    let mut placed = Vec::new();
    for (hash, block, raw) in due {
        shared.set(&hash, block, BundleState::Including, String::new());
        let mut sent: Vec<B256> = Vec::new();
        let mut refused = None;
        for tx in &raw {
            match node
                .raw_request::<_, B256>("eth_sendRawTransaction".into(), (tx.clone(),))
                .await
            {
                Ok(h) => sent.push(h),
                Err(e) => {
                    refused = Some(e.to_string());
                    break;
                }
            }
        }
        match refused {
            None => placed.push((hash, block, sent)),
            Some(why) => {
                // All or nothing: what was sent of it leaves the pool before the block.
                for h in &sent {
                    let _: Result<Value, _> = node
                        .raw_request("anvil_dropTransaction".into(), (*h,))
                        .await;
                }
                warn!(bundle_hash = %hash, error = %why, "the node refused a transaction of the bundle; dropped");
                shared.set(&hash, block, BundleState::Dropped, format!("node: {why}"));
            }
        }
    }
    let mined: Result<Value, _> = node.raw_request("evm_mine".into(), ()).await;
    if automine {
        let _: Value = node.raw_request("evm_setAutomine".into(), (true,)).await?;
    }
    mined?;
    for (hash, block, sent) in placed {
        let mut at = Vec::new();
        for h in &sent {
            let receipt = node.get_transaction_receipt(*h).await?;
            at.push(receipt.and_then(|r| r.block_number));
        }
        if at.iter().all(|b| *b == Some(head + 1)) {
            info!(bundle_hash = %hash, block, "bundle included");
            shared.set(
                &hash,
                block,
                BundleState::Included,
                format!("block {}", head + 1),
            );
        } else {
            warn!(bundle_hash = %hash, block, "bundle not mined in its block");
            shared.set(
                &hash,
                block,
                BundleState::Dropped,
                format!("not mined in block {} (blocks {at:?})", head + 1),
            );
        }
    }
    Ok(())
}

/// Binds `listen` (port 0 for any free one) and returns the listener and its address.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
