-- When each record row reached the store, for what an incremental reconcile run reads: the keys
-- stored since its last run, and the rows it folds into a rule's record mirror (decision 13).
-- received_at is when the collector took the row; the spool may store it much later (a replay
-- after the store was down), and a watermark on received_at then misses it for good. The server
-- sets stored_at at insert (now64: once per insert block), so no writer can forget it.
-- Rows already stored read the epoch: "long ago". The default is a constant while they are
-- materialized, and only then becomes now64(6): parts without the column on disk would otherwise
-- read the time of each query. MATERIALIZE leaves values already on disk alone, so every statement
-- may run again.
ALTER TABLE records ADD COLUMN IF NOT EXISTS stored_at DateTime64(6, 'UTC') DEFAULT toDateTime64(0, 6, 'UTC');
ALTER TABLE records MATERIALIZE COLUMN stored_at SETTINGS mutations_sync = 2;
ALTER TABLE records MODIFY COLUMN stored_at DateTime64(6, 'UTC') DEFAULT now64(6, 'UTC');
ALTER TABLE records ADD INDEX IF NOT EXISTS idx_stored stored_at TYPE minmax GRANULARITY 1;
ALTER TABLE records MATERIALIZE INDEX idx_stored SETTINGS mutations_sync = 2;
