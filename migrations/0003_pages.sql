-- What the pages need beyond 0002: a repository list that knows each repository's account and
-- visibility, the chain check the projector does as it reads the log, and an index to find
-- the issue decisions that define a feature.

CREATE TABLE repositories (
    repo          text        PRIMARY KEY,
    log_id        bigint      NOT NULL REFERENCES logs (id),
    private       boolean     NOT NULL,
    last_activity timestamptz NOT NULL
);
CREATE INDEX repositories_by_log ON repositories (log_id, repo);
ALTER TABLE repositories OWNER TO verdict_owner;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON repositories TO verdict_app;

-- The projector recomputes each entry's hash and its link to the previous one as it reads:
-- entries below verified_size form an unbroken chain ending in verified_head.
ALTER TABLE projection_cursors
    ADD COLUMN verified_size bigint NOT NULL DEFAULT 0,
    ADD COLUMN verified_head bytea,
    ADD COLUMN chain_problem text;

CREATE INDEX decisions_by_issue_feature ON decisions (repo, (details ->> 'feature'))
    WHERE kind LIKE 'issue.%';
CREATE INDEX decisions_by_actor ON decisions (actor);
