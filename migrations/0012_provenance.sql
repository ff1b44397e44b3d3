-- Where each decision record comes from, and one record per thing that happened.
--
-- A review, comment, merge or check can reach the log twice: as a signed webhook delivery and
-- as an object read from GitHub's API by a backfill. Each record names what it is about
-- (`source_key`, e.g. `review:123`); a repository holds one record per key. A record from a
-- delivery replaces one from the API (signed evidence is the better kind); `from_api` says
-- when GitHub's API returned the object a record comes from (NULL: a signed delivery).

ALTER TABLE decisions
    ADD COLUMN source_key text,
    ADD COLUMN from_api   timestamptz;
CREATE UNIQUE INDEX decisions_by_source ON decisions (repo, source_key)
    WHERE source_key IS NOT NULL;
