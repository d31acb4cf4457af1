-- Each strategy's permission tracker (stratbox_risk::PermissionTracker as JSON): its level,
-- the record that promotes and demotes it, and the hard-limit breach that halted it, so a
-- restart neither forgets an L0 "until a human restores it" nor a strategy's track record.
-- A level change is written before the submit that caused it is answered, in the same
-- transaction as its `audit_log` row; a change of the record alone within about a second.
-- The SQLite file is identical.
CREATE TABLE strategy_permissions (
    strategy       TEXT   PRIMARY KEY,
    tracker        TEXT   NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);
