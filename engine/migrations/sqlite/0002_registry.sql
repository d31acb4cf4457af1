-- The strategy registry (stratbox-registry): stored components, deployments with a global
-- revision, operators (API key hashes only) and hosts' rollout reports. The PostgreSQL file
-- has the same columns with the same meaning; only BLOB/BYTEA differ.
--
-- `strategies` (0001) gets one row per uploaded version: `version` is the decimal string
-- "1", "2", ... per name and `created_at` is in milliseconds since the epoch.

-- Content-addressed component bytes: one row per distinct sha256, however many names or
-- versions point at it.
CREATE TABLE strategy_components (
    sha256         TEXT   PRIMARY KEY,
    bytes          BLOB   NOT NULL,
    size_bytes     BIGINT NOT NULL,
    world          TEXT   NOT NULL,
    -- 1 when the component exports save/restore (world stratbox:strategy@0.1.1).
    stateful       BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);

CREATE INDEX strategies_sha256 ON strategies (sha256);

-- Every change to any deployment is a new row; `revision` is global and strictly
-- increasing. A strategy's current deployment is its row with the highest revision.
-- `previous_revision` is what a rollback returns to (0: nothing); a rollback copies that
-- row and takes over its `previous_revision`, so successive rollbacks walk back in time.
CREATE TABLE deployments (
    revision           BIGINT PRIMARY KEY,
    name               TEXT   NOT NULL,
    version            TEXT   NOT NULL,
    sha256             TEXT   NOT NULL,
    instances          BIGINT NOT NULL,
    config_json        TEXT   NOT NULL,
    deployed_by        TEXT   NOT NULL,
    action             TEXT   NOT NULL,
    previous_revision  BIGINT NOT NULL,
    at_ms              BIGINT NOT NULL
);
CREATE INDEX deployments_name ON deployments (name, revision);

-- Operators: the sha256 of each API key, never the key.
CREATE TABLE operators (
    name           TEXT   PRIMARY KEY,
    key_hash       TEXT   NOT NULL UNIQUE,
    created_at_ms  BIGINT NOT NULL
);

-- The newest report of each host about each strategy.
CREATE TABLE rollout_reports (
    host          TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    version       TEXT   NOT NULL,
    revision      BIGINT NOT NULL,
    switched      BIGINT NOT NULL,
    error         TEXT   NOT NULL,
    max_pause_ns  BIGINT NOT NULL,
    markets       BIGINT NOT NULL,
    instances     BIGINT NOT NULL,
    at_ms         BIGINT NOT NULL,
    PRIMARY KEY (host, name)
);
