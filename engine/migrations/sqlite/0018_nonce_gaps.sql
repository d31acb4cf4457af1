-- Nonce gaps the live path fills (engine/src/live/gap.rs): a nonce below the lease's next
-- that no open task holds and the chain has not used, so every later transaction of the
-- account waits behind it. It is filled with a cancel (a 0-value transfer to the account
-- itself), stored like a replacement: planned (the signer request, fixed) before the
-- signer is asked, signed (bytes and hash) before it is sent, then sent, and ended by its
-- receipt (filled, gas booked) or by the nonce used otherwise (used) or a refusal (refused).

CREATE TABLE nonce_gaps (
    account         TEXT   NOT NULL,
    nonce           BIGINT NOT NULL,
    -- planned | signed | sent | filled | used | refused
    state           TEXT   NOT NULL,
    signer_request  BLOB  NOT NULL,
    tx_hash         TEXT   NOT NULL DEFAULT '',
    raw_tx          BLOB,
    sent_block      BIGINT,
    block           BIGINT,
    detail          TEXT   NOT NULL DEFAULT '',
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (account, nonce)
);
