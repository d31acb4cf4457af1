-- Reconciliation (engine/src/reconcile.rs): the signing account's wallet in the ledger
-- against the chain.

-- The block each account's opening balances were booked at: at most one opening per
-- account, whichever engine books it first.
CREATE TABLE wallet_openings (
    account       TEXT   NOT NULL PRIMARY KEY,
    block         BIGINT NOT NULL,
    opened_at_ms  BIGINT NOT NULL
);

-- Every difference found, kept after it is adopted or explained (amounts base-10 TEXT,
-- signed: '-5' when the chain holds 5 less than was booked).
CREATE TABLE reconciliation_findings (
    finding_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    account      TEXT   NOT NULL,
    block        BIGINT NOT NULL,
    asset        TEXT   NOT NULL,
    ledger       TEXT   NOT NULL,
    chain        TEXT   NOT NULL,
    difference   TEXT   NOT NULL,
    found_at_ms  BIGINT NOT NULL
);
CREATE INDEX reconciliation_findings_account ON reconciliation_findings (account, finding_id);
