-- Replays. GitHub's signature covers a delivery's body, not its GUID or event name, and
-- verdict's record pages show bodies and signatures publicly. Anyone could post a public body
-- again under a new GUID (and another event) and it would verify. Within one log, a
-- github-delivery whose body is byte-identical to an earlier one is therefore a replay: the
-- sequencer answers with the original's position and stores nothing, and this trigger refuses
-- a replay whichever process writes (rows already in a log before this migration are left as
-- they are: the check looks at each new row against the rows before it).
--
-- GitHub never sends two different deliveries with the same bytes: every body carries the
-- event's own ids and times. A GitHub redelivery keeps its GUID and is a duplicate, not a
-- replay.

-- (log, body hash, seq): the check below reads the first earlier entry with a body in one
-- probe. Without seq in the index, "the first earlier one" can be planned as a walk of the
-- primary key through the whole log, which the intake benchmark caught (a tenth of the rate).
CREATE INDEX log_entries_body ON log_entries (log_id, body_sha256, seq)
    WHERE kind = 'github-delivery';

CREATE FUNCTION log_entries_refuse_replays() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    bad record;
BEGIN
    -- As in the chain check, a scalar subquery keeps each row one index probe: the planner
    -- cannot turn it into a scan of the whole log.
    WITH checked AS MATERIALIZED (
        SELECT n.log_id, n.seq,
               (SELECT x.seq FROM log_entries x
                 WHERE x.log_id = n.log_id AND x.kind = 'github-delivery'
                   AND x.body_sha256 = n.body_sha256 AND x.seq < n.seq
                 ORDER BY x.seq LIMIT 1) AS original
          FROM new_entries n
         WHERE n.kind = 'github-delivery')
    SELECT c.log_id, c.seq, c.original INTO bad
      FROM checked c WHERE c.original IS NOT NULL
     ORDER BY c.log_id, c.seq LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'log % entry %: the same body is already entry % of this log (a replay under another delivery id)',
            bad.log_id, bad.seq, bad.original USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER log_entries_no_replays AFTER INSERT ON log_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION log_entries_refuse_replays();

ALTER FUNCTION log_entries_refuse_replays() OWNER TO verdict_owner;
