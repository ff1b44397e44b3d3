//! Sessions in PostgreSQL (not in the log). A session is named by 256 random bits that only the
//! browser's cookie holds; the table keeps their SHA-256. Idle sessions end after 8 hours, all
//! after 7 days, and sign-out ends one at once. A person's GitHub tokens are sealed with
//! ChaCha20-Poly1305 under a key derived from the App's client secret, so neither a copy of the
//! table nor the logs hold a usable token, and they never reach the browser.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Row};

use crate::github::sign_in::{GitHubUser, Tokens};

/// The cookie naming a session.
pub const SESSION_COOKIE: &str = "verdict_session";
/// The cookie binding a sign-in in progress to the browser that started it.
pub const SIGN_IN_COOKIE: &str = "verdict_sign_in";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::hours(8);
/// No session lives longer.
pub const ABSOLUTE: Duration = Duration::days(7);
/// How long the set of readable repositories is trusted before GitHub is asked again.
pub const READABLE_FRESH: Duration = Duration::minutes(5);
/// How long a sign-in may take at GitHub.
pub const SIGN_IN_VALID: Duration = Duration::minutes(10);

/// 256 random bits, URL-safe base64 (cookie values, `state`, CSRF tokens, PKCE verifiers).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    B64URL.encode(bytes)
}

/// What the database keeps of a secret token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// Seals GitHub tokens at rest.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    /// The key is derived from the App's client secret: rotating the secret ends every
    /// person's session (their tokens no longer open), which is what rotating it is for.
    pub fn new(client_secret: &str) -> Sealer {
        let key: [u8; 32] = Sha256::new()
            .chain_update(b"verdict/session-tokens/v1\0")
            .chain_update(client_secret.as_bytes())
            .finalize()
            .into();
        Sealer {
            cipher: ChaCha20Poly1305::new(&Key::from(key)),
        }
    }

    /// Nonce (12 random bytes) followed by the ciphertext.
    pub fn seal(&self, plain: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the operating system provides randomness");
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), plain.as_bytes())
            .expect("sealing a short token cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Option<String> {
        let (nonce, ciphertext) = sealed.split_at_checked(12)?;
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = self.cipher.decrypt(&Nonce::from(nonce), ciphertext).ok()?;
        String::from_utf8(plain).ok()
    }
}

/// A session as stored, its tokens opened.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: [u8; 32],
    /// `person` or `operator`.
    pub kind: String,
    pub login: Option<String>,
    pub user_id: Option<i64>,
    pub tokens: Option<Tokens>,
    /// Lower-case `owner/name`s.
    pub readable: Vec<String>,
    pub readable_at: Option<DateTime<Utc>>,
    pub csrf: String,
    pub last_seen_at: DateTime<Utc>,
}

impl Session {
    /// The access token has expired (or will within a minute).
    pub fn access_due(&self, now: DateTime<Utc>) -> bool {
        self.tokens
            .as_ref()
            .and_then(|t| t.access_expires_at)
            .is_some_and(|at| at <= now + Duration::minutes(1))
    }

    /// The readable set is older than [`READABLE_FRESH`].
    pub fn readable_due(&self, now: DateTime<Utc>) -> bool {
        self.kind == "person" && self.readable_at.is_none_or(|at| at + READABLE_FRESH <= now)
    }
}

/// A sign-in in progress, taken (once) when GitHub sends the browser back.
pub struct SignInAttempt {
    pub browser_hash: [u8; 32],
    pub pkce_verifier: String,
    pub next_path: String,
    pub created_at: DateTime<Utc>,
}

/// The sessions table and its cookies.
#[derive(Clone)]
pub struct Sessions {
    pool: PgPool,
    /// `None` without sign-in: only operator sessions exist then.
    sealer: Option<Sealer>,
    /// Cookies are `Secure` when verdict's public URL is https.
    pub secure: bool,
}

const COLUMNS: &str = "id_hash, kind, github_login, github_user_id, access_token,
    access_expires_at, refresh_token, refresh_expires_at, readable, readable_at, csrf_token,
    last_seen_at";

impl Sessions {
    pub fn new(pool: PgPool, sealer: Option<Sealer>, secure: bool) -> Sessions {
        Sessions {
            pool,
            sealer,
            secure,
        }
    }

    fn seal(&self, plain: &str) -> Option<Vec<u8>> {
        self.sealer.as_ref().map(|s| s.seal(plain))
    }

    fn read_row(&self, r: &sqlx::postgres::PgRow) -> Session {
        let open = |column: &str| {
            r.get::<Option<Vec<u8>>, _>(column)
                .and_then(|sealed| self.sealer.as_ref()?.open(&sealed))
        };
        let tokens = open("access_token").map(|access_token| Tokens {
            access_token,
            access_expires_at: r.get("access_expires_at"),
            refresh_token: open("refresh_token"),
            refresh_expires_at: r.get("refresh_expires_at"),
        });
        Session {
            id_hash: r.get::<Vec<u8>, _>("id_hash").try_into().unwrap_or([0; 32]),
            kind: r.get("kind"),
            login: r.get("github_login"),
            user_id: r.get("github_user_id"),
            tokens,
            readable: r.get("readable"),
            readable_at: r.get("readable_at"),
            csrf: r.get("csrf_token"),
            last_seen_at: r.get("last_seen_at"),
        }
    }

    /// Starts a person's session; returns the cookie's value.
    pub async fn create_person(
        &self,
        user: &GitHubUser,
        tokens: &Tokens,
        readable: &[String],
    ) -> sqlx::Result<String> {
        let id = random_token();
        sqlx::query(
            "INSERT INTO sessions (id_hash, kind, github_login, github_user_id, access_token,
                 access_expires_at, refresh_token, refresh_expires_at, readable, readable_at,
                 csrf_token)
             VALUES ($1, 'person', $2, $3, $4, $5, $6, $7, $8, now(), $9)",
        )
        .bind(&token_hash(&id)[..])
        .bind(&user.login)
        .bind(user.id)
        .bind(self.seal(&tokens.access_token))
        .bind(tokens.access_expires_at)
        .bind(tokens.refresh_token.as_deref().and_then(|t| self.seal(t)))
        .bind(tokens.refresh_expires_at)
        .bind(lower(readable))
        .bind(random_token())
        .execute(&self.pool)
        .await?;
        self.forget_expired().await?;
        Ok(id)
    }

    /// Starts an operator's session (the admin token, entered once); returns the cookie's value.
    pub async fn create_operator(&self) -> sqlx::Result<String> {
        let id = random_token();
        sqlx::query("INSERT INTO sessions (id_hash, kind, csrf_token) VALUES ($1, 'operator', $2)")
            .bind(&token_hash(&id)[..])
            .bind(random_token())
            .execute(&self.pool)
            .await?;
        self.forget_expired().await?;
        Ok(id)
    }

    /// The live session a cookie names (not idle too long, not too old, not ended), marked as
    /// seen (at most once a minute, to keep page views from writing).
    pub async fn find(&self, cookie: &str) -> sqlx::Result<Option<Session>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sessions
              WHERE id_hash = $1 AND last_seen_at > now() - make_interval(secs => $2)
                AND created_at > now() - make_interval(secs => $3)"
        )))
        .bind(&token_hash(cookie)[..])
        .bind(IDLE.num_seconds() as f64)
        .bind(ABSOLUTE.num_seconds() as f64)
        .fetch_optional(&self.pool)
        .await?;
        let Some(session) = row.map(|r| self.read_row(&r)) else {
            return Ok(None);
        };
        if session.last_seen_at < Utc::now() - Duration::minutes(1) {
            sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE id_hash = $1")
                .bind(&session.id_hash[..])
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(session))
    }

    /// The session, locked until `tx` ends (so one request at a time renews its tokens:
    /// GitHub's refresh tokens are single-use).
    pub async fn lock(
        &self,
        tx: &mut PgConnection,
        id_hash: &[u8; 32],
    ) -> sqlx::Result<Option<Session>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sessions WHERE id_hash = $1 FOR UPDATE"
        )))
        .bind(&id_hash[..])
        .fetch_optional(&mut *tx)
        .await?;
        Ok(row.map(|r| self.read_row(&r)))
    }

    pub async fn store_tokens(
        &self,
        tx: &mut PgConnection,
        id_hash: &[u8; 32],
        tokens: &Tokens,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE sessions SET access_token = $2, access_expires_at = $3, refresh_token = $4,
                    refresh_expires_at = $5 WHERE id_hash = $1",
        )
        .bind(&id_hash[..])
        .bind(self.seal(&tokens.access_token))
        .bind(tokens.access_expires_at)
        .bind(tokens.refresh_token.as_deref().and_then(|t| self.seal(t)))
        .bind(tokens.refresh_expires_at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Records the readable set read at `at` (or only when to read it again, with `None`).
    pub async fn store_readable(
        &self,
        tx: &mut PgConnection,
        id_hash: &[u8; 32],
        readable: Option<&[String]>,
        at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE sessions SET readable = coalesce($2, readable), readable_at = $3
              WHERE id_hash = $1",
        )
        .bind(&id_hash[..])
        .bind(readable.map(lower))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Ends a session at once.
    pub async fn end(&self, conn: &mut PgConnection, id_hash: &[u8; 32]) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(&id_hash[..])
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Ends the session a cookie names, if any.
    pub async fn end_cookie(&self, cookie: &str) -> sqlx::Result<()> {
        let mut conn = self.pool.acquire().await?;
        self.end(&mut conn, &token_hash(cookie)).await
    }

    async fn forget_expired(&self) -> sqlx::Result<()> {
        sqlx::query(
            "DELETE FROM sessions WHERE last_seen_at < now() - make_interval(secs => $1)
                OR created_at < now() - make_interval(secs => $2);
             ",
        )
        .bind(IDLE.num_seconds() as f64)
        .bind(ABSOLUTE.num_seconds() as f64)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM sign_in_attempts WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(SIGN_IN_VALID.num_seconds() as f64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remembers a sign-in that goes to GitHub with `state`, started in the browser holding
    /// `browser` in its sign-in cookie.
    pub async fn start_sign_in(
        &self,
        state: &str,
        browser: &str,
        pkce_verifier: &str,
        next_path: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO sign_in_attempts (state_hash, browser_hash, pkce_verifier, next_path)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&token_hash(state)[..])
        .bind(&token_hash(browser)[..])
        .bind(pkce_verifier)
        .bind(next_path)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the sign-in `state` names: it can be taken once.
    pub async fn take_sign_in(&self, state: &str) -> sqlx::Result<Option<SignInAttempt>> {
        let row = sqlx::query(
            "DELETE FROM sign_in_attempts WHERE state_hash = $1
             RETURNING browser_hash, pkce_verifier, next_path, created_at",
        )
        .bind(&token_hash(state)[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| SignInAttempt {
            browser_hash: r
                .get::<Vec<u8>, _>("browser_hash")
                .try_into()
                .unwrap_or([0; 32]),
            pkce_verifier: r.get("pkce_verifier"),
            next_path: r.get("next_path"),
            created_at: r.get("created_at"),
        }))
    }

    /// The `Set-Cookie` value carrying a session.
    pub fn cookie(&self, id: &str) -> String {
        format!(
            "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            ABSOLUTE.num_seconds(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value binding a sign-in to this browser for ten minutes.
    pub fn sign_in_cookie(&self, browser: &str) -> String {
        format!(
            "{SIGN_IN_COOKIE}={browser}; Path=/login; HttpOnly; SameSite=Lax; Max-Age={}{}",
            SIGN_IN_VALID.num_seconds(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` values that remove a cookie.
    pub fn cleared(&self, name: &str, path: &str) -> String {
        format!(
            "{name}=; Path={path}; HttpOnly; SameSite=Lax; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

fn lower(names: &[String]) -> Vec<String> {
    names.iter().map(|n| n.to_ascii_lowercase()).collect()
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie_value<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_with_the_same_secret_and_are_not_readable() {
        let sealer = Sealer::new("client-secret");
        let sealed = sealer.seal("ghu_token");
        assert!(!String::from_utf8_lossy(&sealed).contains("ghu_token"));
        assert_eq!(sealer.open(&sealed).as_deref(), Some("ghu_token"));
        assert_ne!(sealed, sealer.seal("ghu_token"), "a fresh nonce each time");
        assert_eq!(Sealer::new("other-secret").open(&sealed), None);
        let mut tampered = sealed.clone();
        tampered[15] ^= 1;
        assert_eq!(sealer.open(&tampered), None);
    }

    #[test]
    fn tokens_are_256_bits_and_pkce_is_s256() {
        let t = random_token();
        assert_eq!(B64URL.decode(&t).unwrap().len(), 32);
        assert_ne!(t, random_token());
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
