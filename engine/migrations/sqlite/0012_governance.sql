-- The governance sentinel (engine/src/sentinel.rs): admin changes seen on the contracts a
-- market trades through (its pool, the pool's two tokens and the pool's factory) halt that
-- market until an operator clears it.

-- One row per halted market (its pool, lowercase 0x hex), with the first change that halted
-- it; later changes seen while it is halted are in audit_log. `watched` is the market's
-- contracts (comma-separated), whose baselines a clear deletes so they are read afresh.
CREATE TABLE governance_halts (
    market        TEXT   NOT NULL PRIMARY KEY,
    contract      TEXT   NOT NULL,
    kind          TEXT   NOT NULL,
    tx_hash       TEXT   NOT NULL DEFAULT '',
    block         BIGINT NOT NULL,
    detail        TEXT   NOT NULL,
    watched       TEXT   NOT NULL,
    halted_at_ms  BIGINT NOT NULL
);

-- Each watched contract's EIP-1967 slots (implementation, admin, beacon: 32-byte words as
-- 0x hex) and the keccak256 of its code, as first read (or read again after a clear): a
-- later reading that differs is a change that may have emitted nothing.
CREATE TABLE governance_baselines (
    contract        TEXT   NOT NULL PRIMARY KEY,
    implementation  TEXT   NOT NULL,
    admin           TEXT   NOT NULL,
    beacon          TEXT   NOT NULL,
    code_hash       TEXT   NOT NULL,
    block           BIGINT NOT NULL,
    taken_at_ms     BIGINT NOT NULL
);

-- The last block whose logs the sentinel has read, per chain: a restarted engine reads the
-- blocks it missed while it was down.
CREATE TABLE governance_cursor (
    chain_id       BIGINT NOT NULL PRIMARY KEY,
    block          BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);
