//! The login role `serve` runs as. Tables belong to `verdict_owner`; the server's connections
//! may only SELECT and INSERT log tables (`verdict_app`). Switching to `verdict_app` with
//! `SET ROLE` is not enough when the login itself is a superuser or the owner: `RESET ROLE` is
//! one statement away. So the server logs in as `verdict_runtime`, a role that is neither, and
//! holds `verdict_app`'s privileges and nothing more.

use sqlx::{Connection, Executor, PgConnection};

use super::{DbError, options, redact};

/// The login role the server's connections use.
pub const RUNTIME_ROLE: &str = "verdict_runtime";

/// Who a database URL logs in as, and what that allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub superuser: bool,
    /// A member of `verdict_owner`: could alter or drop the log tables and their triggers.
    pub owner: bool,
}

impl Login {
    /// What is wrong with running the server as this login, if anything.
    pub fn warning(&self) -> Option<String> {
        match (self.superuser, self.owner) {
            (true, _) => Some(format!(
                "the server's database login {:?} is a superuser: `RESET ROLE` and disabling the \
                 log's triggers are one statement away. Run `verdict migrate` and use the \
                 {RUNTIME_ROLE} URL it prints as VERDICT_APP_DATABASE_URL",
                self.user
            )),
            (false, true) => Some(format!(
                "the server's database login {:?} owns the log tables: it could drop their \
                 triggers. Use the {RUNTIME_ROLE} URL `verdict migrate` prints as \
                 VERDICT_APP_DATABASE_URL",
                self.user
            )),
            _ => None,
        }
    }
}

/// Who `url` logs in as.
pub async fn login(url: &str) -> Result<Login, DbError> {
    let mut conn = connect(url).await?;
    let (user, superuser, owner): (String, bool, bool) = sqlx::query_as(
        "SELECT session_user::text, r.rolsuper,
                pg_has_role(session_user, 'verdict_owner', 'MEMBER')
           FROM pg_roles r WHERE r.rolname = session_user",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(Login {
        user,
        superuser,
        owner,
    })
}

async fn connect(url: &str) -> Result<PgConnection, DbError> {
    PgConnection::connect_with(&options(url)?)
        .await
        .map_err(|source| DbError::Connect {
            url: redact(url),
            source,
        })
}

/// A PostgreSQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Creates (or updates) [`RUNTIME_ROLE`] on the server of `admin_url` with `password`, a member
/// of `verdict_app` and nothing else, and returns the URL the server logs in with. The admin
/// must be allowed to create roles (a superuser, or CREATEROLE).
pub async fn setup_runtime_role(admin_url: &str, password: &str) -> Result<String, DbError> {
    let sql = format!(
        "DO $$
         BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{RUNTIME_ROLE}') THEN
                 BEGIN
                     CREATE ROLE {RUNTIME_ROLE} LOGIN;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END;
             END IF;
         END $$;
         ALTER ROLE {RUNTIME_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
             NOBYPASSRLS INHERIT PASSWORD {};
         GRANT verdict_app TO {RUNTIME_ROLE};",
        literal(password)
    );
    // Roles are shared by every database of the server: two setups at once may collide
    // ("tuple concurrently updated"); the second try finds the work done.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut conn = connect(admin_url).await?;
        let result = conn.execute(sqlx::AssertSqlSafe(sql.clone())).await;
        conn.close().await?;
        match result {
            Ok(_) => break,
            Err(e) if attempt < 5 => {
                tracing::debug!(error = %e, "setting up {RUNTIME_ROLE} again");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut url = url::Url::parse(admin_url).map_err(|e| DbError::Connect {
        url: redact(admin_url),
        source: sqlx::Error::Configuration(Box::new(e)),
    })?;
    let _ = url.set_username(RUNTIME_ROLE);
    let _ = url.set_password(Some(password));
    Ok(url.to_string())
}

/// The runtime role's password kept in `data_dir` (readable by its owner only), made on first
/// use. Returns whether it was made now.
pub fn kept_password(data_dir: &std::path::Path) -> std::io::Result<(String, bool)> {
    let path = data_dir.join("runtime-database-password");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok((text.trim().to_string(), false));
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let password = hex::encode(bytes);
    std::fs::create_dir_all(data_dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, password.as_bytes())?;
            Ok((password, true))
        }
        // Another process made it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((std::fs::read_to_string(&path)?.trim().to_string(), false))
        }
        Err(e) => Err(e),
    }
}

/// The URL `serve` logs in with: `app_url` (VERDICT_APP_DATABASE_URL) when given; else
/// [`RUNTIME_ROLE`] set up through `admin_url` with `password` (VERDICT_APP_DATABASE_PASSWORD)
/// or the one kept in `data_dir`; else, when the admin may not create roles, `admin_url`
/// itself (the caller warns).
pub async fn runtime_url(
    admin_url: &str,
    app_url: Option<&str>,
    password: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<String, DbError> {
    if let Some(url) = app_url {
        return Ok(url.to_string());
    }
    let password = match password {
        Some(p) => p.to_string(),
        None => {
            kept_password(data_dir)
                .map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?
                .0
        }
    };
    match setup_runtime_role(admin_url, &password).await {
        Ok(url) => Ok(url),
        Err(DbError::Sql(e)) => {
            tracing::warn!(error = %e, "could not set up the {RUNTIME_ROLE} login role");
            Ok(admin_url.to_string())
        }
        Err(e) => Err(e),
    }
}

/// Fails unless the database at `url` has every migration this build knows (for a server
/// that runs with VERDICT_APP_DATABASE_URL alone and so cannot migrate).
pub async fn ensure_migrated(url: &str) -> Result<(), DbError> {
    let mut conn = connect(url).await?;
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .unwrap_or(None);
    conn.close().await?;
    let latest = super::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    if applied.unwrap_or(0) < latest {
        return Err(DbError::NotMigrated {
            applied: applied.unwrap_or(0),
            latest,
        });
    }
    Ok(())
}
