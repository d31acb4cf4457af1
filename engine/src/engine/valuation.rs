//! What books and positions are worth: token amounts valued in the quote token at the pools'
//! prices, in exact integer arithmetic.

use super::*;
use stratbox_sdk::math::price::token0_in_token1_wide;

/// Every pool's price, as the books are valued (without the ether mark: see
/// [`Engine::marks`]).
pub(super) fn marks_of(chain: &ChainState) -> Marks {
    Marks::new(chain.pool_infos().iter().map(|(a, i)| (a, i)))
}

/// The ether mark: what the gas on live books is valued at (see [`crate::books`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherMark {
    /// Quote-token raw units per ether (10^18 wei).
    pub price: U256,
    /// The block it was read at.
    pub block: u64,
    /// True once the feed stopped being fresh: the price is the last fresh one.
    pub stale: bool,
}

impl Engine {
    /// Every pool's price and the ether mark, as the books are valued now.
    pub(super) fn marks(&self, chain: &ChainState) -> Marks {
        marks_of(chain).with_ether(self.ether_mark().map(|m| m.price))
    }

    /// The ether mark read at `block` (see [`crate::price_sources`]); returns the mark it
    /// replaces.
    pub fn set_ether_mark(&self, price: U256, block: u64) -> Option<EtherMark> {
        lock(&self.inner.ether).replace(EtherMark {
            price,
            block,
            stale: false,
        })
    }

    /// The ether feed was not fresh: the last mark stays, flagged stale. True when it was
    /// fresh until now (`why` is then logged once by the caller).
    pub fn ether_mark_stale(&self, why: &str) -> bool {
        let mut m = lock(&self.inner.ether);
        match m.as_mut() {
            Some(mark) if !mark.stale => {
                mark.stale = true;
                tracing::debug!(reason = why, "ether mark stale");
                true
            }
            Some(_) => false,
            // Never fresh: nothing to value gas at yet; said once.
            None => !self
                .inner
                .ether_never_fresh
                .swap(true, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The ether mark gas is valued at; `None` before an ether feed was first read.
    pub fn ether_mark(&self) -> Option<EtherMark> {
        *lock(&self.inner.ether)
    }
}

pub(super) fn value_positions(
    chain: &ChainState,
    pos: &std::collections::BTreeMap<(String, String), Signed>,
    ether_mark: Option<U256>,
) -> Vec<(String, String, Signed)> {
    // The books' quote unit, which the ether mark prices ether in (see `crate::books`).
    let quote_unit = chain
        .pool_infos()
        .first()
        .map(|(_, i)| hex_address(&i.token1));
    // (strategy, quote) -> (gains, losses)
    let mut acc: std::collections::BTreeMap<(String, String), (U512, U512)> =
        std::collections::BTreeMap::new();
    let mut pools: HashMap<String, Option<PoolInfo>> = HashMap::new();
    // Which pool prices which token: for a token that is token0 of a pool, the pool's token1
    // is the quote; a token1 is valued at par in itself.
    let mut token_pool: HashMap<String, (Address, PoolInfo)> = HashMap::new();
    for ((account, asset), _) in pos.iter() {
        if !account.starts_with("venue:") {
            continue;
        }
        if let Some(hexpool) = account.strip_prefix("venue:") {
            let info = *pools
                .entry(hexpool.to_owned())
                .or_insert_with(|| parse_address(hexpool).ok().and_then(|a| chain.pool(&a)));
            if let (Some(info), Ok(a)) = (info, parse_address(hexpool)) {
                token_pool.insert(hex_address(&info.token0), (a, info));
                let _ = asset;
            }
        }
    }
    for ((account, asset), bal) in pos.iter() {
        let Some(rest) = account.strip_prefix("strategy:") else {
            continue;
        };
        let strategy = rest.split(':').next().unwrap_or_default().to_owned();
        let (value, quote): (U512, String) = if let Some(lp) = asset.strip_prefix("lp:") {
            // lp:<pool>:<lower>:<upper>
            let parts: Vec<&str> = lp.split(':').collect();
            let parsed = (|| {
                let pool = parse_address(parts.first()?).ok()?;
                let lower: i32 = parts.get(1)?.parse().ok()?;
                let upper: i32 = parts.get(2)?.parse().ok()?;
                let liquidity: u128 = bal.magnitude.try_into().ok()?;
                let info = chain.pool(&pool)?;
                let o = chain
                    .simulate(
                        sim_address("stratbox.valuation"),
                        &TradeAction::RemoveLiquidity(proposal::Range {
                            pool,
                            tick_lower: lower,
                            tick_upper: upper,
                            liquidity,
                        }),
                        true,
                    )
                    .ok()
                    .filter(|o| o.success)?;
                Some((
                    token0_in_token1_wide(o.amount0, info.sqrt_price_x96) + U512::from(o.amount1),
                    hex_address(&info.token1),
                ))
            })();
            match parsed {
                Some(v) => v,
                None => continue,
            }
        } else if asset == ledger::ETHER
            && let (Some(mark), Some(quote)) = (ether_mark, &quote_unit)
        {
            // Gas: owed ether, valued as the books value it (rounded against the book).
            (
                crate::books::ether_value_wide(bal.magnitude, mark, bal.negative),
                quote.clone(),
            )
        } else if let Some((_, info)) = token_pool.get(asset) {
            (
                token0_in_token1_wide(bal.magnitude, info.sqrt_price_x96),
                hex_address(&info.token1),
            )
        } else {
            (U512::from(bal.magnitude), asset.clone())
        };
        let slot = acc.entry((strategy, quote)).or_default();
        if bal.negative {
            slot.1 += value;
        } else {
            slot.0 += value;
        }
    }
    acc.into_iter()
        .filter_map(|((s, q), (g, l))| Signed::from_totals(g, l).map(|v| (s, q, v)))
        .collect()
}

impl Engine {
    /// `strategy`'s book for `account` valued at the current chain state, with its peak and
    /// day-start equity; `None` if it never traded.
    pub fn book(&self, strategy: &str, account: &str) -> Option<(Valuation, U256, U256)> {
        let marks = self.marks(&self.chain());
        lock(&self.inner.risk).book(strategy, account, &marks)
    }

    /// Exact positions per (ledger account, asset); `account` empty = all.
    pub async fn positions(&self, account: &str) -> Result<Vec<v1::Position>, EngineError> {
        let lines = self
            .inner
            .store
            .lines((!account.is_empty()).then_some(account))
            .await?;
        let pos = ledger::positions(&lines).map_err(|e| EngineError::Ledger(e.to_string()))?;
        Ok(pos
            .into_iter()
            .map(|((account, asset), s)| v1::Position {
                account,
                asset,
                balance: Some(v1::SignedAmount {
                    magnitude: Some(s.magnitude.into()),
                    negative: s.negative,
                }),
            })
            .collect())
    }

    /// Shadow PnL per strategy, valued at each pool's current price in its token1: token0
    /// at the spot price, token1 at par, liquidity positions at what removing them would
    /// return now (simulated), the gas of live trades at the ether mark in the first pool's
    /// token1 (in ether, as its own row, without a mark). Returns (strategy, quote asset,
    /// PnL).
    pub async fn shadow_pnl(&self) -> Result<Vec<(String, String, Signed)>, EngineError> {
        let lines = self.inner.store.lines(None).await?;
        let pos = ledger::positions(&lines).map_err(|e| EngineError::Ledger(e.to_string()))?;
        let chain = self.chain();
        let ether = self.ether_mark().map(|m| m.price);
        tokio::task::spawn_blocking(move || Ok(value_positions(&chain, &pos, ether)))
            .await
            .map_err(|e| EngineError::Worker(e.to_string()))?
    }
}
