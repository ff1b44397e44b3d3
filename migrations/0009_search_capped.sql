-- Full-text search over review and comment bodies, rebuilt so that no body can break it and
-- no word a person types is lost.
--
-- Capped: PostgreSQL refuses a tsvector over 1 MB, and a refused row used to stop the
-- projector for good. The projector already keeps bodies to 65,536 characters (GitHub's own
-- limit); the cap here also covers rows written before it did.
--
-- Two configurations: 'english' finds "needs test" in "needed tests"; 'simple' keeps the words
-- 'english' drops as stop words ("before", "after", "not"). Queries search both.

DROP INDEX decisions_search;
ALTER TABLE decisions DROP COLUMN body_search;
ALTER TABLE decisions ADD COLUMN body_search tsvector GENERATED ALWAYS AS (
    to_tsvector('english', left(coalesce(body, ''), 65536))
    || to_tsvector('simple', left(coalesce(body, ''), 65536))) STORED;
CREATE INDEX decisions_search ON decisions USING gin (body_search);
