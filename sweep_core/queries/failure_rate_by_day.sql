-- Failure rate per day across runs: shards whose every attempt failed, over settled shards.
-- Parameters: none.
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
    count(DISTINCT run_id) AS runs,
    count(*) AS shards_settled,
    CAST(count(*) - sum(succeeded) AS bigint) AS shards_failed,
    CAST(count(*) - sum(succeeded) AS double) / count(*) AS failure_rate
FROM per_shard
GROUP BY run_date
ORDER BY run_date
