//! Connecting to PostgreSQL: the database to use, its migrations and the restricted role the
//! server runs as.

pub mod local_cluster;
pub mod roles;

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The role the server's connections switch to: it may only SELECT and INSERT log tables.
pub const APP_ROLE: &str = "verdict_app";

/// Failures setting up the database; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "cannot connect to PostgreSQL at {url}: {source}. Check that the server runs and DATABASE_URL is right"
    )]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Cluster(#[from] local_cluster::ClusterError),
    #[error(
        "the database is at migration {applied}, this verdict needs {latest}: run `verdict migrate` \
         with DATABASE_URL (a user that may migrate), or give serve DATABASE_URL too"
    )]
    NotMigrated { applied: i64, latest: i64 },
}

/// `url` with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn options(url: &str) -> Result<PgConnectOptions, DbError> {
    url.parse::<PgConnectOptions>()
        .map(|o| loopback_without_tls(url, o.disable_statement_logging()))
        .map_err(|source| DbError::Connect {
            url: redact(url),
            source,
        })
}

/// A server on this machine is reached without TLS unless the URL (`sslmode=`) or
/// `PGSSLMODE` asks for a mode: TLS over loopback protects nothing, and sqlx 0.9's TLS stream
/// leaves Nagle's algorithm on (launchbadge/sqlx#4335), which costs about 40 ms per round
/// trip and cut intake to a fifth in the benchmark (docs/benchmarks.md).
fn loopback_without_tls(url: &str, options: PgConnectOptions) -> PgConnectOptions {
    let asked = url.to_ascii_lowercase().contains("sslmode=")
        || url.to_ascii_lowercase().contains("ssl-mode=")
        || std::env::var_os("PGSSLMODE").is_some();
    let host = options.get_host();
    let loopback = host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback && !asked {
        options.ssl_mode(sqlx::postgres::PgSslMode::Disable)
    } else {
        options
    }
}

/// Applies pending migrations, connecting as the (owner) user in `url`.
pub async fn migrate(url: &str) -> Result<(), DbError> {
    let mut conn = PgConnection::connect_with(&options(url)?)
        .await
        .map_err(|source| DbError::Connect {
            url: redact(url),
            source,
        })?;
    MIGRATOR.run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// The server's pool: every connection runs as [`APP_ROLE`], so even a bug in verdict cannot
/// UPDATE or DELETE the log, and with `synchronous_commit = on` whatever the server's default,
/// so a commit (and the 2xx that follows it) always waits for the WAL flush. Acquiring gives
/// up quickly so GitHub gets a 503 well within its 10-second timeout when the database is
/// down.
pub async fn app_pool(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("SET ROLE verdict_app; SET synchronous_commit = on")
                    .await?;
                Ok(())
            })
        })
        .connect_with(options(url)?)
        .await
        .map_err(|source| DbError::Connect {
            url: redact(url),
            source,
        })?;
    Ok(pool)
}

/// Creates database `name` on the server at `admin_url` unless it exists.
pub async fn create_database_if_missing(admin_url: &str, name: &str) -> Result<(), DbError> {
    let mut conn = PgConnection::connect_with(&options(admin_url)?)
        .await
        .map_err(|source| DbError::Connect {
            url: redact(admin_url),
            source,
        })?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
    }
    conn.close().await?;
    Ok(())
}

/// Where verdict's database is: the given URL, or a private cluster it started.
pub struct Database {
    /// URL of verdict's database, connecting as a user that may migrate.
    pub url: String,
    /// The private cluster, when verdict started one; stopping it is the caller's choice.
    pub cluster: Option<local_cluster::LocalCluster>,
}

/// Whether [`open`] applies migrations to a database given by URL (a private cluster's
/// database is always migrated: verdict owns it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    Apply,
    /// For read-only commands such as `verify`, which may run as a user that cannot migrate.
    LeaveAlone,
}

/// Resolves `DATABASE_URL`, or starts (or reuses) a private cluster in `data_dir`, creates the
/// `verdict` database there, and migrates it.
pub async fn open(
    database_url: Option<&str>,
    data_dir: &std::path::Path,
    migrations: Migrations,
) -> Result<Database, DbError> {
    let db = match database_url {
        Some(url) => Database {
            url: url.to_string(),
            cluster: None,
        },
        None => {
            let cluster = local_cluster::LocalCluster::start(&data_dir.join("postgres"))?;
            create_database_if_missing(&cluster.url("postgres"), "verdict").await?;
            Database {
                url: cluster.url("verdict"),
                cluster: Some(cluster),
            }
        }
    };
    if migrations == Migrations::Apply || db.cluster.is_some() {
        migrate(&db.url).await?;
    }
    Ok(db)
}
