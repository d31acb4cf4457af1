//! Where state not yet in the chain's cache comes from: nowhere (the embedded chain, whose
//! every account was created here) or an RPC node at a fixed block (a fork).
//!
//! The fork keeps what it fetched behind `RwLock`s, so that overlays reading through `&self`
//! (every `simulate`) still fetch each slot at most once. Those locks guard map lookups and
//! inserts only: a fetch from the node runs with no lock held.

use std::collections::HashMap;
use std::sync::RwLock;

use alloy::network::Ethereum;
use alloy::providers::DynProvider;
use alloy_primitives::{Address, B256, U256};
use revm::database::{AlloyDB, CacheDB};
use revm::database_interface::{DBErrorMarker, DatabaseRef, async_db::AsyncDb};
use revm::state::{AccountInfo, Bytecode};

/// Why the state under the EVM could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The forked node did not answer or errored; the simulation cannot go on.
    #[error("fetching {what} from the fork's node: {detail}")]
    Fork {
        /// What was being fetched (account, storage slot, block hash).
        what: String,
        /// The RPC error.
        detail: String,
    },
    /// Code asked for by hash that no fetched account had: a bug, not a node problem.
    #[error("code {0} is not known to the fork cache")]
    UnknownCode(B256),
    /// A thread panicked while holding the cache.
    #[error("fork cache lock poisoned")]
    Poisoned,
}

impl DBErrorMarker for BackendError {}

/// Cloning a backend shares the fork's cache: every clone reads the same node at the same
/// block, so what one fetched the others need not fetch again.
#[derive(Clone)]
pub(crate) enum Backend {
    Empty,
    Fork(std::sync::Arc<ForkDb>),
}

pub(crate) type BaseDb = CacheDB<Backend>;

pub(crate) struct ForkDb {
    remote: AsyncDb<AlloyDB<Ethereum, DynProvider>>,
    accounts: RwLock<HashMap<Address, Option<AccountInfo>>>,
    storage: RwLock<HashMap<(Address, U256), U256>>,
    code: RwLock<HashMap<B256, Bytecode>>,
    block_hashes: RwLock<HashMap<u64, B256>>,
}

impl ForkDb {
    pub(crate) fn new(remote: AsyncDb<AlloyDB<Ethereum, DynProvider>>) -> Self {
        Self {
            remote,
            accounts: RwLock::default(),
            storage: RwLock::default(),
            code: RwLock::default(),
            block_hashes: RwLock::default(),
        }
    }
}

fn fork_err(what: impl Into<String>, e: impl std::fmt::Display) -> BackendError {
    BackendError::Fork {
        what: what.into(),
        detail: e.to_string(),
    }
}

impl DatabaseRef for ForkDb {
    type Error = BackendError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        if let Some(hit) = self
            .accounts
            .read()
            .map_err(|_| BackendError::Poisoned)?
            .get(&address)
        {
            return Ok(hit.clone());
        }
        let info = self
            .remote
            .basic_ref(address)
            .map_err(|e| fork_err(format!("account {address}"), e))?;
        if let Some(code) = info.as_ref().and_then(|i| i.code.clone()) {
            self.code
                .write()
                .map_err(|_| BackendError::Poisoned)?
                .insert(code.hash_slow(), code);
        }
        self.accounts
            .write()
            .map_err(|_| BackendError::Poisoned)?
            .insert(address, info.clone());
        Ok(info)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        // AlloyDB returns code with the account; it cannot look code up by hash.
        self.code
            .read()
            .map_err(|_| BackendError::Poisoned)?
            .get(&code_hash)
            .cloned()
            .ok_or(BackendError::UnknownCode(code_hash))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        if let Some(v) = self
            .storage
            .read()
            .map_err(|_| BackendError::Poisoned)?
            .get(&(address, index))
        {
            return Ok(*v);
        }
        let value = self
            .remote
            .storage_ref(address, index)
            .map_err(|e| fork_err(format!("slot {index} of {address}"), e))?;
        self.storage
            .write()
            .map_err(|_| BackendError::Poisoned)?
            .insert((address, index), value);
        Ok(value)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        if let Some(h) = self
            .block_hashes
            .read()
            .map_err(|_| BackendError::Poisoned)?
            .get(&number)
        {
            return Ok(*h);
        }
        let hash = self
            .remote
            .block_hash_ref(number)
            .map_err(|e| fork_err(format!("hash of block {number}"), e))?;
        self.block_hashes
            .write()
            .map_err(|_| BackendError::Poisoned)?
            .insert(number, hash);
        Ok(hash)
    }
}

impl DatabaseRef for Backend {
    type Error = BackendError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        match self {
            Backend::Empty => Ok(None),
            Backend::Fork(f) => f.basic_ref(address),
        }
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        match self {
            Backend::Empty => Err(BackendError::UnknownCode(code_hash)),
            Backend::Fork(f) => f.code_by_hash_ref(code_hash),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        match self {
            Backend::Empty => Ok(U256::ZERO),
            Backend::Fork(f) => f.storage_ref(address, index),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        match self {
            // The embedded chain has no history; a stable stand-in keeps BLOCKHASH deterministic.
            Backend::Empty => Ok(alloy_primitives::keccak256(number.to_be_bytes())),
            Backend::Fork(f) => f.block_hash_ref(number),
        }
    }
}
