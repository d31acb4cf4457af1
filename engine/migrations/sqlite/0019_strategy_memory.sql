-- A strategy deployment's memory (world stratbox:strategy@0.2.0): small key-value entries
-- kept by strategy name, so they outlive hot swaps and restarts. Values are hex TEXT, as
-- amounts are base-10 TEXT: one representation both backends hold and read back the same.
-- `bytes` is what the entry counts against the deployment's cap (key and value lengths).
CREATE TABLE strategy_memory (
    strategy TEXT NOT NULL,
    mkey TEXT NOT NULL,
    value_hex TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (strategy, mkey)
);
