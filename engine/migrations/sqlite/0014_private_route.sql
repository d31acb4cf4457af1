-- The route a live trade's transactions take (engine/src/route.rs): the public mempool
-- (eth_sendRawTransaction to the node) or a private relay (eth_sendBundle). Decided once,
-- when the signed transaction is first sent, and stored before anything is sent, so a
-- restarted engine resends by the same route; bumps and the cancel at the task's nonce
-- follow it. A task sent before this table, or by an engine without a private relay, has
-- no row: public.

CREATE TABLE live_routes (
    task_id        TEXT   NOT NULL PRIMARY KEY,
    -- 'public' or 'private'; a private route that fell back is 'public' with `fallback` set.
    route          TEXT   NOT NULL,
    -- Why it was chosen (the trade's value against the threshold, or its strategy marked
    -- sensitive).
    why            TEXT   NOT NULL,
    -- The node's head when the relay first accepted a bundle of the task: the fallback's
    -- block count starts there.
    first_block    BIGINT,
    -- Why the public fallback fired ('' unless it did).
    fallback       TEXT   NOT NULL DEFAULT '',
    decided_at_ms  BIGINT NOT NULL
);
