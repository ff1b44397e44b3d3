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

-- Findings stay right when evidence arrives late. GitHub does not order deliveries, and
-- catch-up and backfill deliver the past after the present. The judge waits a settle window
-- after a pull request's last record before judging it (judge_pending), and when later
-- records show an earlier finding wrong it appends a `verdict-finding-withdrawn` entry;
-- the finding's row says so. `history`: a finding about a pull request whose closing record
-- came from GitHub's API (a backfill), which is shown but not alerted.
CREATE TABLE judge_pending (
    log_id    bigint      NOT NULL REFERENCES logs (id),
    repo      text        NOT NULL,
    pr_number bigint      NOT NULL,
    due_at    timestamptz NOT NULL,
    PRIMARY KEY (log_id, repo, pr_number)
);
CREATE INDEX judge_pending_due ON judge_pending (due_at);
ALTER TABLE judge_pending OWNER TO verdict_owner;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON judge_pending TO verdict_app;

ALTER TABLE findings
    ADD COLUMN history       boolean NOT NULL DEFAULT false,
    ADD COLUMN withdrawn_seq bigint,
    ADD COLUMN withdrawn_at  timestamptz,
    ADD COLUMN withdrawn_why text;
