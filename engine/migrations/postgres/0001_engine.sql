-- stratbox engine schema (PostgreSQL). Amounts are the wire form (base-10 TEXT of a U256):
-- exact, and identical to what SQLite stores, so one code path reads both.

CREATE TABLE strategies (
    name        TEXT   NOT NULL,
    version     TEXT   NOT NULL,
    sha256      TEXT   NOT NULL,
    world       TEXT   NOT NULL,
    uploader    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE trade_tasks (
    task_id          TEXT    PRIMARY KEY,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    state            TEXT    NOT NULL,
    reason_code      TEXT    NOT NULL,
    detail           TEXT    NOT NULL,
    mode             TEXT    NOT NULL,
    strategy         TEXT    NOT NULL,
    account          TEXT    NOT NULL,
    proposal         BYTEA   NOT NULL,
    trace_id         TEXT    NOT NULL,
    sim_amount0      TEXT    NOT NULL,
    sim_amount1      TEXT    NOT NULL,
    sim_gas_used     BIGINT  NOT NULL,
    created_at_ms    BIGINT  NOT NULL,
    updated_at_ms    BIGINT  NOT NULL
);
CREATE INDEX trade_tasks_state ON trade_tasks (state, task_id);
CREATE INDEX trade_tasks_strategy ON trade_tasks (strategy, task_id);

CREATE TABLE ledger_accounts (
    account        TEXT   PRIMARY KEY,
    kind           TEXT   NOT NULL,
    created_at_ms  BIGINT NOT NULL
);

CREATE TABLE ledger_entries (
    entry_id             BIGSERIAL PRIMARY KEY,
    posting_id           TEXT   NOT NULL,
    task_id              TEXT   NOT NULL,
    account              TEXT   NOT NULL REFERENCES ledger_accounts (account),
    asset                TEXT   NOT NULL,
    side                 TEXT   NOT NULL CHECK (side IN ('debit', 'credit')),
    amount               TEXT   NOT NULL CHECK (amount ~ '^(0|[1-9][0-9]{0,77})$'),
    memo                 TEXT   NOT NULL,
    created_at_ms        BIGINT NOT NULL,
    reverses_posting_id  TEXT   NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account, entry_id);
CREATE INDEX ledger_entries_task ON ledger_entries (task_id, entry_id);
CREATE INDEX ledger_entries_posting ON ledger_entries (posting_id);

-- The ledger is append-only: a mistake is corrected by a reversal posting, never by editing
-- history, so the trigger refuses UPDATE and DELETE whoever asks.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

CREATE TABLE audit_log (
    audit_id       BIGSERIAL PRIMARY KEY,
    at_ms          BIGINT NOT NULL,
    actor          TEXT   NOT NULL,
    action         TEXT   NOT NULL,
    subject        TEXT   NOT NULL,
    from_state     TEXT   NOT NULL,
    to_state       TEXT   NOT NULL,
    detail         TEXT   NOT NULL,
    trace_id       TEXT   NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject, audit_id);

-- Persisted kill switch, so a restart does not silently re-arm trading.
CREATE TABLE engine_flags (
    name           TEXT   PRIMARY KEY,
    engaged        BIGINT NOT NULL,
    reason         TEXT   NOT NULL,
    operator       TEXT   NOT NULL,
    changed_at_ms  BIGINT NOT NULL
);

-- Schema only: used by the signing path in a later issue.
CREATE TABLE nonce_locks (
    account        TEXT   NOT NULL,
    chain_id       BIGINT NOT NULL,
    nonce          BIGINT NOT NULL,
    task_id        TEXT   NOT NULL,
    locked_at_ms   BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (account, chain_id, nonce)
);

CREATE TABLE approvals (
    approval_id    TEXT   PRIMARY KEY,
    task_id        TEXT   NOT NULL,
    approver       TEXT   NOT NULL,
    decision       TEXT   NOT NULL,
    comment        TEXT   NOT NULL,
    decided_at_ms  BIGINT NOT NULL,
    trace_id       TEXT   NOT NULL
);
CREATE INDEX approvals_task ON approvals (task_id);
