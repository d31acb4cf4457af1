//! The audit log: append-only and hash-chained. Each entry's hash is
//! `sha256(prev_hash || canonical(entry))`, the first entry's `prev_hash` is 32 zero bytes,
//! and `audit_head` holds the last sequence number and hash. Editing, deleting or reordering
//! any entry breaks the chain from that entry on; [`verify`] names the first one.
//!
//! A chain is tamper-evident, not tamper-proof: whoever can rewrite the whole table and its
//! head can forge a consistent chain. `stratbox signer audit verify` prints the head hash so
//! operators can record it somewhere the signer's database cannot reach.

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry to append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Who: `engine:<cert name>`, `approver:<name>`, `signer`.
    pub actor: String,
    /// What happened: `signed`, `sign_refused`, `approval_decided`, `policy_tightened`, …
    pub action: String,
    /// What it happened to: a task id, an approval id, a policy hash.
    pub subject: String,
    /// The rest, human-readable.
    pub detail: String,
    /// The trade's trace id, when there is one.
    pub trace_id: String,
}

impl Entry {
    /// An entry.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
        trace_id: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
            trace_id: trace_id.into(),
        }
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// 1, 2, 3, … without gaps.
    pub seq: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The entry.
    pub entry: Entry,
    /// The previous entry's hash (hex).
    pub prev_hash: String,
    /// This entry's hash (hex).
    pub hash: String,
}

/// The fixed encoding hashed for an entry: every field length-prefixed, so no two
/// different entries encode alike.
pub fn canonical(seq: i64, at_ms: i64, e: &Entry) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at_ms.to_be_bytes());
    for field in [&e.actor, &e.action, &e.subject, &e.detail, &e.trace_id] {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// `sha256(prev_hash || canonical)`, hex; `prev_hash` is hex (decoded; a malformed one is
/// hashed as its text, which can never match a well-formed chain).
pub fn link(prev_hash: &str, seq: i64, at_ms: i64, e: &Entry) -> String {
    let mut h = Sha256::new();
    match hex::decode(prev_hash) {
        Ok(bytes) if bytes.len() == 32 => h.update(&bytes),
        _ => h.update(prev_hash.as_bytes()),
    }
    h.update(canonical(seq, at_ms, e));
    hex::encode(h.finalize())
}

/// Appends `e` inside `tx`. The head row is updated first, which serialises appends (a row
/// lock on PostgreSQL; SQLite has one writer).
pub async fn append(
    tx: &mut Transaction<'static, Any>,
    at_ms: i64,
    e: &Entry,
) -> Result<i64, sqlx::Error> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **tx)
        .await?;
    let seq: i64 = head.try_get(0)?;
    let prev: String = head.try_get(1)?;
    let hash = link(&prev, seq, at_ms, e);
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, actor, action, subject, detail, trace_id, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(at_ms)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.subject)
    .bind(&e.detail)
    .bind(&e.trace_id)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
    Ok(seq)
}

fn stored(row: &AnyRow) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        entry: Entry {
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            subject: row.try_get("subject")?,
            detail: row.try_get("detail")?,
            trace_id: row.try_get("trace_id")?,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Every entry in sequence order.
pub async fn entries(pool: &AnyPool) -> Result<Vec<Stored>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, at_ms, actor, action, subject, detail, trace_id, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(stored).collect()
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The chain holds: `entries` entries, ending in `head`.
    Intact {
        /// How many.
        entries: i64,
        /// The last hash.
        head: String,
    },
    /// The first entry that does not fit, and how.
    Broken {
        /// Its sequence number (for a missing entry: the one expected there).
        seq: i64,
        /// What is wrong.
        why: String,
    },
}

/// Walks the chain from the first entry.
pub fn check(entries: &[Stored], head: Option<(i64, String)>) -> Verdict {
    let mut prev = GENESIS.to_owned();
    let mut expected = 1;
    for s in entries {
        if s.seq != expected {
            return Verdict::Broken {
                seq: expected,
                why: if s.seq > expected {
                    format!("entry {expected} is missing (next is {})", s.seq)
                } else {
                    format!("entry {} is out of order", s.seq)
                },
            };
        }
        if s.prev_hash != prev {
            return Verdict::Broken {
                seq: s.seq,
                why: format!(
                    "entry {} does not follow entry {} (prev_hash differs)",
                    s.seq,
                    s.seq - 1
                ),
            };
        }
        let want = link(&prev, s.seq, s.at_ms, &s.entry);
        if s.hash != want {
            return Verdict::Broken {
                seq: s.seq,
                why: format!(
                    "entry {} was altered (its hash does not match its content)",
                    s.seq
                ),
            };
        }
        prev = s.hash.clone();
        expected += 1;
    }
    let count = expected - 1;
    if let Some((head_seq, head_hash)) = head
        && (head_seq != count || head_hash != prev)
    {
        return Verdict::Broken {
            seq: count + 1,
            why: format!(
                "the head says {head_seq} entries ending in {head_hash}, the log has {count} ending in {prev}: entries after {count} were deleted"
            ),
        };
    }
    Verdict::Intact {
        entries: count,
        head: prev,
    }
}

/// Reads the log and its head and checks the chain.
pub async fn verify(pool: &AnyPool) -> Result<Verdict, sqlx::Error> {
    let all = entries(pool).await?;
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(pool)
        .await?
        .map(|r| -> Result<(i64, String), sqlx::Error> { Ok((r.try_get(0)?, r.try_get(1)?)) })
        .transpose()?;
    Ok(check(&all, head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Stored> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let entry = Entry::new("signer", "x", format!("s{seq}"), "d", "");
                let hash = link(&prev, seq, 1000 + seq, &entry);
                let s = Stored {
                    seq,
                    at_ms: 1000 + seq,
                    entry,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                s
            })
            .collect()
    }

    #[test]
    fn intact_and_each_kind_of_break() {
        let c = chain(5);
        let head = Some((5, c[4].hash.clone()));
        assert!(matches!(
            check(&c, head.clone()),
            Verdict::Intact { entries: 5, .. }
        ));

        let mut edited = c.clone();
        edited[2].entry.detail = "other".into();
        assert_eq!(
            check(&edited, head.clone()),
            Verdict::Broken {
                seq: 3,
                why: "entry 3 was altered (its hash does not match its content)".into()
            }
        );

        let mut deleted = c.clone();
        deleted.remove(1);
        assert!(matches!(
            check(&deleted, head.clone()),
            Verdict::Broken { seq: 2, .. }
        ));

        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            check(&swapped, head.clone()),
            Verdict::Broken { seq: 2, .. }
        ));

        let tail = c[..4].to_vec();
        assert!(matches!(check(&tail, head), Verdict::Broken { seq: 5, .. }));
    }
}
