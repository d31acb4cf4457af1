-- The signer's own store (Zone C). Never the engine's database.

-- One row per engine task: the answer it got, so a re-send gets the same answer.
CREATE TABLE sign_requests (
    task_id        TEXT PRIMARY KEY,
    request_hash   TEXT NOT NULL,
    account        TEXT NOT NULL,
    chain_id       INTEGER NOT NULL,
    nonce          INTEGER NOT NULL,
    signing_hash   TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    reason_code    TEXT NOT NULL DEFAULT '',
    detail         TEXT NOT NULL DEFAULT '',
    approval_id    TEXT NOT NULL DEFAULT '',
    approvals_required INTEGER NOT NULL DEFAULT 0,
    raw_tx         TEXT NOT NULL DEFAULT '',
    tx_hash        TEXT NOT NULL DEFAULT '',
    trace_id       TEXT NOT NULL DEFAULT '',
    request        TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);

-- Slashing protection: every transaction signed (or reserved for signing) per chain and account.
CREATE TABLE signed_nonces (
    chain_id       INTEGER NOT NULL,
    account        TEXT NOT NULL,
    nonce          INTEGER NOT NULL,
    signing_hash   TEXT NOT NULL,
    to_address     TEXT NOT NULL,
    value          TEXT NOT NULL,
    input_hash     TEXT NOT NULL,
    gas_limit      INTEGER NOT NULL,
    max_fee_per_gas TEXT NOT NULL,
    max_priority_fee_per_gas TEXT NOT NULL,
    kind           TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    raw_tx         TEXT NOT NULL DEFAULT '',
    tx_hash        TEXT NOT NULL DEFAULT '',
    signed_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (chain_id, account, nonce, signing_hash)
);

-- One row per (chain, account): taken first in every signing transaction, so two signings
-- for one account never interleave.
CREATE TABLE account_locks (
    chain_id  INTEGER NOT NULL,
    account   TEXT NOT NULL,
    n         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chain_id, account)
);

-- What each signed transaction may move out of the account, for the rolling 24-hour caps.
CREATE TABLE spend (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id  INTEGER NOT NULL,
    account   TEXT NOT NULL,
    token     TEXT NOT NULL,
    amount    TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    task_id   TEXT NOT NULL
);
CREATE INDEX spend_window ON spend (account, token, at_ms);

CREATE TABLE approvals (
    approval_id    TEXT PRIMARY KEY,
    task_id        TEXT NOT NULL UNIQUE,
    fields_hash    TEXT NOT NULL,
    account        TEXT NOT NULL,
    state          TEXT NOT NULL,
    required       INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    view           TEXT NOT NULL,
    trace_id       TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    decided_at_ms  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX approvals_state ON approvals (state, created_at_ms);

CREATE TABLE approval_votes (
    approval_id  TEXT NOT NULL,
    approver     TEXT NOT NULL,
    decision     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    at_ms        INTEGER NOT NULL,
    PRIMARY KEY (approval_id, approver)
);

-- The active policy and the one loosening change waiting for its timelock.
CREATE TABLE policy_state (
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    active_toml           TEXT NOT NULL,
    active_hash           TEXT NOT NULL,
    active_since_ms       INTEGER NOT NULL,
    pending_toml          TEXT NOT NULL DEFAULT '',
    pending_hash          TEXT NOT NULL DEFAULT '',
    pending_effective_ms  INTEGER NOT NULL DEFAULT 0,
    pending_changes       TEXT NOT NULL DEFAULT ''
);

-- Append-only, hash-chained: hash = sha256(prev_hash || canonical row).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    trace_id   TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

-- The chain's head, so a deleted tail is noticed too.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
