//! Double-entry ledger: postings, positions, and the balance check.
//!
//! A posting is a set of entries that balances per asset (debits equal credits for every
//! asset it touches); [`Posting::new`] refuses one that does not, so an unbalanced posting
//! can never reach storage. Entries are append-only (a trigger in both schemas refuses
//! UPDATE and DELETE); a correction is a [`Posting::reversal`] of an earlier posting.
//!
//! Sign convention: an account's balance in an asset is its debits minus its credits, so a
//! strategy account's balance is what it holds.

use std::collections::BTreeMap;
use std::fmt;

use ruint::aliases::U512;
use stratbox_proto::U256;

use crate::proposal::{Address, hex_address};

/// Which column of the double-entry ledger an entry is in; a balance is debits - credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Adds to the account's balance of the asset.
    Debit,
    /// Subtracts from it.
    Credit,
}

impl Side {
    /// `debit` or `credit`, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }

    /// The inverse of [`Side::as_str`]; `None` for anything else (a corrupt row).
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "debit" => Some(Side::Debit),
            "credit" => Some(Side::Credit),
            _ => None,
        }
    }

    /// The other side, as a reversal books each entry.
    pub const fn opposite(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

/// One line of a posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Ledger account, e.g. [`strategy_account`] or [`venue_account`].
    pub account: String,
    /// Token address or [`lp_asset`].
    pub asset: String,
    /// Debit or credit.
    pub side: Side,
    /// Raw units; the side gives the direction.
    pub amount: U256,
}

/// A balanced set of entries written atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Unique id of the posting.
    pub posting_id: String,
    /// The task that booked it.
    pub task_id: String,
    /// Why it was booked.
    pub memo: String,
    /// The posting this one reverses; empty when it reverses nothing.
    pub reverses_posting_id: String,
    entries: Vec<Entry>,
}

/// A posting whose debits and credits differ for some asset (or overflow).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("posting does not balance in {asset}: debits {debits}, credits {credits}")]
pub struct Unbalanced {
    /// The asset that does not balance.
    pub asset: String,
    /// Its debits, base 10 (or a note of the overflow).
    pub debits: String,
    /// Its credits, base 10.
    pub credits: String,
}

/// Sums are taken in 512 bits: any number of 256-bit amounts below 2^256 of them cannot
/// overflow, so a ledger full of huge (dust-opposite) amounts still checks exactly.
fn wide(v: U256) -> U512 {
    U512::from(v)
}

/// Per-asset (debits, credits) of a set of entries; `None` only if 512 bits overflow.
fn totals<'a>(
    entries: impl Iterator<Item = (&'a str, Side, U256)>,
) -> Option<BTreeMap<&'a str, (U512, U512)>> {
    let mut t: BTreeMap<&str, (U512, U512)> = BTreeMap::new();
    for (asset, side, amount) in entries {
        let slot = t.entry(asset).or_default();
        match side {
            Side::Debit => slot.0 = slot.0.checked_add(wide(amount))?,
            Side::Credit => slot.1 = slot.1.checked_add(wide(amount))?,
        }
    }
    Some(t)
}

impl Posting {
    /// A posting of `entries`; refused unless debits equal credits for every asset. The
    /// error names the first unbalanced asset in name order, or `?` if the sums overflow.
    pub fn new(
        posting_id: String,
        task_id: String,
        memo: String,
        entries: Vec<Entry>,
    ) -> Result<Posting, Unbalanced> {
        let sums = totals(entries.iter().map(|e| (e.asset.as_str(), e.side, e.amount)))
            .ok_or_else(|| Unbalanced {
                asset: "?".into(),
                debits: "overflow".into(),
                credits: "overflow".into(),
            })?;
        for (asset, (d, c)) in sums {
            if d != c {
                return Err(Unbalanced {
                    asset: asset.to_owned(),
                    debits: d.to_string(),
                    credits: c.to_string(),
                });
            }
        }
        Ok(Posting {
            posting_id,
            task_id,
            memo,
            reverses_posting_id: String::new(),
            entries,
        })
    }

    /// The correction of `self`: every entry with its side flipped.
    pub fn reversal(&self, posting_id: String, memo: String) -> Posting {
        Posting {
            posting_id,
            task_id: self.task_id.clone(),
            memo,
            reverses_posting_id: self.posting_id.clone(),
            entries: self
                .entries
                .iter()
                .map(|e| Entry {
                    side: e.side.opposite(),
                    ..e.clone()
                })
                .collect(),
        }
    }

    /// This posting with `wei` of gas paid by `strategy_acct` to the network (see
    /// [`network_account`]) added; it still balances (one debit, one credit).
    pub fn with_strategy_gas(mut self, strategy_acct: &str, account: &str, wei: U256) -> Posting {
        if !wei.is_zero() {
            for (acct, side) in [
                (network_account(account), Side::Debit),
                (strategy_acct.to_owned(), Side::Credit),
            ] {
                self.entries.push(Entry {
                    account: acct,
                    asset: ETHER.to_owned(),
                    side,
                    amount: wei,
                });
            }
        }
        self
    }

    /// The entries, which balance per asset (checked at construction).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// The strategy's book for one account: PnL is per strategy, so each strategy trading
/// for an account has its own ledger account.
pub fn strategy_account(strategy: &str, account: &str) -> String {
    format!("strategy:{strategy}:{account}")
}

/// The counterparty of every shadow fill on a pool.
pub fn venue_account(pool: &Address) -> String {
    format!("venue:{}", hex_address(pool))
}

/// A liquidity position is an asset of its own: units of liquidity in one range of a pool.
pub fn lp_asset(pool: &Address, tick_lower: i32, tick_upper: i32) -> String {
    format!("lp:{}:{tick_lower}:{tick_upper}", hex_address(pool))
}

/// One leg of a fill seen from the strategy: it gives or receives `amount` of `asset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// Token address or [`lp_asset`].
    pub asset: String,
    /// Raw units.
    pub amount: U256,
    /// True when the strategy receives the asset.
    pub to_strategy: bool,
}

/// The posting for a fill between a strategy and a venue: each leg is one debit and one
/// credit of the same amount, so it balances by construction. Zero legs are left out.
pub fn fill_posting(
    posting_id: String,
    task_id: String,
    memo: String,
    strategy_acct: &str,
    venue_acct: &str,
    legs: &[Leg],
) -> Result<Posting, Unbalanced> {
    let mut entries = Vec::with_capacity(legs.len() * 2);
    for leg in legs.iter().filter(|l| !l.amount.is_zero()) {
        let (to, from) = if leg.to_strategy {
            (strategy_acct, venue_acct)
        } else {
            (venue_acct, strategy_acct)
        };
        entries.push(Entry {
            account: to.to_owned(),
            asset: leg.asset.clone(),
            side: Side::Debit,
            amount: leg.amount,
        });
        entries.push(Entry {
            account: from.to_owned(),
            asset: leg.asset.clone(),
            side: Side::Credit,
            amount: leg.amount,
        });
    }
    Posting::new(posting_id, task_id, memo, entries)
}

/// An exact signed amount (a balance can be negative: a venue pays out, a strategy
/// spends what the shadow book never held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signed {
    /// Absolute value.
    pub magnitude: U256,
    /// True below zero; never true with a zero magnitude from [`Signed::from_totals`].
    pub negative: bool,
}

impl Signed {
    /// `debits - credits`, exactly; `None` when the magnitude does not fit 256 bits.
    pub fn from_totals(debits: U512, credits: U512) -> Option<Signed> {
        let (m, negative) = if debits >= credits {
            (debits - credits, false)
        } else {
            (credits - debits, true)
        };
        let magnitude = <U256 as ruint::UintTryFrom<U512>>::uint_try_from(m).ok()?;
        Some(Signed {
            magnitude,
            negative,
        })
    }

    /// True for zero, whatever the sign flag.
    pub fn is_zero(&self) -> bool {
        self.magnitude.is_zero()
    }
}

impl fmt::Display for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative && !self.is_zero() {
            write!(f, "-{}", self.magnitude)
        } else {
            write!(f, "{}", self.magnitude)
        }
    }
}

/// The asset name of the chain's native coin in the ledger (token assets are addresses).
pub const ETHER: &str = "ether";

/// What the signing account holds on chain, as the live path books it: its opening
/// balances, then every token its receipts moved and every wei of gas it paid. Reconciled
/// against the chain ([`crate::reconcile`]).
pub fn wallet_account(account: &str) -> String {
    format!("wallet:{account}")
}

/// Where the wallet's opening balances (and adopted differences) come from: the equity
/// the account started with.
pub fn opening_account(account: &str) -> String {
    format!("opening:{account}")
}

/// The wallet's counterparty for tokens its transactions moved (pools, the executor).
pub fn markets_account(account: &str) -> String {
    format!("markets:{account}")
}

/// Gas the account paid, in wei: an expense.
pub fn gas_account(account: &str) -> String {
    format!("gas:{account}")
}

/// Where a strategy's book pays the gas of its live trades: the strategy-side counterpart
/// of [`gas_account`] (the wallet's view). Kept apart from it so each view balances alone.
pub fn network_account(account: &str) -> String {
    format!("network:{account}")
}

/// The id of `account`'s opening posting: one per account.
pub fn opening_posting_id(account: &str) -> String {
    format!("opening:{account}")
}

/// Moves each `(asset, amount)` into `into` out of `out_of` (the other way when the amount
/// is negative); zero amounts are left out. Balances by construction: every entry has its
/// opposite of the same amount.
fn transfer(
    posting_id: String,
    task_id: String,
    memo: String,
    into: &str,
    out_of: &str,
    amounts: &[(String, Signed)],
) -> Posting {
    let mut entries = Vec::with_capacity(amounts.len() * 2);
    for (asset, amount) in amounts.iter().filter(|(_, a)| !a.is_zero()) {
        let (debit, credit) = if amount.negative {
            (out_of, into)
        } else {
            (into, out_of)
        };
        for (account, side) in [(debit, Side::Debit), (credit, Side::Credit)] {
            entries.push(Entry {
                account: account.to_owned(),
                asset: asset.clone(),
                side,
                amount: amount.magnitude,
            });
        }
    }
    Posting {
        posting_id,
        task_id,
        memo,
        reverses_posting_id: String::new(),
        entries,
    }
}

/// The wallet's balances when the live path first trades from it, read from the chain at
/// `block`: the baseline every later receipt is booked on.
pub fn opening_posting(account: &str, block: u64, balances: &[(String, U256)]) -> Posting {
    let amounts: Vec<(String, Signed)> = balances
        .iter()
        .map(|(asset, v)| {
            (
                asset.clone(),
                Signed {
                    magnitude: *v,
                    negative: false,
                },
            )
        })
        .collect();
    transfer(
        opening_posting_id(account),
        String::new(),
        format!("opening balances at block {block}"),
        &wallet_account(account),
        &opening_account(account),
        &amounts,
    )
}

/// A receipt's token moves for the wallet (positive: received), from its Transfer logs.
pub fn wallet_posting(task_id: &str, account: &str, moves: &[(String, Signed)]) -> Posting {
    transfer(
        format!("{task_id}:wallet"),
        task_id.to_owned(),
        "tokens moved by the receipt".into(),
        &wallet_account(account),
        &markets_account(account),
        moves,
    )
}

/// The gas a receipt paid (`gas_used * effective_gas_price`, wei), reverted or not.
pub fn gas_posting(task_id: &str, account: &str, wei: U256) -> Posting {
    transfer(
        format!("{task_id}:gas"),
        task_id.to_owned(),
        "gas paid".into(),
        &gas_account(account),
        &wallet_account(account),
        &[(
            ETHER.to_owned(),
            Signed {
                magnitude: wei,
                negative: false,
            },
        )],
    )
}

/// Differences an operator traced (a deposit, a withdrawal) booked into the wallet against
/// its opening, so the ledger agrees with the chain again.
pub fn adjustment_posting(
    posting_id: String,
    account: &str,
    memo: String,
    differences: &[(String, Signed)],
) -> Posting {
    transfer(
        posting_id,
        String::new(),
        memo,
        &wallet_account(account),
        &opening_account(account),
        differences,
    )
}

/// A ledger line read back for checking.
#[derive(Debug, Clone)]
pub struct StoredLine {
    /// Its posting.
    pub posting_id: String,
    /// Ledger account.
    pub account: String,
    /// Asset.
    pub asset: String,
    /// Debit or credit.
    pub side: Side,
    /// Raw units.
    pub amount: U256,
}

/// What [`check_balanced`] found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerImbalance {
    /// A stored posting is unbalanced, which construction forbids: the table was edited.
    #[error("posting {posting_id} does not balance in {asset}")]
    Posting {
        /// The posting.
        posting_id: String,
        /// The asset it does not balance in.
        asset: String,
    },
    /// The ledger as a whole does not balance in an asset.
    #[error("the ledger does not balance in {asset}")]
    Total {
        /// The asset.
        asset: String,
    },
    /// A balance does not fit 256 bits.
    #[error("ledger sum overflowed 256 bits")]
    Overflow,
}

/// Every posting balances per asset, hence so does the whole ledger (checked too, in case
/// a posting id was reused).
pub fn check_balanced(lines: &[StoredLine]) -> Result<(), LedgerImbalance> {
    let mut per_posting: BTreeMap<(&str, &str), (U512, U512)> = BTreeMap::new();
    for l in lines {
        let slot = per_posting
            .entry((l.posting_id.as_str(), l.asset.as_str()))
            .or_default();
        match l.side {
            Side::Debit => {
                slot.0 = slot
                    .0
                    .checked_add(wide(l.amount))
                    .ok_or(LedgerImbalance::Overflow)?
            }
            Side::Credit => {
                slot.1 = slot
                    .1
                    .checked_add(wide(l.amount))
                    .ok_or(LedgerImbalance::Overflow)?
            }
        }
    }
    for ((posting_id, asset), (d, c)) in &per_posting {
        if d != c {
            return Err(LedgerImbalance::Posting {
                posting_id: (*posting_id).to_owned(),
                asset: (*asset).to_owned(),
            });
        }
    }
    let total = totals(lines.iter().map(|l| (l.asset.as_str(), l.side, l.amount)))
        .ok_or(LedgerImbalance::Overflow)?;
    for (asset, (d, c)) in total {
        if d != c {
            return Err(LedgerImbalance::Total {
                asset: asset.to_owned(),
            });
        }
    }
    Ok(())
}

/// Positions per (account, asset): debits minus credits, exactly.
pub fn positions(
    lines: &[StoredLine],
) -> Result<BTreeMap<(String, String), Signed>, LedgerImbalance> {
    let mut t: BTreeMap<(String, String), (U512, U512)> = BTreeMap::new();
    for l in lines {
        let slot = t.entry((l.account.clone(), l.asset.clone())).or_default();
        match l.side {
            Side::Debit => {
                slot.0 = slot
                    .0
                    .checked_add(wide(l.amount))
                    .ok_or(LedgerImbalance::Overflow)?
            }
            Side::Credit => {
                slot.1 = slot
                    .1
                    .checked_add(wide(l.amount))
                    .ok_or(LedgerImbalance::Overflow)?
            }
        }
    }
    t.into_iter()
        .map(|(k, (d, c))| {
            Signed::from_totals(d, c)
                .map(|s| (k, s))
                .ok_or(LedgerImbalance::Overflow)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: u64) -> U256 {
        U256::from(v)
    }

    #[test]
    fn unbalanced_postings_are_refused() {
        let e = |account: &str, side, amount| Entry {
            account: account.into(),
            asset: "T".into(),
            side,
            amount: u(amount),
        };
        assert!(
            Posting::new(
                "p".into(),
                "t".into(),
                "".into(),
                vec![e("a", Side::Debit, 5), e("b", Side::Credit, 4)]
            )
            .is_err()
        );
        assert!(
            Posting::new(
                "p".into(),
                "t".into(),
                "".into(),
                vec![e("a", Side::Debit, 5), e("b", Side::Credit, 5)]
            )
            .is_ok()
        );
        let max = Entry {
            amount: U256::MAX,
            ..e("a", Side::Debit, 0)
        };
        assert!(
            Posting::new("p".into(), "t".into(), "".into(), vec![max.clone(), max]).is_err(),
            "overflow must not wrap"
        );
    }

    #[test]
    fn fills_and_reversals_balance_and_net_to_zero() {
        let legs = [
            Leg {
                asset: "T0".into(),
                amount: u(1000),
                to_strategy: false,
            },
            Leg {
                asset: "T1".into(),
                amount: U256::MAX,
                to_strategy: true,
            },
        ];
        let p = fill_posting("p1".into(), "t".into(), "swap".into(), "s", "v", &legs).unwrap();
        let r = p.reversal("p2".into(), "fix".into());
        let lines = lines_of(&[p, r]);
        assert_eq!(check_balanced(&lines), Ok(()));
        let pos = positions(&lines[..4]).unwrap();
        assert_eq!(
            pos[&("s".into(), "T0".into())],
            Signed {
                magnitude: u(1000),
                negative: true
            }
        );
        assert_eq!(
            pos[&("s".into(), "T1".into())],
            Signed {
                magnitude: U256::MAX,
                negative: false
            }
        );
        // A posting and its reversal net every position to zero, even at 2^256-1.
        assert!(positions(&lines).unwrap().values().all(Signed::is_zero));
    }

    fn lines_of(postings: &[Posting]) -> Vec<StoredLine> {
        postings
            .iter()
            .flat_map(|p| {
                p.entries().iter().map(|e| StoredLine {
                    posting_id: p.posting_id.clone(),
                    account: e.account.clone(),
                    asset: e.asset.clone(),
                    side: e.side,
                    amount: e.amount,
                })
            })
            .collect()
    }

    #[test]
    fn the_wallet_follows_opening_moves_gas_and_adjustments() {
        let s = |v: u64, negative| Signed {
            magnitude: u(v),
            negative,
        };
        let postings = [
            opening_posting("0xa", 7, &[(ETHER.into(), u(1000)), ("0xt".into(), u(0))]),
            wallet_posting(
                "t1",
                "0xa",
                &[("0xt".into(), s(40, false)), (ETHER.into(), s(0, true))],
            ),
            gas_posting("t1", "0xa", u(21)),
            wallet_posting("t2", "0xa", &[("0xt".into(), s(15, true))]),
            adjustment_posting(
                "adj".into(),
                "0xa",
                "deposit".into(),
                &[(ETHER.into(), s(5, false))],
            ),
        ];
        let lines = lines_of(&postings);
        assert_eq!(check_balanced(&lines), Ok(()));
        let pos = positions(&lines).unwrap();
        assert_eq!(pos[&(wallet_account("0xa"), ETHER.into())], s(984, false));
        assert_eq!(pos[&(wallet_account("0xa"), "0xt".into())], s(25, false));
        assert_eq!(pos[&(gas_account("0xa"), ETHER.into())], s(21, false));
        assert!(
            postings[0].entries().len() == 2,
            "a zero opening balance books nothing"
        );
        assert_eq!(s(3, true).to_string(), "-3");
        assert_eq!(s(0, true).to_string(), "0");
    }
}
