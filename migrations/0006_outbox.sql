-- What the feedback loop sends out of verdict (alerts to webhooks, check runs and comments
-- on GitHub) goes through a durable outbox: a message is written here, in the same
-- transaction that moves the judge past the entries it is about, and a dispatcher sends it
-- until the receiver accepts it (or refuses it for good). A restart loses nothing; a
-- message is written once, whatever is judged again, because dedupe_key is unique.
-- Unlike projections, the outbox is not rebuilt by `verdict reproject`: it records what
-- left verdict, which a rebuild must not send twice.

CREATE TABLE outbox (
    id              bigserial   PRIMARY KEY,
    -- 'alert' (webhook receiver) or 'github' (REST API as the GitHub App).
    channel         text        NOT NULL CHECK (channel IN ('alert', 'github')),
    -- What the message is, e.g. 'finding', 'check-run', 'comment', 'decision-reply'.
    purpose         text        NOT NULL,
    dedupe_key      text        NOT NULL UNIQUE,
    -- The receiver: an alert URL, or the API path for GitHub.
    target          text        NOT NULL,
    repo            text        NOT NULL,
    repo_private    boolean     NOT NULL,
    pr_number       bigint,
    -- The log entry the message is about (a finding, a merge, a /decision comment).
    log_id          bigint      NOT NULL REFERENCES logs (id),
    seq             bigint      NOT NULL,
    -- Channel-specific routing: alert format, GitHub installation and method.
    route           jsonb       NOT NULL DEFAULT '{}',
    -- The exact bytes sent (alert signatures cover them).
    body            bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    -- Where the receiver put it (check run or comment URL), or why it was given up.
    outcome         text
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_by_repo ON outbox (repo, created_at DESC);

-- Every attempt to send a message, kept for the attempts page.
CREATE TABLE outbox_attempts (
    outbox_id   bigint      NOT NULL REFERENCES outbox (id),
    attempt     integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms integer     NOT NULL,
    -- HTTP status, when the receiver answered at all.
    status      integer,
    error       text,
    PRIMARY KEY (outbox_id, attempt)
);

-- Acknowledgements of findings are log entries (kind 'verdict-ack'); this is their
-- readable projection.
CREATE TABLE finding_acks (
    log_id       bigint      NOT NULL REFERENCES logs (id),
    seq          bigint      NOT NULL,
    finding_seq  bigint      NOT NULL,
    by_name      text        NOT NULL,
    note         text        NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (log_id, seq)
);
CREATE INDEX finding_acks_by_finding ON finding_acks (log_id, finding_seq);

ALTER TABLE outbox OWNER TO verdict_owner;
ALTER TABLE outbox_attempts OWNER TO verdict_owner;
ALTER TABLE finding_acks OWNER TO verdict_owner;
GRANT SELECT, INSERT, UPDATE ON outbox TO verdict_app;
GRANT USAGE ON SEQUENCE outbox_id_seq TO verdict_app;
GRANT SELECT, INSERT ON outbox_attempts TO verdict_app;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON finding_acks TO verdict_app;
