-- Projections: everything here is derived from the log and can be rebuilt from it with
-- `verdict reproject`. Unlike the log, verdict_app may change these tables.

CREATE TABLE projection_cursors (
    log_id   bigint PRIMARY KEY REFERENCES logs (id),
    next_seq bigint NOT NULL DEFAULT 0
);

-- One row per decision record; an entry can yield several (a check suite on two PRs).
CREATE TABLE decisions (
    log_id       bigint      NOT NULL REFERENCES logs (id),
    seq          bigint      NOT NULL,
    ordinal      integer     NOT NULL,
    repo         text        NOT NULL,
    repo_private boolean     NOT NULL,
    pr_number    bigint,
    kind         text        NOT NULL,
    actor        text,
    occurred_at  timestamptz NOT NULL,
    commit_sha   text,
    body         text,
    details      jsonb       NOT NULL DEFAULT '{}',
    body_search  tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(body, ''))) STORED,
    PRIMARY KEY (log_id, seq, ordinal)
);
CREATE INDEX decisions_by_pr ON decisions (repo, pr_number, occurred_at, log_id, seq);
CREATE INDEX decisions_by_repo_time ON decisions (repo, occurred_at DESC);
CREATE INDEX decisions_by_commit ON decisions (repo, commit_sha);
CREATE INDEX decisions_search ON decisions USING gin (body_search);

-- The newest state of each pull request GitHub has shown (by GitHub's updated_at).
CREATE TABLE pull_requests (
    repo             text        NOT NULL,
    number           bigint      NOT NULL,
    repo_private     boolean     NOT NULL,
    title            text        NOT NULL,
    author           text,
    state            text        NOT NULL,
    draft            boolean     NOT NULL,
    merged           boolean     NOT NULL,
    merged_by        text,
    merged_at        timestamptz,
    merge_commit_sha text,
    head_sha         text,
    base_ref         text,
    html_url         text,
    body             text,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (repo, number)
);

CREATE TABLE features (
    repo             text    NOT NULL,
    key              text    NOT NULL,
    title            text    NOT NULL,
    -- true once the title comes from the issue itself rather than a bare "#N".
    titled_by_issue  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (repo, key)
);

-- Which PRs belong to which feature, as their newest state says.
CREATE TABLE feature_pull_requests (
    repo      text   NOT NULL,
    key       text   NOT NULL,
    pr_repo   text   NOT NULL,
    pr_number bigint NOT NULL,
    source    text   NOT NULL,
    PRIMARY KEY (repo, key, pr_repo, pr_number, source)
);
CREATE INDEX feature_pull_requests_by_pr ON feature_pull_requests (pr_repo, pr_number);

-- Entries the projector could not understand: reported, skipped, kept in the log.
CREATE TABLE projection_problems (
    log_id  bigint NOT NULL REFERENCES logs (id),
    seq     bigint NOT NULL,
    problem text   NOT NULL,
    PRIMARY KEY (log_id, seq)
);

ALTER TABLE projection_cursors OWNER TO verdict_owner;
ALTER TABLE decisions OWNER TO verdict_owner;
ALTER TABLE pull_requests OWNER TO verdict_owner;
ALTER TABLE features OWNER TO verdict_owner;
ALTER TABLE feature_pull_requests OWNER TO verdict_owner;
ALTER TABLE projection_problems OWNER TO verdict_owner;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON projection_cursors, decisions, pull_requests,
    features, feature_pull_requests, projection_problems TO verdict_app;
