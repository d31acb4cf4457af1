//! Each account's balances as the engine's books hold them, kept on the host so that every
//! strategy call is given its own account's balances without asking the engine.
//!
//! [`follow`] keeps the engine's `WatchBalances` stream open: the first message is every
//! book, later ones the books a fill changed, each whole. A broken stream is reopened with
//! backoff, and its first message replaces everything known, so nothing missed while it
//! was down survives. Readers ([`BookBalances::of`]) take a read lock that is never held
//! across an await.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use stratbox_host::wit::TokenBalance;
use stratbox_proto::v1;
use tokio::sync::watch;

use crate::delivery::EngineLink;

#[derive(Debug, Default)]
struct Known {
    /// (strategy, account) -> balances, sorted by token.
    books: HashMap<(String, String), Vec<TokenBalance>>,
    /// What a book with no fills holds: shown to accounts the engine has no book for.
    starting: Vec<TokenBalance>,
    /// Whether a full view arrived since the host started.
    ready: bool,
    sequence: u64,
}

/// The books' balances as last heard from the engine; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct BookBalances {
    known: Arc<RwLock<Known>>,
    /// Turns true once the first full view arrived.
    ready: Arc<watch::Sender<bool>>,
}

impl Default for BookBalances {
    fn default() -> Self {
        BookBalances {
            known: Arc::default(),
            ready: Arc::new(watch::channel(false).0),
        }
    }
}

fn wit(balances: &[v1::TokenBalance]) -> Vec<TokenBalance> {
    balances
        .iter()
        .filter_map(|b| {
            Some(TokenBalance {
                token: b.token.as_ref()?.value.to_ascii_lowercase(),
                amount: b.amount.as_ref()?.value.clone(),
            })
        })
        .collect()
}

impl BookBalances {
    /// What an instance of `strategy` trading for `account` is shown: its book, or the
    /// starting capital if the engine has no book for it yet; nothing before the engine
    /// was first heard.
    pub fn of(&self, strategy: &str, account: &str) -> Vec<TokenBalance> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        known
            .books
            .get(&(strategy.to_owned(), account.to_owned()))
            .unwrap_or(&known.starting)
            .clone()
    }

    /// Applies one message of the engine's stream.
    pub fn apply(&self, update: &v1::BalancesUpdate) {
        {
            let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
            // A change older than the full view already applied says nothing new.
            if !update.full && known.ready && update.sequence <= known.sequence {
                return;
            }
            if update.full {
                known.books.clear();
                known.ready = true;
            }
            known.sequence = update.sequence;
            if update.full || !update.starting.is_empty() {
                known.starting = wit(&update.starting);
            }
            for b in &update.books {
                known
                    .books
                    .insert((b.strategy.clone(), b.account.clone()), wit(&b.balances));
            }
        }
        if update.full {
            self.ready.send_replace(true);
        }
    }

    /// Waits until the first full view arrived, at most `patience`; whether it did.
    pub async fn wait_ready(&self, patience: Duration) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::time::timeout(patience, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Follows the engine's balances until `stop`, reopening a broken stream with backoff
/// (100 ms doubling to 5 s, reset once a message arrives).
pub async fn follow(link: EngineLink, balances: BookBalances, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let opened = tokio::select! {
            r = link.watch_balances() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match opened {
            Ok(mut stream) => loop {
                let next = tokio::select! {
                    m = stream.message() => m,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match next {
                    Ok(Some(update)) => {
                        backoff = Duration::from_millis(100);
                        tracing::debug!(
                            full = update.full,
                            books = update.books.len(),
                            sequence = update.sequence,
                            "balances"
                        );
                        balances.apply(&update);
                    }
                    Ok(None) => {
                        tracing::info!("the engine closed the balance stream; reopening");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(code = ?e.code(), message = e.message(), "balance stream broke; reopening");
                        break;
                    }
                }
            },
            Err(e) => {
                tracing::warn!(code = ?e.code(), message = e.message(), retry_in_ms = backoff.as_millis() as u64, "cannot watch the engine's balances");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bal(token: &str, amount: &str) -> v1::TokenBalance {
        v1::TokenBalance {
            token: Some(v1::Address {
                value: token.into(),
            }),
            amount: Some(v1::Amount {
                value: amount.into(),
            }),
        }
    }

    fn book(strategy: &str, amount: &str) -> v1::BookBalances {
        v1::BookBalances {
            strategy: strategy.into(),
            account: "acct".into(),
            balances: vec![bal("0xAA", amount)],
        }
    }

    #[test]
    fn full_views_replace_changes_update_and_stale_changes_are_ignored() {
        let b = BookBalances::default();
        assert!(
            b.of("s", "acct").is_empty(),
            "nothing before the engine is heard"
        );
        b.apply(&v1::BalancesUpdate {
            full: true,
            books: vec![book("s", "5")],
            starting: vec![bal("0xbb", "100")],
            sequence: 3,
        });
        assert_eq!(b.of("s", "acct")[0].amount, "5");
        assert_eq!(b.of("s", "acct")[0].token, "0xaa");
        assert_eq!(b.of("t", "acct")[0].amount, "100", "no book: its capital");
        b.apply(&v1::BalancesUpdate {
            full: false,
            books: vec![book("t", "7")],
            starting: vec![bal("0xbb", "100")],
            sequence: 4,
        });
        assert_eq!(b.of("t", "acct")[0].amount, "7");
        b.apply(&v1::BalancesUpdate {
            full: false,
            books: vec![book("t", "1")],
            starting: Vec::new(),
            sequence: 4,
        });
        assert_eq!(b.of("t", "acct")[0].amount, "7", "a change already seen");
        b.apply(&v1::BalancesUpdate {
            full: true,
            books: vec![book("t", "9")],
            starting: vec![bal("0xbb", "100")],
            sequence: 2,
        });
        assert_eq!(b.of("t", "acct")[0].amount, "9");
        assert_eq!(
            b.of("s", "acct")[0].amount,
            "100",
            "gone from the full view"
        );
    }
}
