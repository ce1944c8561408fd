-- Run summary: shards by final status, points computed, and how long attempts took.
-- Parameters: run_id. Athena SQL; run locally on DuckDB through sqlglot.
WITH per_shard AS (
    SELECT
        shard,
        max(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS succeeded,
        count_if(status = 'failure') AS failed_attempts,
        max(point_count) AS point_count
    FROM outcomes
    WHERE run_id = ?
    GROUP BY shard
),
durations AS (
    SELECT
        approx_percentile(duration_ms, 0.5) AS p50_ms,
        approx_percentile(duration_ms, 0.9) AS p90_ms,
        approx_percentile(duration_ms, 0.99) AS p99_ms,
        max(duration_ms) AS max_ms,
        sum(duration_ms) AS total_ms
    FROM outcomes
    WHERE run_id = ? AND status = 'success'
)
SELECT
    CAST(sum(s.succeeded) AS bigint) AS shards_succeeded,
    CAST(count(*) - sum(s.succeeded) AS bigint) AS shards_failed,
    CAST(sum(s.failed_attempts) AS bigint) AS failed_attempts,
    CAST(sum(CASE WHEN s.succeeded = 1 THEN s.point_count ELSE 0 END) AS bigint) AS points_succeeded,
    d.p50_ms,
    d.p90_ms,
    d.p99_ms,
    d.max_ms,
    d.total_ms
FROM per_shard AS s
CROSS JOIN durations AS d
GROUP BY d.p50_ms, d.p90_ms, d.p99_ms, d.max_ms, d.total_ms
