-- A retention batch may keep a skeleton in place of each erased body that carried decision
-- records (its SHA-256 in the target's `copy_sha256`), so verdict_redact_body() with a copy
-- must accept a batch target naming that copy, as it accepts a single redaction's.
-- The trigger still calls this with no copy (NULL): the entry and its body hash suffice there.
CREATE OR REPLACE FUNCTION verdict_redaction_in_this_transaction(
    p_log_id bigint, p_seq bigint, p_body_sha256 bytea, p_copy_sha256 bytea
) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1
          FROM log_entries r
         CROSS JOIN LATERAL (SELECT convert_from(r.body, 'UTF8')::jsonb AS b) j
         WHERE r.log_id = p_log_id
           AND r.kind = 'verdict-redaction'
           AND r.xmin = pg_current_xact_id()::xid
           AND r.body IS NOT NULL
           AND (
                -- One entry: its seq, its body hash, and the copy kept (when checked).
                (j.b ->> 'target_seq' = p_seq::text
                 AND j.b ->> 'target_body_sha256' = encode(p_body_sha256, 'hex')
                 AND (p_copy_sha256 IS NULL
                      OR j.b ->> 'copy_sha256' = encode(p_copy_sha256, 'hex')))
                -- A batch (retention) lists its targets, each with the copy it keeps.
                OR EXISTS (
                    SELECT 1 FROM jsonb_array_elements(
                               CASE WHEN jsonb_typeof(j.b -> 'targets') = 'array'
                                    THEN j.b -> 'targets' ELSE '[]'::jsonb END) t
                     WHERE t ->> 'seq' = p_seq::text
                       AND t ->> 'body_sha256' = encode(p_body_sha256, 'hex')
                       AND (p_copy_sha256 IS NULL
                            OR t ->> 'copy_sha256' = encode(p_copy_sha256, 'hex')))))
$$;
