-- Replacements of a broadcast transaction at its nonce (engine/src/replace.rs): fee bumps
-- when it is not included within a number of blocks, and the cancel (a 0-value transfer to
-- the account itself) past its inclusion deadline. Each is stored before the signer is
-- asked (its request, fixed), then with its signed bytes before it is sent, so a restarted
-- engine follows every transaction that may be mined at the task's nonce: whichever the
-- chain includes decides the task (CONFIRMED/FAILED for the trade, EXPIRED for the cancel).

-- The node's block when the task's first transaction was sent.
ALTER TABLE trade_tasks ADD COLUMN broadcast_block BIGINT;

CREATE TABLE live_replacements (
    task_id         TEXT   NOT NULL,
    attempt         BIGINT NOT NULL,
    kind            TEXT   NOT NULL,
    signer_request  BYTEA  NOT NULL,
    tx_hash         TEXT   NOT NULL DEFAULT '',
    raw_tx          BYTEA,
    sent_block      BIGINT,
    refused         TEXT   NOT NULL DEFAULT '',
    created_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (task_id, attempt)
);
