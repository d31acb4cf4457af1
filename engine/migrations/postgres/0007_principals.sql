-- Keys are held by two kinds of principal (engine::access::Role): operators, who change
-- what runs and stop trading, and hosts, which submit proposals and report rollouts. A key
-- grants exactly its role. Existing rows are operators. A revoked key (revoked_at_ms > 0)
-- authenticates nothing from the moment the row says so; the row stays, so the name is not
-- reused and the audit log's actor keeps its meaning.
ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'operator';
ALTER TABLE operators ADD COLUMN revoked_at_ms BIGINT NOT NULL DEFAULT 0;
