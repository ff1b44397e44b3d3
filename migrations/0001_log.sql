-- The append-only, hash-chained log: verdict's single source of truth.
--
-- Roles: tables are owned by `verdict_owner` (the migration role). The server runs as
-- `verdict_app`, which may only SELECT and INSERT log tables. Triggers refuse UPDATE, DELETE
-- and TRUNCATE for everyone, owner and superuser included.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'verdict_owner') THEN
        BEGIN
            CREATE ROLE verdict_owner NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'verdict_app') THEN
        BEGIN
            CREATE ROLE verdict_app NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
END
$$;

-- The migrating user must be able to SET ROLE to both (a superuser already can).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT verdict_owner, verdict_app TO %I', current_user);
    END IF;
END
$$;

-- One log per GitHub account. `name` is the account login, lower-cased.
CREATE TABLE logs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE log_entries (
    log_id                   bigint      NOT NULL REFERENCES logs (id),
    seq                      bigint      NOT NULL CHECK (seq >= 0),
    kind                     text        NOT NULL CHECK (kind <> ''),
    prev_hash                bytea       NOT NULL CHECK (length(prev_hash) = 32),
    entry_hash               bytea       NOT NULL CHECK (length(entry_hash) = 32),
    received_at              timestamptz NOT NULL,
    delivery_id              text        NOT NULL,
    event                    text        NOT NULL,
    hook_id                  text,
    installation_target_type text,
    installation_target_id   text,
    signature                text,
    body_sha256              bytea       NOT NULL CHECK (length(body_sha256) = 32),
    body                     bytea       NOT NULL,
    -- false when verdict cannot read a JSON payload from the body (not JSON, nor a form with a
    -- JSON `payload` field): still GitHub's signed word, so kept, but flagged.
    body_readable             boolean     NOT NULL,
    PRIMARY KEY (log_id, seq)
);

-- Bodies are JSON of a few to a few hundred KB. lz4 compresses them about 8x faster than
-- PostgreSQL's default pglz, and smaller; servers built without lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE log_entries ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available on this server: log bodies use pglz compression';
END
$$;

-- A redelivery keeps its GUID: the second copy must not add an entry.
CREATE UNIQUE INDEX log_entries_delivery ON log_entries (kind, delivery_id);

-- The chain, enforced at insert: entry `seq` follows entry `seq - 1` of the same log and links
-- to its hash; the first entry links to 32 zero bytes. Together with the primary key this makes
-- forks and gaps impossible, whichever process writes.
CREATE FUNCTION log_entries_check_chain() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    expected bytea;
BEGIN
    IF NEW.seq = 0 THEN
        expected := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ELSE
        SELECT entry_hash INTO expected FROM log_entries
         WHERE log_id = NEW.log_id AND seq = NEW.seq - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'log % entry %: previous entry % is missing (the log must stay gapless)',
                NEW.log_id, NEW.seq, NEW.seq - 1 USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    IF NEW.prev_hash <> expected THEN
        RAISE EXCEPTION 'log % entry %: prev_hash does not match the hash of entry %',
            NEW.log_id, NEW.seq, NEW.seq - 1 USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER log_entries_chain BEFORE INSERT ON log_entries
    FOR EACH ROW EXECUTE FUNCTION log_entries_check_chain();

CREATE FUNCTION refuse_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'verdict log table %: % refused, the log is append-only', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Log entries can never be changed or removed; append a new entry instead.';
END
$$;

CREATE TRIGGER logs_append_only BEFORE UPDATE OR DELETE ON logs
    FOR EACH ROW EXECUTE FUNCTION refuse_log_change();
CREATE TRIGGER logs_no_truncate BEFORE TRUNCATE ON logs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_log_change();
CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_log_change();
CREATE TRIGGER log_entries_no_truncate BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_log_change();

ALTER TABLE logs OWNER TO verdict_owner;
ALTER TABLE log_entries OWNER TO verdict_owner;
ALTER FUNCTION log_entries_check_chain() OWNER TO verdict_owner;
ALTER FUNCTION refuse_log_change() OWNER TO verdict_owner;

REVOKE ALL ON logs, log_entries FROM PUBLIC;
GRANT SELECT, INSERT ON logs, log_entries TO verdict_app;
GRANT USAGE ON SCHEMA public TO verdict_app;
