-- Findings of the accountability rules are log entries (kind 'verdict-finding'), hash-chained
-- like deliveries. These tables are projections: judge_cursors says how far the judge has
-- looked at decision records; findings is the readable form of the finding entries.

CREATE TABLE judge_cursors (
    log_id   bigint PRIMARY KEY REFERENCES logs (id),
    next_seq bigint NOT NULL DEFAULT 0
);

CREATE TABLE findings (
    log_id       bigint      NOT NULL REFERENCES logs (id),
    seq          bigint      NOT NULL,
    rule         text        NOT NULL,
    severity     text        NOT NULL,
    repo         text        NOT NULL,
    repo_private boolean     NOT NULL,
    pr_number    bigint,
    message      text        NOT NULL,
    evidence     jsonb       NOT NULL DEFAULT '[]',
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (log_id, seq)
);
CREATE INDEX findings_by_pr ON findings (repo, pr_number);
CREATE INDEX findings_by_rule ON findings (rule, recorded_at DESC);

ALTER TABLE judge_cursors OWNER TO verdict_owner;
ALTER TABLE findings OWNER TO verdict_owner;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON judge_cursors, findings TO verdict_app;
