-- Redaction: an entry's body bytes can be erased (a secret pasted into a review, a deletion
-- request), keeping every hashed field, so the chain, the Merkle tree, the checkpoints and
-- every proof stay valid. The entry hash commits to body_sha256, not to the body.
--
-- Only one path erases a body: verdict_redact_body(), run in the same transaction that
-- appended a `verdict-redaction` entry naming the target and its body hash. The trigger
-- that refuses every change to log entries lets exactly that change through, for every role:
-- not even the owner can blank a body without the erasure being on the record.

ALTER TABLE log_entries ALTER COLUMN body DROP NOT NULL;

-- A redacted copy of an entry's JSON (the named fields replaced), whose SHA-256 the
-- redaction entry records; pages and projections read it instead of the erased body.
CREATE TABLE redacted_copies (
    log_id      bigint NOT NULL REFERENCES logs (id),
    seq         bigint NOT NULL,
    body        bytea  NOT NULL,
    body_sha256 bytea  NOT NULL CHECK (length(body_sha256) = 32),
    PRIMARY KEY (log_id, seq)
);
ALTER TABLE redacted_copies OWNER TO verdict_owner;
GRANT SELECT ON redacted_copies TO verdict_app;

-- The redaction entry appended in this transaction for entry `seq` of `log_id` with this body
-- hash (and, when `copy_sha256` is given, that copy): naming it alone, or in a batch's
-- `targets`.
CREATE FUNCTION verdict_redaction_in_this_transaction(
    p_log_id bigint, p_seq bigint, p_body_sha256 bytea, p_copy_sha256 bytea
) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM log_entries r
         WHERE r.log_id = p_log_id
           AND r.kind = 'verdict-redaction'
           AND r.xmin = pg_current_xact_id()::xid
           AND r.body IS NOT NULL
           AND ((convert_from(r.body, 'UTF8')::jsonb ->> 'target_seq' = p_seq::text
                 AND convert_from(r.body, 'UTF8')::jsonb ->> 'target_body_sha256'
                     = encode(p_body_sha256, 'hex'))
                -- A batch (retention) lists its targets.
                OR (convert_from(r.body, 'UTF8')::jsonb -> 'targets')
                   @> jsonb_build_array(jsonb_build_object(
                        'seq', p_seq, 'body_sha256', encode(p_body_sha256, 'hex'))))
           AND (p_copy_sha256 IS NULL
                OR convert_from(r.body, 'UTF8')::jsonb ->> 'copy_sha256'
                   = encode(p_copy_sha256, 'hex')))
$$;
ALTER FUNCTION verdict_redaction_in_this_transaction(bigint, bigint, bytea, bytea)
    OWNER TO verdict_owner;

-- Refuses every UPDATE and DELETE of a log entry, except the erasure of a body by
-- verdict_redact_body() with its redaction entry in the same transaction.
CREATE FUNCTION log_entries_guard_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kept log_entries;
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('verdict.redacting', true) = OLD.log_id || ':' || OLD.seq
       AND OLD.body IS NOT NULL AND NEW.body IS NULL
    THEN
        kept := NEW;
        kept.body := OLD.body;
        IF kept IS NOT DISTINCT FROM OLD
           AND verdict_redaction_in_this_transaction(OLD.log_id, OLD.seq, OLD.body_sha256, NULL)
        THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'verdict log table %: % refused, the log is append-only', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Log entries can never be changed or removed; a body is erased only by '
                     '`verdict redact`, which records the erasure in the log.';
END
$$;
ALTER FUNCTION log_entries_guard_change() OWNER TO verdict_owner;

DROP TRIGGER log_entries_append_only ON log_entries;
CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION log_entries_guard_change();

-- Copies change only through the redaction function, too.
CREATE FUNCTION redacted_copies_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('verdict.redacting', true) = OLD.log_id || ':' || OLD.seq THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'redacted copies change only through verdict_redact_body()'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
ALTER FUNCTION redacted_copies_guard() OWNER TO verdict_owner;
CREATE TRIGGER redacted_copies_guard BEFORE UPDATE OR DELETE ON redacted_copies
    FOR EACH ROW EXECUTE FUNCTION redacted_copies_guard();
CREATE TRIGGER redacted_copies_no_truncate BEFORE TRUNCATE ON redacted_copies
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_log_change();

-- Erases the body of entry `p_seq` of `p_log_id` (and keeps `p_copy`, a redacted copy, when
-- given). Refused unless this transaction appended the redaction entry naming it.
CREATE FUNCTION verdict_redact_body(p_log_id bigint, p_seq bigint, p_copy bytea)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    target_sha bytea;
    erased boolean;
BEGIN
    SELECT body_sha256, body IS NULL INTO target_sha, erased FROM log_entries
     WHERE log_id = p_log_id AND seq = p_seq;
    IF target_sha IS NULL THEN
        RAISE EXCEPTION 'log % has no entry %', p_log_id, p_seq;
    END IF;
    -- An erased body can only have its redacted copy redacted further (or removed).
    IF erased AND NOT EXISTS (SELECT 1 FROM redacted_copies
                               WHERE log_id = p_log_id AND seq = p_seq) THEN
        RAISE EXCEPTION 'entry % of log % is already redacted', p_seq, p_log_id;
    END IF;
    IF NOT verdict_redaction_in_this_transaction(
           p_log_id, p_seq, target_sha,
           CASE WHEN p_copy IS NULL THEN NULL ELSE sha256(p_copy) END) THEN
        RAISE EXCEPTION 'no redaction entry for entry % of log % in this transaction', p_seq, p_log_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('verdict.redacting', p_log_id || ':' || p_seq, true);
    IF NOT erased THEN
        UPDATE log_entries SET body = NULL WHERE log_id = p_log_id AND seq = p_seq;
    END IF;
    DELETE FROM redacted_copies WHERE log_id = p_log_id AND seq = p_seq;
    PERFORM set_config('verdict.redacting', '', true);
    IF p_copy IS NOT NULL THEN
        INSERT INTO redacted_copies (log_id, seq, body, body_sha256)
        VALUES (p_log_id, p_seq, p_copy, sha256(p_copy));
    END IF;
END
$$;
ALTER FUNCTION verdict_redact_body(bigint, bigint, bytea) OWNER TO verdict_owner;
REVOKE ALL ON FUNCTION verdict_redact_body(bigint, bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION verdict_redact_body(bigint, bigint, bytea) TO verdict_app;
