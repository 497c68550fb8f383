-- Per-instance state of the workflows KPIs read (reconciler/workflow_state.py): one row per
-- (workflow, correlation key) with each step's presence, first and last arrival, and the dimension
-- values of its first step event. KPI requests read this instead of grouping every step event
-- (10M events: seconds) on each request.
-- A refresh writes a whole new generation (one partition) and drops generations older than the
-- previous one, so readers never need FINAL. `definition` is a hash of the steps and dimensions the
-- rows were computed with, so a changed rule never reads rows of its old shape. ORDER BY leads with
-- (workflow, definition, generation) and then first0: a KPI's range on the first step's time reads
-- only the granules of that range.
CREATE TABLE IF NOT EXISTS workflow_instances (
    workflow LowCardinality(String),
    definition LowCardinality(String),
    generation UInt64,
    first0 DateTime64(6, 'UTC'),
    ck String,
    has Array(UInt8),
    first Array(DateTime64(6, 'UTC')),
    last Array(DateTime64(6, 'UTC')),
    dims Map(LowCardinality(String), String)
) ENGINE = MergeTree
PARTITION BY (workflow, definition, generation)
ORDER BY (workflow, definition, generation, first0);

-- One row per refresh: the generation it wrote, the events table's row count and latest received_at
-- when it started (its freshness token), and when it finished. Readers take the newest row of their
-- (workflow, definition): a generation is listed only once it is completely written.
CREATE TABLE IF NOT EXISTS workflow_state_refreshes (
    workflow LowCardinality(String),
    definition LowCardinality(String),
    generation UInt64,
    events UInt64,
    received_max DateTime64(6, 'UTC'),
    started_at DateTime64(6, 'UTC'),
    refreshed_at DateTime64(6, 'UTC'),
    instances UInt64
) ENGINE = ReplacingMergeTree(generation)
ORDER BY (workflow, definition);
