-- Run summary: shards by final status, points computed, and how long attempts took.
-- Parameters: run_id. Athena SQL; run locally on DuckDB through sqlglot.
-- One pass over the run's outcomes (each pass opens every outcome object of the run): a shard
-- has at most one success record, so the per-shard success durations are the durations of
-- the run's success records.
WITH per_shard AS (
    SELECT
        shard,
        max(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS succeeded,
        count_if(status = 'failure') AS failed_attempts,
        max(point_count) AS point_count,
        max(CASE WHEN status = 'success' THEN duration_ms END) AS success_ms
    FROM outcomes
    WHERE run_id = ?
    GROUP BY shard
)
SELECT
    CAST(sum(succeeded) AS bigint) AS shards_succeeded,
    CAST(count(*) - sum(succeeded) AS bigint) AS shards_failed,
    CAST(sum(failed_attempts) AS bigint) AS failed_attempts,
    CAST(sum(CASE WHEN succeeded = 1 THEN point_count ELSE 0 END) AS bigint) AS points_succeeded,
    approx_percentile(success_ms, 0.5) AS p50_ms,
    approx_percentile(success_ms, 0.9) AS p90_ms,
    approx_percentile(success_ms, 0.99) AS p99_ms,
    max(success_ms) AS max_ms,
    sum(success_ms) AS total_ms
FROM per_shard
HAVING count(*) > 0
