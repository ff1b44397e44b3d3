-- Completeness of the record: catching up on deliveries GitHub failed to make, and reading
-- the history from before the App was installed.
--
-- What verdict asked GitHub and where it got to is operational state, kept here; what it
-- found is written to the log (`verdict-reconciliation` entries, `github-api` entries), and
-- `reconciliations` is the projection of those entries that /coverage reads.

-- How far GitHub's list of the App's deliveries has been reconciled with the log.
CREATE TABLE catch_up_state (
    singleton          boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    reconciled_through timestamptz NOT NULL
);

-- Redeliveries verdict asked GitHub for: each GUID once (GitHub's own recipe re-requests
-- every GUID without an "OK" attempt; verdict asks again only if one stays missing).
CREATE TABLE redelivery_requests (
    guid            text        PRIMARY KEY,
    -- GitHub's id of the attempt redelivered (the newest of the GUID's attempts).
    attempt_id      bigint      NOT NULL,
    event           text,
    installation_id bigint,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    -- 'requested' (GitHub accepted the request) or 'failed' (it did not; `error` says why).
    outcome         text        NOT NULL CHECK (outcome IN ('requested', 'failed')),
    error           text
);

-- The projection of `verdict-reconciliation` entries.
CREATE TABLE reconciliations (
    log_id         bigint      NOT NULL REFERENCES logs (id),
    seq            bigint      NOT NULL,
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    listed         integer     NOT NULL,
    already_logged integer     NOT NULL,
    requested      text[]      NOT NULL DEFAULT '{}',
    failed         text[]      NOT NULL DEFAULT '{}',
    gap_start      timestamptz,
    gap_end        timestamptz,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (log_id, seq)
);

-- Backfills of repositories' history: one job per repository, resumable (what it appends is
-- idempotent; `next_page` is where listing the pull requests resumes).
CREATE TABLE backfill_jobs (
    repo            text        PRIMARY KEY,
    installation_id bigint      NOT NULL,
    since           timestamptz,
    state           text        NOT NULL DEFAULT 'queued'
                                CHECK (state IN ('queued', 'running', 'done', 'failed')),
    pulls_seen      integer     NOT NULL DEFAULT 0,
    pulls_done      integer     NOT NULL DEFAULT 0,
    objects_appended integer    NOT NULL DEFAULT 0,
    next_page       text,
    -- Findings on this history alert and write back too (they do not by default).
    alert_history   boolean     NOT NULL DEFAULT false,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- How far the backfill runner has looked for `installation` deliveries that queue jobs.
CREATE TABLE backfill_cursors (
    log_id   bigint PRIMARY KEY REFERENCES logs (id),
    next_seq bigint NOT NULL DEFAULT 0
);

ALTER TABLE catch_up_state OWNER TO verdict_owner;
ALTER TABLE backfill_cursors OWNER TO verdict_owner;
ALTER TABLE redelivery_requests OWNER TO verdict_owner;
ALTER TABLE reconciliations OWNER TO verdict_owner;
ALTER TABLE backfill_jobs OWNER TO verdict_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON catch_up_state, redelivery_requests, backfill_jobs,
    backfill_cursors TO verdict_app;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON reconciliations TO verdict_app;
