//! The signer's policy: deny by default. A TOML file lists what may be signed (chain ids,
//! destination contracts and their functions, the tokens that may move with their caps,
//! fee and gas ceilings) and, per account, its key, its mode and its approval thresholds.
//! Anything not listed is refused.
//!
//! Thresholds and caps are raw token units per token: the signer has no price oracle (it
//! would be one more thing a compromised engine could feed), so "how much" is always "how
//! many units of which token".
//!
//! Changes: [`meet`] is the strictest policy both of two allow, and [`diff`] lists each
//! change with whether it loosens. The service applies a new file's tightening at once (it
//! makes the active policy `meet(active, new)`) and the file itself only after the timelock.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML of the policy's shape.
    #[error("policy: {0}")]
    Parse(String),
    /// TOML of the right shape whose content does not hold together.
    #[error("policy: {0}")]
    Invalid(String),
    /// The file could not be read.
    #[error("policy file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// An account's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every transaction waits for a human.
    Staged,
    /// Transactions under the account's thresholds are signed at once.
    Live,
}

/// Functions a policy may allow, per kind of destination. Names, not selectors: the names
/// are resolved against the `sol!` bindings, so an ABI change (a new argument) keeps the
/// policy meaning the same function.
pub const EXECUTOR_FUNCTIONS: &[&str] = &["swap", "mint", "burn"];
/// See [`EXECUTOR_FUNCTIONS`].
pub const TOKEN_FUNCTIONS: &[&str] = &["approve", "transfer"];
/// See [`EXECUTOR_FUNCTIONS`].
pub const POOL_FUNCTIONS: &[&str] = &["swap", "mint", "burn", "collect"];

// ---- the file -------------------------------------------------------------------------

/// The policy file as written (see `signer/policy.example.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// EIP-155 chain ids that may be signed for.
    pub chain_ids: Vec<u64>,
    /// Ceiling on `max_fee_per_gas`, wei.
    pub max_fee_per_gas: String,
    /// Ceiling on `max_priority_fee_per_gas`, wei.
    pub max_priority_fee_per_gas: String,
    /// Ceiling on `gas_limit`.
    pub max_gas_limit: u64,
    /// stratbox executors that may be called.
    #[serde(default)]
    pub executors: Vec<ExecutorFile>,
    /// Tokens that may move (and be called, for the functions listed).
    #[serde(default)]
    pub tokens: Vec<TokenFile>,
    /// Pools that may be traded or called.
    #[serde(default)]
    pub pools: Vec<PoolFile>,
    /// The accounts this signer signs for.
    #[serde(default)]
    pub accounts: Vec<AccountFile>,
}

/// An executor contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorFile {
    /// 0x address.
    pub address: String,
    /// Of [`EXECUTOR_FUNCTIONS`].
    #[serde(default)]
    pub functions: Vec<String>,
}

/// A token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// Shown to approvers; unique in the policy.
    pub symbol: String,
    /// 0x address.
    pub address: String,
    /// For display only: amounts are raw units everywhere else.
    pub decimals: u8,
    /// Raw units one transaction may move out of an account.
    pub max_per_tx: String,
    /// Raw units an account may move out in any rolling 24 hours.
    pub max_per_day: String,
    /// Of [`TOKEN_FUNCTIONS`]: calls on the token itself.
    #[serde(default)]
    pub functions: Vec<String>,
}

/// A Uniswap V3 pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    /// 0x address.
    pub address: String,
    /// Symbol of the pool's token0 (the lower address).
    pub token0: String,
    /// Symbol of token1.
    pub token1: String,
    /// Fee tier in pips, for display.
    pub fee: u32,
    /// Of [`POOL_FUNCTIONS`]: direct calls on the pool (none by default; trades go through
    /// an executor).
    #[serde(default)]
    pub functions: Vec<String>,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFile {
    /// 0x address; must be what the key source says for `key_index`.
    pub address: String,
    /// Which key of the key source signs for it.
    pub key_index: u32,
    /// `staged` or `live`.
    pub mode: Mode,
    /// Per token symbol. A token without an entry has thresholds 0: any outflow of it
    /// waits for one approver.
    #[serde(default)]
    pub thresholds: BTreeMap<String, ThresholdFile>,
}

/// An account's thresholds for one token, raw units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdFile {
    /// Outflows above this wait for one approver.
    pub approval: String,
    /// Outflows above this wait for two distinct approvers.
    pub two_approvals: String,
}

// ---- the resolved policy ----------------------------------------------------------------

/// A token as the policy knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Display symbol.
    pub symbol: String,
    /// Display decimals.
    pub decimals: u8,
    /// Per-transaction cap, raw units.
    pub max_per_tx: U256,
    /// Rolling 24-hour cap per account, raw units.
    pub max_per_day: U256,
    /// Functions callable on the token.
    pub functions: BTreeSet<String>,
}

/// A pool as the policy knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// token0's address.
    pub token0: Address,
    /// token1's address.
    pub token1: Address,
    /// Fee tier, pips.
    pub fee: u32,
    /// Functions callable on the pool directly.
    pub functions: BTreeSet<String>,
}

/// An account's thresholds for one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Above: one approver.
    pub approval: U256,
    /// Above: two approvers.
    pub two_approvals: U256,
}

/// An account as the policy knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Key source index.
    pub key_index: u32,
    /// Staged or live.
    pub mode: Mode,
    /// Per token address.
    pub thresholds: BTreeMap<Address, Thresholds>,
}

/// A checked policy, keyed by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Allowed chain ids.
    pub chain_ids: BTreeSet<u64>,
    /// Fee cap ceiling, wei.
    pub max_fee_per_gas: u128,
    /// Tip ceiling, wei.
    pub max_priority_fee_per_gas: u128,
    /// Gas limit ceiling.
    pub max_gas_limit: u64,
    /// Executors and their allowed functions.
    pub executors: BTreeMap<Address, BTreeSet<String>>,
    /// Tokens.
    pub tokens: BTreeMap<Address, Token>,
    /// Pools.
    pub pools: BTreeMap<Address, Pool>,
    /// Accounts.
    pub accounts: BTreeMap<Address, Account>,
}

fn invalid(s: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(s.into())
}

fn parse_addr(what: &str, s: &str) -> Result<Address, PolicyError> {
    stratbox_proto::parse_address(s)
        .map(Address::from)
        .map_err(|e| invalid(format!("{what}: {e}")))
}

fn parse_units(what: &str, s: &str) -> Result<U256, PolicyError> {
    let v = stratbox_proto::parse_amount(s).map_err(|e| invalid(format!("{what}: {e}")))?;
    Ok(U256::from_limbs(v.into_limbs()))
}

fn functions(
    what: &str,
    names: &[String],
    allowed: &[&str],
) -> Result<BTreeSet<String>, PolicyError> {
    let mut out = BTreeSet::new();
    for n in names {
        if !allowed.contains(&n.as_str()) {
            return Err(invalid(format!(
                "{what}: unknown function {n:?} (known: {})",
                allowed.join(", ")
            )));
        }
        out.insert(n.clone());
    }
    Ok(out)
}

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        Policy::resolve(&file)
    }

    /// Reads, parses and checks a policy file.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_toml(&text)
    }

    /// Checks the file's content and keys everything by address.
    pub fn resolve(file: &PolicyFile) -> Result<Policy, PolicyError> {
        let fee = |what: &str, s: &str| -> Result<u128, PolicyError> {
            u128::try_from(parse_units(what, s)?)
                .map_err(|_| invalid(format!("{what} does not fit in 128 bits")))
        };
        let mut executors = BTreeMap::new();
        for e in &file.executors {
            let a = parse_addr("executor", &e.address)?;
            let f = functions("executor", &e.functions, EXECUTOR_FUNCTIONS)?;
            if executors.insert(a, f).is_some() {
                return Err(invalid(format!("executor {a:#x} listed twice")));
            }
        }
        let mut tokens = BTreeMap::new();
        let mut by_symbol = BTreeMap::new();
        for t in &file.tokens {
            let a = parse_addr(&format!("token {}", t.symbol), &t.address)?;
            if t.symbol.is_empty() || t.symbol.len() > 32 {
                return Err(invalid("a token symbol must be 1 to 32 characters"));
            }
            if by_symbol.insert(t.symbol.clone(), a).is_some() {
                return Err(invalid(format!("token symbol {} listed twice", t.symbol)));
            }
            let token = Token {
                symbol: t.symbol.clone(),
                decimals: t.decimals,
                max_per_tx: parse_units(&format!("{}.max_per_tx", t.symbol), &t.max_per_tx)?,
                max_per_day: parse_units(&format!("{}.max_per_day", t.symbol), &t.max_per_day)?,
                functions: functions(
                    &format!("token {}", t.symbol),
                    &t.functions,
                    TOKEN_FUNCTIONS,
                )?,
            };
            if tokens.insert(a, token).is_some() {
                return Err(invalid(format!("token {a:#x} listed twice")));
            }
        }
        let symbol = |s: &str| -> Result<Address, PolicyError> {
            by_symbol
                .get(s)
                .copied()
                .ok_or_else(|| invalid(format!("unknown token symbol {s:?}")))
        };
        let mut pools = BTreeMap::new();
        for p in &file.pools {
            let a = parse_addr("pool", &p.address)?;
            let (t0, t1) = (symbol(&p.token0)?, symbol(&p.token1)?);
            if t0 >= t1 {
                return Err(invalid(format!(
                    "pool {a:#x}: token0 ({}) must have the lower address, as in Uniswap V3",
                    p.token0
                )));
            }
            let pool = Pool {
                token0: t0,
                token1: t1,
                fee: p.fee,
                functions: functions(&format!("pool {a:#x}"), &p.functions, POOL_FUNCTIONS)?,
            };
            if pools.insert(a, pool).is_some() {
                return Err(invalid(format!("pool {a:#x} listed twice")));
            }
        }
        let mut accounts = BTreeMap::new();
        let mut indexes = BTreeSet::new();
        for acc in &file.accounts {
            let a = parse_addr("account", &acc.address)?;
            if !indexes.insert(acc.key_index) {
                return Err(invalid(format!("key_index {} used twice", acc.key_index)));
            }
            let mut thresholds = BTreeMap::new();
            for (sym, t) in &acc.thresholds {
                let what = format!("account {a:#x} threshold {sym}");
                thresholds.insert(
                    symbol(sym)?,
                    Thresholds {
                        approval: parse_units(&what, &t.approval)?,
                        two_approvals: parse_units(&what, &t.two_approvals)?,
                    },
                );
            }
            let account = Account {
                key_index: acc.key_index,
                mode: acc.mode,
                thresholds,
            };
            if accounts.insert(a, account).is_some() {
                return Err(invalid(format!("account {a:#x} listed twice")));
            }
        }
        for a in executors.keys() {
            if tokens.contains_key(a) || pools.contains_key(a) || accounts.contains_key(a) {
                return Err(invalid(format!("{a:#x} is listed as two kinds of thing")));
            }
        }
        for a in tokens.keys() {
            if pools.contains_key(a) || accounts.contains_key(a) {
                return Err(invalid(format!("{a:#x} is listed as two kinds of thing")));
            }
        }
        Ok(Policy {
            chain_ids: file.chain_ids.iter().copied().collect(),
            max_fee_per_gas: fee("max_fee_per_gas", &file.max_fee_per_gas)?,
            max_priority_fee_per_gas: fee(
                "max_priority_fee_per_gas",
                &file.max_priority_fee_per_gas,
            )?,
            max_gas_limit: file.max_gas_limit,
            executors,
            tokens,
            pools,
            accounts,
        })
    }

    /// The file form, sorted: what [`Policy::canonical_toml`] prints.
    pub fn to_file(&self) -> PolicyFile {
        let sym = |a: &Address| {
            self.tokens
                .get(a)
                .map(|t| t.symbol.clone())
                .unwrap_or_else(|| format!("{a:#x}"))
        };
        PolicyFile {
            chain_ids: self.chain_ids.iter().copied().collect(),
            max_fee_per_gas: self.max_fee_per_gas.to_string(),
            max_priority_fee_per_gas: self.max_priority_fee_per_gas.to_string(),
            max_gas_limit: self.max_gas_limit,
            executors: self
                .executors
                .iter()
                .map(|(a, f)| ExecutorFile {
                    address: format!("{a:#x}"),
                    functions: f.iter().cloned().collect(),
                })
                .collect(),
            tokens: self
                .tokens
                .iter()
                .map(|(a, t)| TokenFile {
                    symbol: t.symbol.clone(),
                    address: format!("{a:#x}"),
                    decimals: t.decimals,
                    max_per_tx: t.max_per_tx.to_string(),
                    max_per_day: t.max_per_day.to_string(),
                    functions: t.functions.iter().cloned().collect(),
                })
                .collect(),
            pools: self
                .pools
                .iter()
                .map(|(a, p)| PoolFile {
                    address: format!("{a:#x}"),
                    token0: sym(&p.token0),
                    token1: sym(&p.token1),
                    fee: p.fee,
                    functions: p.functions.iter().cloned().collect(),
                })
                .collect(),
            accounts: self
                .accounts
                .iter()
                .map(|(a, acc)| AccountFile {
                    address: format!("{a:#x}"),
                    key_index: acc.key_index,
                    mode: acc.mode,
                    thresholds: acc
                        .thresholds
                        .iter()
                        .map(|(t, th)| {
                            (
                                sym(t),
                                ThresholdFile {
                                    approval: th.approval.to_string(),
                                    two_approvals: th.two_approvals.to_string(),
                                },
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The policy as sorted TOML: two policies that allow the same are the same text.
    pub fn canonical_toml(&self) -> String {
        // Serialising plain strings, numbers and tables cannot fail.
        toml::to_string(&self.to_file()).unwrap_or_default()
    }

    /// sha256 of [`Policy::canonical_toml`], hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_toml().as_bytes()))
    }

    /// The display symbol of a token (its address if the policy does not list it).
    pub fn symbol(&self, token: &Address) -> String {
        self.tokens
            .get(token)
            .map(|t| t.symbol.clone())
            .unwrap_or_else(|| format!("{token:#x}"))
    }
}

// ---- meet and diff ----------------------------------------------------------------------

fn meet_set<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> BTreeSet<T> {
    a.intersection(b).cloned().collect()
}

/// The strictest policy that `a` and `b` both allow: every set intersected, every ceiling
/// the lower, every account staged if either is. Entries whose identity differs (a pool
/// with other tokens, an account with another key) are dropped. Display fields (symbol,
/// decimals, fee tier) are taken from `a`, the active policy.
pub fn meet(a: &Policy, b: &Policy) -> Policy {
    let tokens = a
        .tokens
        .iter()
        .filter_map(|(addr, ta)| {
            let tb = b.tokens.get(addr)?;
            Some((
                *addr,
                Token {
                    symbol: ta.symbol.clone(),
                    decimals: ta.decimals,
                    max_per_tx: ta.max_per_tx.min(tb.max_per_tx),
                    max_per_day: ta.max_per_day.min(tb.max_per_day),
                    functions: meet_set(&ta.functions, &tb.functions),
                },
            ))
        })
        .collect();
    let pools = a
        .pools
        .iter()
        .filter_map(|(addr, pa)| {
            let pb = b.pools.get(addr)?;
            (pa.token0 == pb.token0 && pa.token1 == pb.token1).then(|| {
                (
                    *addr,
                    Pool {
                        token0: pa.token0,
                        token1: pa.token1,
                        fee: pa.fee,
                        functions: meet_set(&pa.functions, &pb.functions),
                    },
                )
            })
        })
        .collect();
    let executors = a
        .executors
        .iter()
        .filter_map(|(addr, fa)| Some((*addr, meet_set(fa, b.executors.get(addr)?))))
        .collect();
    let accounts = a
        .accounts
        .iter()
        .filter_map(|(addr, aa)| {
            let ab = b.accounts.get(addr)?;
            if aa.key_index != ab.key_index {
                return None;
            }
            let zero = Thresholds {
                approval: U256::ZERO,
                two_approvals: U256::ZERO,
            };
            let keys: BTreeSet<&Address> =
                aa.thresholds.keys().chain(ab.thresholds.keys()).collect();
            let thresholds = keys
                .into_iter()
                .map(|t| {
                    let x = aa.thresholds.get(t).copied().unwrap_or(zero);
                    let y = ab.thresholds.get(t).copied().unwrap_or(zero);
                    (
                        *t,
                        Thresholds {
                            approval: x.approval.min(y.approval),
                            two_approvals: x.two_approvals.min(y.two_approvals),
                        },
                    )
                })
                .collect();
            Some((
                *addr,
                Account {
                    key_index: aa.key_index,
                    mode: aa.mode.min(ab.mode),
                    thresholds,
                },
            ))
        })
        .collect();
    Policy {
        chain_ids: meet_set(&a.chain_ids, &b.chain_ids),
        max_fee_per_gas: a.max_fee_per_gas.min(b.max_fee_per_gas),
        max_priority_fee_per_gas: a.max_priority_fee_per_gas.min(b.max_priority_fee_per_gas),
        max_gas_limit: a.max_gas_limit.min(b.max_gas_limit),
        executors,
        tokens,
        pools,
        accounts,
    }
}

/// One difference between two policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What changes, for humans and the audit log.
    pub text: String,
    /// Whether it allows anything the old policy did not.
    pub loosens: bool,
}

fn change(out: &mut Vec<Change>, loosens: bool, text: String) {
    out.push(Change { text, loosens });
}

fn ceiling<T: PartialOrd + std::fmt::Display>(out: &mut Vec<Change>, what: &str, old: T, new: T) {
    if old != new {
        change(out, new > old, format!("{what}: {old} -> {new}"));
    }
}

fn set_changes(out: &mut Vec<Change>, what: &str, old: &BTreeSet<String>, new: &BTreeSet<String>) {
    for f in new.difference(old) {
        change(out, true, format!("{what}: allow {f}"));
    }
    for f in old.difference(new) {
        change(out, false, format!("{what}: no longer allow {f}"));
    }
}

/// Every change from `old` to `new`, each marked loosening or tightening. A change of what
/// approvers are shown (a symbol, decimals, a fee tier) counts as loosening: it changes
/// what a human approves.
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let mut out = Vec::new();
    for c in new.chain_ids.difference(&old.chain_ids) {
        change(&mut out, true, format!("allow chain id {c}"));
    }
    for c in old.chain_ids.difference(&new.chain_ids) {
        change(&mut out, false, format!("no longer allow chain id {c}"));
    }
    ceiling(
        &mut out,
        "max_fee_per_gas",
        old.max_fee_per_gas,
        new.max_fee_per_gas,
    );
    ceiling(
        &mut out,
        "max_priority_fee_per_gas",
        old.max_priority_fee_per_gas,
        new.max_priority_fee_per_gas,
    );
    ceiling(
        &mut out,
        "max_gas_limit",
        old.max_gas_limit,
        new.max_gas_limit,
    );

    for (a, f) in &new.executors {
        match old.executors.get(a) {
            None => change(&mut out, true, format!("add executor {a:#x}")),
            Some(of) => set_changes(&mut out, &format!("executor {a:#x}"), of, f),
        }
    }
    for a in old
        .executors
        .keys()
        .filter(|a| !new.executors.contains_key(*a))
    {
        change(&mut out, false, format!("remove executor {a:#x}"));
    }

    for (a, t) in &new.tokens {
        let Some(o) = old.tokens.get(a) else {
            change(&mut out, true, format!("add token {} {a:#x}", t.symbol));
            continue;
        };
        let what = format!("token {}", t.symbol);
        if o.symbol != t.symbol || o.decimals != t.decimals {
            change(
                &mut out,
                true,
                format!(
                    "{what}: display {} ({} decimals) -> {} ({} decimals)",
                    o.symbol, o.decimals, t.symbol, t.decimals
                ),
            );
        }
        ceiling(
            &mut out,
            &format!("{what} max_per_tx"),
            o.max_per_tx,
            t.max_per_tx,
        );
        ceiling(
            &mut out,
            &format!("{what} max_per_day"),
            o.max_per_day,
            t.max_per_day,
        );
        set_changes(&mut out, &what, &o.functions, &t.functions);
    }
    for (a, t) in old
        .tokens
        .iter()
        .filter(|(a, _)| !new.tokens.contains_key(*a))
    {
        change(&mut out, false, format!("remove token {} {a:#x}", t.symbol));
    }

    for (a, p) in &new.pools {
        let Some(o) = old.pools.get(a) else {
            change(&mut out, true, format!("add pool {a:#x}"));
            continue;
        };
        let what = format!("pool {a:#x}");
        if o.token0 != p.token0 || o.token1 != p.token1 || o.fee != p.fee {
            change(&mut out, true, format!("{what}: tokens or fee tier change"));
        }
        set_changes(&mut out, &what, &o.functions, &p.functions);
    }
    for a in old.pools.keys().filter(|a| !new.pools.contains_key(*a)) {
        change(&mut out, false, format!("remove pool {a:#x}"));
    }

    for (a, acc) in &new.accounts {
        let Some(o) = old.accounts.get(a) else {
            change(&mut out, true, format!("add account {a:#x}"));
            continue;
        };
        let what = format!("account {a:#x}");
        if o.key_index != acc.key_index {
            change(
                &mut out,
                true,
                format!("{what}: key_index {} -> {}", o.key_index, acc.key_index),
            );
        }
        if o.mode != acc.mode {
            change(
                &mut out,
                acc.mode > o.mode,
                format!("{what}: mode {:?} -> {:?}", o.mode, acc.mode).to_lowercase(),
            );
        }
        let zero = Thresholds {
            approval: U256::ZERO,
            two_approvals: U256::ZERO,
        };
        let keys: BTreeSet<&Address> = o.thresholds.keys().chain(acc.thresholds.keys()).collect();
        for t in keys {
            let x = o.thresholds.get(t).copied().unwrap_or(zero);
            let y = acc.thresholds.get(t).copied().unwrap_or(zero);
            let sym = new.symbol(t);
            ceiling(
                &mut out,
                &format!("{what} {sym} approval threshold"),
                x.approval,
                y.approval,
            );
            ceiling(
                &mut out,
                &format!("{what} {sym} two-approval threshold"),
                x.two_approvals,
                y.two_approvals,
            );
        }
    }
    for a in old
        .accounts
        .keys()
        .filter(|a| !new.accounts.contains_key(*a))
    {
        change(&mut out, false, format!("remove account {a:#x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"
chain_ids = [31337]
max_fee_per_gas = "100000000000"
max_priority_fee_per_gas = "5000000000"
max_gas_limit = 1000000

[[executors]]
address = "0x00000000000000000000000000000000000000e1"
functions = ["swap", "mint", "burn"]

[[tokens]]
symbol = "SBA"
address = "0x00000000000000000000000000000000000000a1"
decimals = 18
max_per_tx = "1000"
max_per_day = "5000"
functions = ["approve"]

[[tokens]]
symbol = "SBB"
address = "0x00000000000000000000000000000000000000b1"
decimals = 6
max_per_tx = "1000"
max_per_day = "5000"

[[pools]]
address = "0x00000000000000000000000000000000000000c1"
token0 = "SBA"
token1 = "SBB"
fee = 3000

[[accounts]]
address = "0x00000000000000000000000000000000000000d1"
key_index = 0
mode = "live"
thresholds = { SBA = { approval = "100", two_approvals = "500" } }
"#;

    #[test]
    fn canonical_roundtrip() {
        let p = Policy::from_toml(SAMPLE).unwrap();
        let again = Policy::from_toml(&p.canonical_toml()).unwrap();
        assert_eq!(p, again);
        assert_eq!(p.hash(), again.hash());
    }

    #[test]
    fn refuses_unknown_function_and_symbol() {
        let bad = SAMPLE.replace(
            r#"functions = ["approve"]"#,
            r#"functions = ["transferFrom"]"#,
        );
        assert!(Policy::from_toml(&bad).is_err());
        let bad = SAMPLE.replace(r#"token1 = "SBB""#, r#"token1 = "XYZ""#);
        assert!(Policy::from_toml(&bad).is_err());
        let bad = SAMPLE.replace("chain_ids", "chain_idz");
        assert!(Policy::from_toml(&bad).is_err());
    }

    #[test]
    fn diff_classifies_and_meet_is_strictest() {
        let old = Policy::from_toml(SAMPLE).unwrap();
        let new = Policy::from_toml(
            &SAMPLE
                .replace(
                    r#"max_per_tx = "1000"
max_per_day = "5000"
functions = ["approve"]"#,
                    r#"max_per_tx = "9000"
max_per_day = "5000"
functions = ["approve"]"#,
                )
                .replace(
                    r#"max_fee_per_gas = "100000000000""#,
                    r#"max_fee_per_gas = "50000000000""#,
                ),
        )
        .unwrap();
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            changes
                .iter()
                .any(|c| c.loosens && c.text.contains("SBA max_per_tx"))
        );
        assert!(
            changes
                .iter()
                .any(|c| !c.loosens && c.text.contains("max_fee_per_gas"))
        );
        let m = meet(&old, &new);
        assert_eq!(m.max_fee_per_gas, 50_000_000_000);
        let sba = Address::from(
            stratbox_proto::parse_address("0x00000000000000000000000000000000000000a1").unwrap(),
        );
        assert_eq!(m.tokens[&sba].max_per_tx, U256::from(1000));
        // meet with itself changes nothing; meet of a tightening is the tightening.
        assert_eq!(meet(&old, &old), old);
        assert!(diff(&old, &meet(&old, &new)).iter().all(|c| !c.loosens));
    }

    #[test]
    fn staged_to_live_loosens() {
        let staged =
            Policy::from_toml(&SAMPLE.replace(r#"mode = "live""#, r#"mode = "staged""#)).unwrap();
        let live = Policy::from_toml(SAMPLE).unwrap();
        assert!(diff(&staged, &live).iter().all(|c| c.loosens));
        assert!(diff(&live, &staged).iter().all(|c| !c.loosens));
        assert_eq!(meet(&live, &staged), staged);
    }
}
