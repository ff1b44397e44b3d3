-- Sign-in with GitHub. Sessions are not part of the log: they are who is looking, not what
-- happened. Each session is named by a random 256-bit id that only the browser's cookie holds;
-- the database keeps its SHA-256, so a copy of this table signs nobody in. The person's GitHub
-- tokens are kept sealed (ChaCha20-Poly1305 under a key derived from the App's client secret)
-- and never leave the server.

CREATE TABLE sessions (
    id_hash            bytea       PRIMARY KEY CHECK (length(id_hash) = 32),
    -- 'person' (signed in with GitHub) or 'operator' (the admin token, entered once).
    kind               text        NOT NULL CHECK (kind IN ('person', 'operator')),
    github_login       text,
    github_user_id     bigint,
    access_token       bytea,
    access_expires_at  timestamptz,
    refresh_token      bytea,
    refresh_expires_at timestamptz,
    -- Lower-case owner/name of every repository GitHub lets this person read through the
    -- App's installations, as last read, and when.
    readable           text[]      NOT NULL DEFAULT '{}',
    readable_at        timestamptz,
    -- Every form posted with this session must carry it.
    csrf_token         text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_seen_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'operator' OR (github_login IS NOT NULL AND github_user_id IS NOT NULL))
);
CREATE INDEX sessions_by_last_seen ON sessions (last_seen_at);

-- A sign-in on its way through GitHub: the OAuth `state` (hashed), the browser it was started
-- in (the hash of a cookie set then), the PKCE verifier and where to return. Used once, valid
-- ten minutes.
CREATE TABLE sign_in_attempts (
    state_hash    bytea       PRIMARY KEY CHECK (length(state_hash) = 32),
    browser_hash  bytea       NOT NULL CHECK (length(browser_hash) = 32),
    pkce_verifier text        NOT NULL,
    next_path     text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE sessions OWNER TO verdict_owner;
ALTER TABLE sign_in_attempts OWNER TO verdict_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, sign_in_attempts TO verdict_app;

-- Visibility follows a repository's current state: the `private` flag of the newest
-- observation by GitHub's clock (the payload's repository.updated_at), whatever order the
-- deliveries arrive in, so a repository made private hides its whole history at once, and a
-- late old delivery cannot make it public again.
ALTER TABLE repositories ADD COLUMN private_as_of timestamptz NOT NULL DEFAULT '-infinity';
