-- Risk limits changed at run time under a timelock (engine/src/risk_change.rs and the
-- engine's risk-limit calls): the limits in effect, and every change proposed to them.
-- A change that only tightens is APPLIED at once; one that loosens waits as PENDING until
-- effective_at_ms, then is APPLIED (or CANCELLED by an operator before, or FAILED if it no
-- longer makes a valid configuration). A restart reads the limits in effect from here, so
-- a looser --risk-config file is queued as a PENDING change rather than applied.

-- One row, name 'effective'. `version` goes up by one with every change of the risk state
-- (limits or changes), so engines on one database apply each change once and see each
-- other's (compare-and-set on it).
CREATE TABLE risk_limits (
    name           TEXT   PRIMARY KEY,
    version        BIGINT NOT NULL,
    config         TEXT   NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    updated_by     TEXT   NOT NULL
);

CREATE TABLE risk_limit_changes (
    change_id        BIGSERIAL PRIMARY KEY,
    state            TEXT   NOT NULL,
    -- JSON: [{path, old, new, loosens}], see FieldChange.
    fields           TEXT   NOT NULL,
    operator         TEXT   NOT NULL,
    reason           TEXT   NOT NULL,
    -- 'api' (an operator's call) or 'risk-file' (the file given at start).
    source           TEXT   NOT NULL,
    proposed_at_ms   BIGINT NOT NULL,
    effective_at_ms  BIGINT NOT NULL,
    decided_by       TEXT   NOT NULL DEFAULT '',
    decided_at_ms    BIGINT,
    detail           TEXT   NOT NULL DEFAULT '',
    trace_id         TEXT   NOT NULL
);
CREATE INDEX risk_limit_changes_due ON risk_limit_changes (state, effective_at_ms);
