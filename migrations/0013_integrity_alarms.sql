-- Integrity alarms. Before it signs, the tree builder checks that the entries it is about to
-- cover hash and chain correctly and that the tree it extends is the one its newest checkpoint
-- signed. When a check fails it signs nothing for that log, keeps accepting deliveries, and
-- says so here: /healthz answers 503 naming the log and the problem, and /api/logs shows it.
-- The builder checks again every cycle, so a row deleted while the problem stands comes back;
-- it clears the row itself once the log checks out again (missing tree nodes rebuilt, say).
CREATE TABLE integrity_alarms (
    log_id       bigint PRIMARY KEY REFERENCES logs (id),
    problem      text        NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE integrity_alarms OWNER TO verdict_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON integrity_alarms TO verdict_app;

-- A server that logs in with VERDICT_APP_DATABASE_URL alone cannot migrate; it checks that the
-- database has every migration it needs before serving.
GRANT SELECT ON _sqlx_migrations TO verdict_app;
