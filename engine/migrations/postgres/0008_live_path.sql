-- The live path (SIMULATED -> STAGED -> [AWAITING_APPROVAL -> APPROVED] -> SIGNED -> BROADCAST
-- -> CONFIRMED). Every column is written before the side effect it records, so a restarted
-- engine finds on the task everything it needs to finish it without doing anything twice.

-- The on-chain sender and nonce, set together (with signer_request) in the transaction
-- that takes the nonce from nonce_locks; '' and NULL before.
ALTER TABLE trade_tasks ADD COLUMN chain_account TEXT NOT NULL DEFAULT '';
ALTER TABLE trade_tasks ADD COLUMN nonce BIGINT;
-- The SignTransactionRequest (prost) the signer is sent, fixed once: a re-send after a
-- crash is byte-for-byte the same request, which the signer answers idempotently.
ALTER TABLE trade_tasks ADD COLUMN signer_request BYTEA;
ALTER TABLE trade_tasks ADD COLUMN approval_id TEXT NOT NULL DEFAULT '';
-- The signed transaction, stored (SIGNED) before it is sent.
ALTER TABLE trade_tasks ADD COLUMN tx_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE trade_tasks ADD COLUMN raw_tx BYTEA;
-- What the chain did: the receipt's block, status (1 success, 0 reverted), gas, and the
-- pool's actual amounts (magnitudes, base-10 TEXT), beside the simulated ones.
ALTER TABLE trade_tasks ADD COLUMN receipt_block BIGINT;
ALTER TABLE trade_tasks ADD COLUMN receipt_status BIGINT;
ALTER TABLE trade_tasks ADD COLUMN gas_used BIGINT;
ALTER TABLE trade_tasks ADD COLUMN effective_gas_price TEXT NOT NULL DEFAULT '';
ALTER TABLE trade_tasks ADD COLUMN actual_amount0 TEXT NOT NULL DEFAULT '';
ALTER TABLE trade_tasks ADD COLUMN actual_amount1 TEXT NOT NULL DEFAULT '';

-- No nonce of an account is ever given to two tasks, whatever the code above it does.
CREATE UNIQUE INDEX trade_tasks_account_nonce ON trade_tasks (chain_account, nonce)
    WHERE nonce IS NOT NULL;
CREATE INDEX trade_tasks_live ON trade_tasks (chain_account, state, nonce);

-- One lease per (chain, account): only its holder assigns nonces, and only while the lease
-- is unexpired and its token (the fencing token, raised by every new holder) is the one it
-- took. next_nonce is the next nonce to assign. (0001 made a per-nonce placeholder of the
-- same name that nothing ever wrote; this replaces it.)
DROP TABLE nonce_locks;
CREATE TABLE nonce_locks (
    chain_id       BIGINT NOT NULL,
    account        TEXT   NOT NULL,
    holder         TEXT   NOT NULL,
    token          BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    next_nonce     BIGINT NOT NULL,
    PRIMARY KEY (chain_id, account)
);
