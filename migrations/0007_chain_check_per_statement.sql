-- The chain check of 0001, once per INSERT statement instead of once per row.
--
-- Why: the sequencer appends a whole batch (up to 512 entries) in one statement. A row trigger
-- runs a PL/pgSQL call and a query per entry, about 4 µs each: a sixth of what the bare insert
-- of a ~20 KB delivery costs PostgreSQL. The statement trigger below checks the same rule over
-- the statement's new rows in one query (one primary-key probe per row), about 1 µs per entry.
--
-- The rule is unchanged: entry `seq` of a log must link (prev_hash) to the hash of entry
-- `seq - 1` of the same log, which must exist; entry 0 links to 32 zero bytes. It runs after
-- the statement's rows are in place, so an entry may link to one inserted earlier in the same
-- statement, exactly as the row trigger allowed. Any violation refuses the whole statement
-- (SQLSTATE 23000), naming the first offending entry in (log, seq) order.

CREATE FUNCTION log_entries_check_chain_of_statement() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    bad record;
BEGIN
    -- The scalar subquery keeps each check one probe of the primary key: unlike a join, the
    -- planner cannot turn it into a scan of the whole log, whatever it guesses about the
    -- transition table's size.
    WITH checked AS MATERIALIZED (
        SELECT n.log_id, n.seq, n.prev_hash,
               CASE WHEN n.seq = 0
                    THEN '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
                    ELSE (SELECT x.entry_hash FROM log_entries x
                           WHERE x.log_id = n.log_id AND x.seq = n.seq - 1) END AS expected
          FROM new_entries n)
    SELECT c.log_id, c.seq, c.expected IS NULL AS missing INTO bad
      FROM checked c
     WHERE c.prev_hash IS DISTINCT FROM c.expected
     ORDER BY c.log_id, c.seq
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF bad.missing THEN
        RAISE EXCEPTION 'log % entry %: previous entry % is missing (the log must stay gapless)',
            bad.log_id, bad.seq, bad.seq - 1 USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF bad.seq = 0 THEN
        RAISE EXCEPTION 'log % entry 0: prev_hash does not match the 32 zero bytes a first entry links to',
            bad.log_id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RAISE EXCEPTION 'log % entry %: prev_hash does not match the hash of entry %',
        bad.log_id, bad.seq, bad.seq - 1 USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER log_entries_chain_of_statement AFTER INSERT ON log_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION log_entries_check_chain_of_statement();

-- The new check is in place in this same transaction before the old one goes.
DROP TRIGGER log_entries_chain ON log_entries;
DROP FUNCTION log_entries_check_chain();

ALTER FUNCTION log_entries_check_chain_of_statement() OWNER TO verdict_owner;
