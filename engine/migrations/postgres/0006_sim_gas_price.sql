-- The gas price (wei, base-10 TEXT of a U256) a task's transaction was simulated at: the
-- network's when the engine decided it, so sim_gas_used x sim_gas_price is what the trade
-- would have paid for gas. '0' for tasks decided before this column existed, when
-- simulations ran at gas price 0, and for tasks never simulated.
ALTER TABLE trade_tasks ADD COLUMN sim_gas_price TEXT NOT NULL DEFAULT '0';
