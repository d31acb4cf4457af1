//! The books' token balances as a stream (`WatchBalances`): hosts keep a copy and show each
//! strategy instance its own account on every call, without asking the engine per call.
//!
//! Every change is published under the lock of the books it describes, and a watcher takes
//! its first, full view and subscribes under that same lock: so it misses no change made
//! after its view and sees none that its view already holds. A change carries each changed
//! book whole (not a delta), so applying one twice, or after a later full view, is harmless.
//! A watcher that falls more than [`CHANNEL`] changes behind is sent a full view again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use stratbox_proto::{U256, v1};
use tokio::sync::broadcast;

use crate::chain::ChainState;
use crate::gates::RiskBook;
use crate::proposal::hex_address;

/// Changes kept for a watcher that is behind.
pub const CHANNEL: usize = 1024;

/// One change or full view, shared by every watcher.
pub type Update = Arc<v1::BalancesUpdate>;

/// Where the books publish their changes.
pub struct BalanceFeed {
    tx: broadcast::Sender<Update>,
    sequence: AtomicU64,
}

impl Default for BalanceFeed {
    fn default() -> Self {
        BalanceFeed {
            tx: broadcast::channel(CHANNEL).0,
            sequence: AtomicU64::new(0),
        }
    }
}

/// The quote tokens (each pool's token1): the unit a book's capital is counted in. With
/// several pools of different quote tokens the capital shows in each, the same
/// simplification as the books' valuation (see [`crate::books`]).
pub fn quote_tokens(chain: &ChainState) -> BTreeSet<String> {
    chain
        .pool_infos()
        .iter()
        .map(|(_, info)| hex_address(&info.token1))
        .collect()
}

fn wire(balances: &BTreeMap<String, U256>) -> Vec<v1::TokenBalance> {
    balances
        .iter()
        .map(|(token, amount)| v1::TokenBalance {
            token: Some(v1::Address {
                value: token.clone(),
            }),
            amount: Some((*amount).into()),
        })
        .collect()
}

fn book(strategy: &str, account: &str, balances: &BTreeMap<String, U256>) -> v1::BookBalances {
    v1::BookBalances {
        strategy: strategy.to_owned(),
        account: account.to_owned(),
        balances: wire(balances),
    }
}

impl BalanceFeed {
    /// Publishes the balances of books that changed; call with the books' lock held (see
    /// the module docs). Does nothing when nobody watches.
    pub fn publish<'a>(
        &self,
        risk: &RiskBook,
        quote: &BTreeSet<String>,
        changed: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let mut seen = BTreeSet::new();
        let books: Vec<v1::BookBalances> = changed
            .into_iter()
            .filter(|k| seen.insert(*k))
            .map(|(s, a)| book(s, a, &risk.token_balances_of(s, a, quote)))
            .collect();
        if books.is_empty() {
            return;
        }
        let update = v1::BalancesUpdate {
            full: false,
            books,
            starting: starting(risk, quote),
            sequence: self.sequence.fetch_add(1, Ordering::AcqRel) + 1,
        };
        // No receiver left between the check and here is not an error.
        let _ = self.tx.send(Arc::new(update));
    }

    /// Every book now, and the changes after it; call with the books' lock held.
    pub fn watch(
        &self,
        risk: &RiskBook,
        quote: &BTreeSet<String>,
    ) -> (v1::BalancesUpdate, broadcast::Receiver<Update>) {
        let mut books: Vec<v1::BookBalances> = risk
            .token_balances(quote)
            .iter()
            .map(|(s, a, b)| book(s, a, b))
            .collect();
        books.sort_by(|x, y| (&x.strategy, &x.account).cmp(&(&y.strategy, &y.account)));
        let full = v1::BalancesUpdate {
            full: true,
            books,
            starting: starting(risk, quote),
            sequence: self.sequence.load(Ordering::Acquire),
        };
        (full, self.tx.subscribe())
    }
}

/// What a book with no fills holds.
fn starting(risk: &RiskBook, quote: &BTreeSet<String>) -> Vec<v1::TokenBalance> {
    wire(&quote.iter().map(|t| (t.clone(), risk.capital())).collect())
}
