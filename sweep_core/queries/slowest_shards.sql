-- The twenty slowest attempts of a run, successful or not (ties in a fixed order).
-- Parameters: run_id.
SELECT
    shard,
    attempt,
    status,
    point_count,
    duration_ms,
    duration_ms / point_count AS ms_per_point,
    error_code
FROM outcomes
WHERE run_id = ?
ORDER BY duration_ms DESC, shard, attempt, status
LIMIT 20
