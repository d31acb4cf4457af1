-- Reorgs (engine/src/reorg.rs): a receipt is booked with the hash of the block that holds
-- it, so the live path can tell when that block leaves the canonical chain; the task then
-- goes back to BROADCAST and what its receipt booked is reversed. `reorgs` counts how often
-- that happened, which keeps the postings of each inclusion under their own ids.
ALTER TABLE trade_tasks ADD COLUMN receipt_block_hash TEXT;
ALTER TABLE trade_tasks ADD COLUMN reorgs BIGINT NOT NULL DEFAULT 0;
CREATE INDEX trade_tasks_receipt_block ON trade_tasks (receipt_block) WHERE receipt_block_hash IS NOT NULL;
