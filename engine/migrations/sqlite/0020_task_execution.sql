-- What hosts measured of each fill as they told it to its strategy (world
-- stratbox:strategy@0.2.0's outcomes): realised slippage against the strategy's expectation
-- and the markout some blocks later, in signed basis points. One row per task, under the
-- task's own strategy (copied from trade_tasks, not taken from the host); NULL until that
-- figure is reported. Informational: `stratbox strategy show` summarises it, no gate reads it.
CREATE TABLE task_execution (
    task_id TEXT PRIMARY KEY,
    strategy TEXT NOT NULL,
    slippage_bps BIGINT,
    markout_bps BIGINT,
    markout_blocks BIGINT,
    host TEXT NOT NULL DEFAULT '',
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX task_execution_strategy ON task_execution (strategy, updated_at_ms);
