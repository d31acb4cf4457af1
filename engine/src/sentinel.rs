//! The governance sentinel: halts trading on a market when someone with admin rights changes
//! a contract it trades through.
//!
//! A market (one Uniswap V3 pool) trades through four contracts: the pool, its two tokens and
//! the pool's factory. Their admins can change what a trade does without any trade noticing:
//! a protocol fee switched on, a new owner, a token paused, upgraded behind its proxy or its
//! code replaced. The engine simulated trades against the contracts as they were; after such
//! a change nobody has looked at what they do now. So the sentinel, at each new block:
//!
//! - reads the logs of every block since the last it read (`eth_getLogs` over the watched
//!   contracts) for the admin events in [`EVENTS`] (the V3 pool's `SetFeeProtocol`, the
//!   factory's `OwnerChanged` and `FeeAmountEnabled`, OpenZeppelin's
//!   `OwnershipTransferred` and `Paused`, EIP-1967's `Upgraded`, `AdminChanged` and
//!   `BeaconUpgraded`). The last block read is stored, so a restarted engine reads the blocks
//!   it missed;
//! - every [`SentinelConfig::check_every_blocks`] blocks, reads each contract's EIP-1967
//!   implementation, admin and beacon slots and the keccak256 of its code, and compares them
//!   with the stored baseline (the first reading), so a change that emits nothing (an
//!   upgrade written straight into the slot, code replaced) is caught too.
//!
//! A hit halts exactly the markets that trade through that contract: the gates refuse their
//! proposals (`governance_halt`) while every other market goes on. The halt is stored, so it
//! survives a restart, audited (contract, event or slot, transaction, block), logged at error
//! level and counted (`stratbox_engine_governance_hits_total`,
//! `stratbox_engine_governance_halted_markets`, which an alert watches). Only an operator
//! lifts it (`ClearGovernanceHalt`, `stratbox governance clear`), which also drops the
//! baselines of the market's contracts: the next reading is the new baseline.
//!
//! A change the sentinel acts on may later be undone by a reorg; the market stays halted
//! until someone has looked, which is the point.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, Log};
use alloy_primitives::{Address as EvmAddress, B256, U256 as EvmU256, b256, keccak256};
use alloy_sol_types::{SolEvent, SolEventInterface, sol};
use stratbox_evm::abi::IUniswapV3Pool;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::engine::{Engine, EngineError};
use crate::proposal::{Address, hex_address};
use crate::store::{Baseline, GovernanceHalt, StoreError};

sol! {
    /// The admin events the sentinel halts on.
    #[derive(Debug)]
    interface GovernanceEvents {
        /// `UniswapV3Pool`: the factory's owner switched the protocol fee.
        event SetFeeProtocol(uint8 feeProtocol0Old, uint8 feeProtocol1Old, uint8 feeProtocol0New, uint8 feeProtocol1New);
        /// `UniswapV3Factory`: a new owner (who controls every pool's protocol fee).
        event OwnerChanged(address indexed oldOwner, address indexed newOwner);
        /// `UniswapV3Factory`: a new fee tier.
        event FeeAmountEnabled(uint24 indexed fee, int24 indexed tickSpacing);
        /// OpenZeppelin `Ownable`.
        event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
        /// OpenZeppelin `Pausable`: transfers stop.
        event Paused(address account);
        /// EIP-1967: a proxy's implementation changed.
        event Upgraded(address indexed implementation);
        /// EIP-1967: a proxy's admin changed.
        event AdminChanged(address previousAdmin, address newAdmin);
        /// EIP-1967: a beacon proxy's beacon changed.
        event BeaconUpgraded(address indexed beacon);
    }
}

use GovernanceEvents::GovernanceEventsEvents as AdminEvent;

/// The events watched: (name, topic 0).
pub const EVENTS: [(&str, B256); 8] = [
    (
        "SetFeeProtocol",
        GovernanceEvents::SetFeeProtocol::SIGNATURE_HASH,
    ),
    (
        "OwnerChanged",
        GovernanceEvents::OwnerChanged::SIGNATURE_HASH,
    ),
    (
        "FeeAmountEnabled",
        GovernanceEvents::FeeAmountEnabled::SIGNATURE_HASH,
    ),
    (
        "OwnershipTransferred",
        GovernanceEvents::OwnershipTransferred::SIGNATURE_HASH,
    ),
    ("Paused", GovernanceEvents::Paused::SIGNATURE_HASH),
    ("Upgraded", GovernanceEvents::Upgraded::SIGNATURE_HASH),
    (
        "AdminChanged",
        GovernanceEvents::AdminChanged::SIGNATURE_HASH,
    ),
    (
        "BeaconUpgraded",
        GovernanceEvents::BeaconUpgraded::SIGNATURE_HASH,
    ),
];

/// EIP-1967 implementation slot: `keccak256("eip1967.proxy.implementation") - 1`.
pub const IMPLEMENTATION_SLOT: B256 =
    b256!("360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc");
/// EIP-1967 admin slot: `keccak256("eip1967.proxy.admin") - 1`.
pub const ADMIN_SLOT: B256 =
    b256!("b53127684a568b3173ae13b9f8a6016e243e63b6e8ee1178d6a717850b5d6103");
/// EIP-1967 beacon slot: `keccak256("eip1967.proxy.beacon") - 1`.
pub const BEACON_SLOT: B256 =
    b256!("a3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6cb3582b35133d50");

pub use crate::admin_change::{KINDS, kind_label};

/// Why a pass of the sentinel failed; the next pass retries from where this one stopped.
#[derive(Debug, thiserror::Error)]
pub enum SentinelError {
    /// The node failed or answered nonsense.
    #[error("chain node: {0}")]
    Rpc(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed (its database, in practice).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn rpc(e: impl std::fmt::Display) -> SentinelError {
    SentinelError::Rpc(e.to_string())
}

/// How the sentinel runs.
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    /// The JSON-RPC node the engine follows.
    pub rpc_url: String,
    /// How often the node's head is polled.
    pub poll_interval: Duration,
    /// Read the EIP-1967 slots and code hashes every this many blocks (1: every block).
    /// Four reads per contract each time; logs are read for every block regardless.
    pub check_every_blocks: u64,
    /// The most blocks one `eth_getLogs` asks for (nodes cap the range).
    pub max_log_range: u64,
}

impl SentinelConfig {
    /// Every block, polled every second, 1,000 blocks per `eth_getLogs`.
    pub fn new(rpc_url: &str) -> SentinelConfig {
        SentinelConfig {
            rpc_url: rpc_url.to_owned(),
            poll_interval: Duration::from_secs(1),
            check_every_blocks: 1,
            max_log_range: 1_000,
        }
    }
}

/// One market and the contracts it trades through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketWatch {
    /// The pool: the market's name.
    pub pool: Address,
    /// The pool's token0.
    pub token0: Address,
    /// The pool's token1.
    pub token1: Address,
    /// The factory that deployed the pool (its owner sets the pool's protocol fee).
    pub factory: Address,
}

impl MarketWatch {
    /// The four contracts (pool, tokens, factory).
    pub fn contracts(&self) -> [Address; 4] {
        [self.pool, self.token0, self.token1, self.factory]
    }

    fn touches(&self, contract: &Address) -> bool {
        self.contracts().contains(contract)
    }
}

/// What one contract's reading found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reading {
    implementation: B256,
    admin: B256,
    beacon: B256,
    code_hash: B256,
}

fn word(s: &str) -> String {
    s.to_ascii_lowercase()
}

impl Reading {
    fn baseline(&self, contract: &Address, block: u64) -> Baseline {
        Baseline {
            contract: hex_address(contract),
            implementation: format!("{:#x}", self.implementation),
            admin: format!("{:#x}", self.admin),
            beacon: format!("{:#x}", self.beacon),
            code_hash: format!("{:#x}", self.code_hash),
            block,
        }
    }

    /// (kind, baseline value, value now) for every field that differs from `b`.
    fn changes(&self, b: &Baseline) -> Vec<(&'static str, String, String)> {
        let now = self.baseline(&[0; 20], 0);
        [
            ("implementation_slot", &b.implementation, now.implementation),
            ("admin_slot", &b.admin, now.admin),
            ("beacon_slot", &b.beacon, now.beacon),
            ("code_hash", &b.code_hash, now.code_hash),
        ]
        .into_iter()
        .filter(|(_, was, is)| word(was) != word(is))
        .map(|(k, was, is)| (k, was.clone(), is))
        .collect()
    }
}

/// What one pass did (for tests and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// The node's head at the pass.
    pub head: u64,
    /// The blocks whose logs were read (`None`: no new block).
    pub logs: Option<(u64, u64)>,
    /// Whether the contracts' slots and code were read.
    pub read_state: bool,
    /// Admin events seen.
    pub events: usize,
    /// Readings that differed from a baseline (first seen).
    pub changed_readings: usize,
    /// Markets newly halted.
    pub halted: Vec<String>,
}

/// Watches the contracts of every market the engine trades; see the module docs.
pub struct Sentinel {
    engine: Engine,
    provider: RootProvider,
    config: SentinelConfig,
    markets: Vec<MarketWatch>,
    contracts: Vec<Address>,
    /// The first block whose logs are not read yet.
    next_block: u64,
    /// The block the slots and code were last read at.
    last_reading: Option<u64>,
    /// Readings that differ from their baseline and were acted on: (contract, kind, value
    /// now). Acted on once; forgotten when the contract is re-baselined.
    reported: HashSet<(Address, &'static str, String)>,
}

impl Sentinel {
    /// Connects to the node, finds each pool's factory, and resumes from the stored last
    /// block read (or, the first time, from the node's head: earlier changes are the state
    /// the first reading takes as its baseline).
    pub async fn connect(
        engine: Engine,
        config: SentinelConfig,
    ) -> Result<Sentinel, SentinelError> {
        let provider = RootProvider::<alloy::network::Ethereum>::connect(&config.rpc_url)
            .await
            .map_err(rpc)?;
        let node = provider.get_chain_id().await.map_err(rpc)?;
        if node != engine.chain_id() {
            return Err(SentinelError::Rpc(format!(
                "the node is chain {node}, the engine trades chain {}",
                engine.chain_id()
            )));
        }
        let mut markets = Vec::new();
        for (pool, info) in engine.chain().pool_infos() {
            let factory = stratbox_evm::deploy::read_call(
                &provider,
                EvmAddress::from(*pool),
                IUniswapV3Pool::factoryCall {},
                "factory",
            )
            .await
            .map_err(rpc)?;
            markets.push(MarketWatch {
                pool: *pool,
                token0: info.token0,
                token1: info.token1,
                factory: factory.into_array(),
            });
        }
        let mut contracts: Vec<Address> = Vec::new();
        for m in &markets {
            for c in m.contracts() {
                if !contracts.contains(&c) {
                    contracts.push(c);
                }
            }
        }
        let store = engine.store().clone();
        let next_block = match store.governance_cursor(engine.chain_id()).await? {
            Some(last) => last.saturating_add(1),
            None => {
                let head = provider.get_block_number().await.map_err(rpc)?;
                store.set_governance_cursor(engine.chain_id(), head).await?;
                head.saturating_add(1)
            }
        };
        engine.sync_governance_halts().await?;
        info!(
            markets = markets.len(),
            contracts = contracts.len(),
            from_block = next_block,
            every_blocks = config.check_every_blocks,
            "governance sentinel watching"
        );
        Ok(Sentinel {
            engine,
            provider,
            config,
            markets,
            contracts,
            next_block,
            last_reading: None,
            reported: HashSet::new(),
        })
    }

    /// The markets watched, with their contracts.
    pub fn markets(&self) -> &[MarketWatch] {
        &self.markets
    }

    /// Runs passes every `poll_interval` until `stop` turns true; a failed pass is logged
    /// and the next one retries from where it stopped.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.pass().await {
                warn!(error = %e, "governance sentinel pass failed; retrying");
            }
        }
    }

    /// One pass: reloads the stored halts into the gates, reads the logs of every block
    /// since the last pass, and, when due, the contracts' slots and code.
    pub async fn pass(&mut self) -> Result<Pass, SentinelError> {
        self.engine.sync_governance_halts().await?;
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        let mut pass = Pass {
            head,
            ..Pass::default()
        };
        let chain_id = self.engine.chain_id();
        while self.next_block <= head {
            let from = self.next_block;
            let to = head.min(from.saturating_add(self.config.max_log_range.max(1) - 1));
            let filter = Filter::new()
                .address(
                    self.contracts
                        .iter()
                        .map(|c| EvmAddress::from(*c))
                        .collect::<Vec<_>>(),
                )
                .event_signature(EVENTS.iter().map(|(_, t)| *t).collect::<Vec<_>>())
                .from_block(from)
                .to_block(to);
            let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
            for log in &logs {
                if let Some(hit) = self.event_hit(log) {
                    pass.events += 1;
                    let halts = self.halts_for(&hit);
                    pass.halted
                        .extend(self.engine.halt_for_governance(&halts, true, None).await?);
                }
            }
            // Stored once the range's halts are: a failure re-reads the range, and a halt
            // is never lost (at worst an event is audited twice).
            self.engine
                .store()
                .set_governance_cursor(chain_id, to)
                .await?;
            self.next_block = to + 1;
            pass.logs = Some((pass.logs.map_or(from, |(f, _)| f), to));
        }
        // Due every N blocks, and at once when a contract has no baseline (the first pass,
        // or an operator's clear just dropped it): the clear's re-baselining is then the
        // state the operator looked at, not one some blocks later.
        let baselines: HashMap<String, Baseline> = self
            .engine
            .store()
            .governance_baselines()
            .await?
            .into_iter()
            .map(|b| (b.contract.clone(), b))
            .collect();
        let unbaselined = self
            .contracts
            .iter()
            .any(|c| !baselines.contains_key(&hex_address(c)));
        let due = unbaselined
            || self
                .last_reading
                .is_none_or(|b| head >= b.saturating_add(self.config.check_every_blocks.max(1)));
        if due {
            pass.changed_readings = self.check_state(head, &baselines, &mut pass.halted).await?;
            pass.read_state = true;
            self.last_reading = Some(head);
        }
        if pass.events > 0 || pass.changed_readings > 0 {
            debug!(?pass, "governance sentinel pass");
        }
        Ok(pass)
    }

    /// The halt an admin event asks for, `None` for a log that is not one.
    fn event_hit(&self, log: &Log) -> Option<GovernanceHalt> {
        let topic = *log.topic0()?;
        let (kind, _) = EVENTS.iter().find(|(_, t)| *t == topic)?;
        let detail = match AdminEvent::decode_log(&log.inner) {
            Ok(decoded) => format!("{:?}", decoded.data),
            Err(e) => format!("undecodable {kind} log ({e})"),
        };
        Some(GovernanceHalt {
            market: String::new(),
            contract: hex_address(&log.address().into_array()),
            kind: (*kind).to_owned(),
            tx_hash: log
                .transaction_hash
                .map(|h| format!("{h:#x}"))
                .unwrap_or_default(),
            block: log.block_number.unwrap_or_default(),
            detail,
            watched: Vec::new(),
            halted_at_ms: 0,
        })
    }

    /// One halt per market that trades through the hit's contract.
    fn halts_for(&self, hit: &GovernanceHalt) -> Vec<GovernanceHalt> {
        let Ok(contract) = stratbox_proto::parse_address(&hit.contract) else {
            return Vec::new();
        };
        self.markets
            .iter()
            .filter(|m| m.touches(&contract))
            .map(|m| GovernanceHalt {
                market: hex_address(&m.pool),
                watched: m.contracts().iter().map(hex_address).collect(),
                ..hit.clone()
            })
            .collect()
    }

    async fn read(&self, contract: Address, block: u64) -> Result<Reading, SentinelError> {
        let at = BlockId::number(block);
        let address = EvmAddress::from(contract);
        let slot = |s: B256| {
            self.provider
                .get_storage_at(address, EvmU256::from_be_bytes(s.0))
                .block_id(at)
        };
        let (implementation, admin, beacon, code) = tokio::try_join!(
            async { slot(IMPLEMENTATION_SLOT).await.map_err(rpc) },
            async { slot(ADMIN_SLOT).await.map_err(rpc) },
            async { slot(BEACON_SLOT).await.map_err(rpc) },
            async {
                self.provider
                    .get_code_at(address)
                    .block_id(at)
                    .await
                    .map_err(rpc)
            },
        )?;
        Ok(Reading {
            implementation: B256::from(implementation),
            admin: B256::from(admin),
            beacon: B256::from(beacon),
            code_hash: keccak256(&code),
        })
    }

    /// Reads every contract at `block` and compares it with its baseline; a contract with
    /// none (the first reading, or after a clear) takes this reading as its baseline.
    /// Returns how many changes were seen for the first time.
    async fn check_state(
        &mut self,
        block: u64,
        baselines: &HashMap<String, Baseline>,
        halted: &mut Vec<String>,
    ) -> Result<usize, SentinelError> {
        let this = &*self;
        let readings = futures::future::try_join_all(
            this.contracts
                .iter()
                .map(|c| async move { Ok::<_, SentinelError>((*c, this.read(*c, block).await?)) }),
        )
        .await?;
        let store = self.engine.store().clone();
        let mut seen = 0;
        for (contract, reading) in readings {
            let name = hex_address(&contract);
            let Some(baseline) = baselines.get(&name) else {
                if store
                    .save_baseline(&reading.baseline(&contract, block))
                    .await?
                {
                    debug!(contract = %name, block, "governance baseline taken");
                }
                self.reported.retain(|(c, _, _)| *c != contract);
                continue;
            };
            for (kind, was, is) in reading.changes(baseline) {
                if !self.reported.insert((contract, kind, is.clone())) {
                    continue;
                }
                seen += 1;
                let hit = GovernanceHalt {
                    market: String::new(),
                    contract: name.clone(),
                    kind: kind.to_owned(),
                    tx_hash: String::new(),
                    block,
                    detail: format!(
                        "{kind} was {was} at block {}, is {is} at block {block}",
                        baseline.block
                    ),
                    watched: Vec::new(),
                    halted_at_ms: 0,
                };
                let halts = self.halts_for(&hit);
                halted.extend(
                    self.engine
                        .halt_for_governance(&halts, false, Some(baseline))
                        .await?,
                );
            }
        }
        Ok(seen)
    }
}

/// A stored halt in its wire form (`ListGovernanceHalts`, `ClearGovernanceHalt`).
pub fn halt_to_wire(h: &GovernanceHalt) -> stratbox_proto::v1::GovernanceHalt {
    let address = |value: &str| stratbox_proto::v1::Address {
        value: value.to_owned(),
    };
    stratbox_proto::v1::GovernanceHalt {
        market: Some(address(&h.market)),
        contract: Some(address(&h.contract)),
        kind: h.kind.clone(),
        tx_hash: h.tx_hash.clone(),
        block: h.block,
        detail: h.detail.clone(),
        halted_at_ms: h.halted_at_ms,
        watched: h.watched.iter().map(|w| address(w)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minus_one(label: &str) -> B256 {
        let h = EvmU256::from_be_bytes(keccak256(label.as_bytes()).0);
        B256::from(h - EvmU256::from(1u8))
    }

    #[test]
    fn eip1967_slots_are_the_standards() {
        assert_eq!(
            IMPLEMENTATION_SLOT,
            minus_one("eip1967.proxy.implementation")
        );
        assert_eq!(ADMIN_SLOT, minus_one("eip1967.proxy.admin"));
        assert_eq!(BEACON_SLOT, minus_one("eip1967.proxy.beacon"));
    }

    #[test]
    fn event_topics_are_the_signatures() {
        for (name, sig) in [
            ("SetFeeProtocol", "SetFeeProtocol(uint8,uint8,uint8,uint8)"),
            ("OwnerChanged", "OwnerChanged(address,address)"),
            ("FeeAmountEnabled", "FeeAmountEnabled(uint24,int24)"),
            (
                "OwnershipTransferred",
                "OwnershipTransferred(address,address)",
            ),
            ("Paused", "Paused(address)"),
            ("Upgraded", "Upgraded(address)"),
            ("AdminChanged", "AdminChanged(address,address)"),
            ("BeaconUpgraded", "BeaconUpgraded(address)"),
        ] {
            let topic = EVENTS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
            assert_eq!(topic, Some(keccak256(sig.as_bytes())), "{name}");
            assert_eq!(kind_label(name), name);
        }
        assert_eq!(kind_label("code_hash"), "code_hash");
        assert_eq!(kind_label("nonsense"), "other");
    }

    #[test]
    fn a_reading_reports_each_field_that_moved() {
        let r = Reading {
            implementation: B256::repeat_byte(1),
            admin: B256::ZERO,
            beacon: B256::ZERO,
            code_hash: B256::repeat_byte(9),
        };
        let b = r.baseline(&[7; 20], 5);
        assert!(r.changes(&b).is_empty());
        let moved = Reading {
            implementation: B256::repeat_byte(2),
            code_hash: B256::repeat_byte(8),
            ..r
        };
        let kinds: Vec<&str> = moved.changes(&b).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(kinds, ["implementation_slot", "code_hash"]);
    }
}
