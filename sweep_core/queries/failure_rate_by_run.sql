-- Failure rate per run: the share of settled shards whose every attempt failed.
-- Parameters: none (every run); add a run_date filter to scan less.
WITH per_shard AS (
    SELECT
        run_date,
        run_id,
        shard,
        max(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS succeeded
    FROM outcomes
    GROUP BY run_date, run_id, shard
)
SELECT
    run_date,
    run_id,
    count(*) AS shards_settled,
    CAST(count(*) - sum(succeeded) AS bigint) AS shards_failed,
    CAST(count(*) - sum(succeeded) AS double) / count(*) AS failure_rate
FROM per_shard
GROUP BY run_date, run_id
ORDER BY run_date, run_id
