//! Test support: a real PostgreSQL database per test (cloned from a migrated template) and a
//! real verdict server on a free port, fed signed deliveries over HTTP.
#![allow(dead_code)]

pub mod github;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use verdict::db;
use verdict::db::local_cluster::LocalCluster;
use verdict::intake::WebhookSecrets;
use verdict::intake::signature::sign;
use verdict::server::{self, RunningServer, ServerConfig};

/// The operator token test servers accept.
pub const ADMIN_TOKEN: &str = "test-operator-token";

pub const SECRET: &str = "test-webhook-secret";

/// The server every test database lives on: `DATABASE_URL`, or a private cluster under
/// target/ started from the installed PostgreSQL binaries. Never silently skipped.
pub fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return url;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("postgres");
        match LocalCluster::start(&dir) {
            Ok(cluster) => cluster.url("postgres"),
            Err(err) => panic!(
                "the tests need PostgreSQL: set DATABASE_URL to a server where this user may \
                 create databases and roles, or install the PostgreSQL server binaries. {err}"
            ),
        }
    })
    .clone()
}

fn with_database(url: &str, database: &str) -> String {
    let mut u = url::Url::parse(url).expect("DATABASE_URL is a URL");
    u.set_path(&format!("/{database}"));
    u.to_string()
}

/// Name of the migrated template for the current migrations.
fn template_name() -> String {
    let mut h = Sha256::new();
    for m in db::MIGRATOR.iter() {
        h.update(m.version.to_be_bytes());
        h.update(&m.checksum);
    }
    format!("verdict_tmpl_{}", &hex::encode(h.finalize())[..16])
}

/// How a test server is set up.
pub struct ServerOptions {
    /// The checkpoint signing key; `None`: the database's own (one per `TestDb`, so a restart
    /// keeps signing with the same key).
    pub signer: Option<std::sync::Arc<verdict::log::checkpoint::CheckpointSigner>>,
    /// The key the checkpoints are handed over from (`--rotate-key`).
    pub rotate_from: Option<std::sync::Arc<verdict::log::checkpoint::CheckpointSigner>>,
    pub secrets: Vec<String>,
    pub judge: bool,
    pub feedback: verdict::feedback::FeedbackConfig,
    pub limits: verdict::web::serving::Limits,
    pub access: verdict::web::access::AccessConfig,
    /// What puts PRs in features; `None`: `feature:` labels, no tracker keys.
    pub features: Option<verdict::projections::features::FeatureLinking>,
    /// Sign checkpoints (on unless a test needs a stuck signer).
    pub build_tree: bool,
    /// Serve `/metrics` on a second address too.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            signer: None,
            rotate_from: None,
            secrets: vec![SECRET.to_string()],
            judge: false,
            feedback: Default::default(),
            limits: Default::default(),
            access: verdict::web::access::AccessConfig {
                admin_token: Some(ADMIN_TOKEN.into()),
                ..Default::default()
            },
            features: None,
            build_tree: true,
            metrics_listen: None,
        }
    }
}

/// The test servers' `verdict_runtime` password (local connections use trust auth anyway).
const RUNTIME_PASSWORD: &str = "verdict-test-runtime";

/// A fresh, migrated database, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    /// URL of this database as the (superuser) admin: may migrate and bypass triggers.
    pub url: String,
    /// The key every server on this database signs checkpoints with (unless told otherwise).
    pub signer: std::sync::Arc<verdict::log::checkpoint::CheckpointSigner>,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin = admin_url();
        let template = template_name();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test PostgreSQL at {admin}: {e}"));
        // Serialize template creation and cloning across test processes.
        conn.execute("SELECT pg_advisory_lock(7665, 1)")
            .await
            .unwrap();
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&template)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if !exists {
            // Templates of older migrations are of no further use.
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname::text FROM pg_database WHERE datname LIKE 'verdict\\_tmpl\\_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for old in stale {
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {old} WITH (FORCE)"
                )))
                .await
                .unwrap();
            }
            let building = format!("{template}_building");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {building} WITH (FORCE)"
            )))
            .await
            .unwrap();
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
                .await
                .unwrap();
            db::migrate(&with_database(&admin, &building))
                .await
                .expect("migrations apply to an empty database");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {building} RENAME TO {template}"
            )))
            .await
            .unwrap();
        }
        let name = format!("verdict_test_{}", uniq());
        conn.execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .await
        .unwrap();
        conn.execute("SELECT pg_advisory_unlock(7665, 1)")
            .await
            .unwrap();
        conn.close().await.unwrap();
        TestDb {
            url: with_database(&admin, &name),
            name,
            signer: std::sync::Arc::new(
                verdict::log::checkpoint::CheckpointSigner::generate("verdict.test").unwrap(),
            ),
        }
    }

    /// A pool connected as the admin (superuser) user.
    pub async fn admin_pool(&self) -> PgPool {
        PgPool::connect(&self.url).await.unwrap()
    }

    /// A pool connected as verdict's restricted application role.
    pub async fn app_pool(&self) -> PgPool {
        db::app_pool(&self.url, 4).await.unwrap()
    }

    /// Starts a verdict server on this database, without the judge, so tests can count
    /// entries exactly.
    pub async fn server(&self, secrets: &[&str]) -> TestServer {
        self.server_with(secrets, false).await
    }

    /// Starts a verdict server that also judges and appends findings.
    pub async fn server_with_judge(&self, secrets: &[&str]) -> TestServer {
        self.server_with(secrets, true).await
    }

    async fn server_with(&self, secrets: &[&str], judge: bool) -> TestServer {
        self.server_with_feedback(secrets, judge, Default::default())
            .await
    }

    /// Starts a judging server whose findings leave through `feedback` (alerts, write-back).
    pub async fn server_with_feedback(
        &self,
        secrets: &[&str],
        judge: bool,
        feedback: verdict::feedback::FeedbackConfig,
    ) -> TestServer {
        self.server_with_limits(secrets, judge, feedback, Default::default())
            .await
    }

    /// Starts a server with its own connection and body limits.
    pub async fn server_with_limits(
        &self,
        secrets: &[&str],
        judge: bool,
        feedback: verdict::feedback::FeedbackConfig,
        limits: verdict::web::serving::Limits,
    ) -> TestServer {
        self.start(ServerOptions {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            judge,
            feedback,
            limits,
            ..ServerOptions::default()
        })
        .await
    }

    /// Starts a server whose viewers sign in through `access` (the admin token stays
    /// [`ADMIN_TOKEN`] unless `access` says otherwise).
    pub async fn server_with_access(
        &self,
        judge: bool,
        access: verdict::web::access::AccessConfig,
    ) -> TestServer {
        self.start(ServerOptions {
            judge,
            access,
            ..ServerOptions::default()
        })
        .await
    }

    /// Starts a verdict server on this database.
    pub async fn start(&self, o: ServerOptions) -> TestServer {
        self.try_start(o).await.expect("server starts")
    }

    /// The URL a server on this database logs in with: the `verdict_runtime` role, as `serve`
    /// sets it up (once per test process: roles are shared by the whole PostgreSQL server).
    pub async fn runtime_url(&self) -> String {
        static ROLE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        ROLE.get_or_init(|| async {
            verdict::db::roles::setup_runtime_role(&self.url, RUNTIME_PASSWORD)
                .await
                .expect("the verdict_runtime role can be set up");
        })
        .await;
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_username(verdict::db::roles::RUNTIME_ROLE).unwrap();
        url.set_password(Some(RUNTIME_PASSWORD)).unwrap();
        url.to_string()
    }

    /// Starts a verdict server on this database, or says why it would not start.
    pub async fn try_start(&self, o: ServerOptions) -> Result<TestServer, server::ServeError> {
        let signer = o.signer.clone().unwrap_or_else(|| self.signer.clone());
        let secrets: Vec<&str> = o.secrets.iter().map(String::as_str).collect();
        let running = server::start(ServerConfig {
            database_url: self.runtime_url().await,
            secrets: WebhookSecrets::from_list(&secrets),
            listen: "127.0.0.1:0".parse().unwrap(),
            max_connections: 8,
            features: o.features.unwrap_or_else(|| {
                verdict::projections::features::FeatureLinking::labels(
                    verdict::projections::features::DEFAULT_LABEL_PREFIX,
                )
            }),
            access: o.access,
            signer: signer.clone(),
            build_tree: o.build_tree,
            judge: o.judge,
            feedback: o.feedback,
            limits: o.limits,
            catch_up: None,
            metrics_listen: o.metrics_listen,
            rotate_from: o.rotate_from,
        })
        .await?;
        Ok(TestServer {
            base: format!("http://{}", running.addr),
            metrics_base: running.metrics_addr.map(|a| format!("http://{a}")),
            client: reqwest::Client::new(),
            running: Some(running),
            signer,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = admin_url();
        let name = self.name.clone();
        // Async drop is not a thing; a short-lived runtime on its own thread does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            })
        })
        .join();
    }
}

fn uniq() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running verdict server and a client for it.
pub struct TestServer {
    pub base: String,
    /// The scraper's address, when the server was asked for one.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    running: Option<RunningServer>,
    /// The key this server signs checkpoints with.
    pub signer: std::sync::Arc<verdict::log::checkpoint::CheckpointSigner>,
}

impl TestServer {
    /// POSTs a delivery signed with `secret` (None: no signature header).
    pub async fn deliver_signed(
        &self,
        secret: Option<&str>,
        event: &str,
        delivery: &str,
        body: &[u8],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/webhooks/github", self.base))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-GitHub-Hook-ID", "123456")
            .header("X-GitHub-Hook-Installation-Target-Type", "integration")
            .header("X-GitHub-Hook-Installation-Target-ID", "42")
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = secret {
            req = req.header("X-Hub-Signature-256", sign(secret.as_bytes(), body));
        }
        req.send().await.expect("request reaches the server")
    }

    /// POSTs a delivery signed with [`SECRET`].
    pub async fn deliver(&self, event: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
        self.deliver_signed(Some(SECRET), event, delivery, body)
            .await
    }

    /// GETs a path of this server (with `Authorization: Bearer` when `token` is given).
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request reaches the server")
    }

    /// Replays the bundled feature story (src/story.rs); every delivery must be accepted.
    pub async fn deliver_story(&self) {
        for d in verdict::story::feature_story("test") {
            let r = self.deliver(d.event, &d.delivery_id, &d.body).await;
            assert!(
                r.status().is_success(),
                "{} refused: {}",
                d.delivery_id,
                r.status()
            );
        }
    }

    /// Waits until the account's newest signed checkpoint covers `size` entries; returns it.
    pub async fn checkpoint_at_least(&self, account: &str, size: u64) -> String {
        for _ in 0..200 {
            let r = self
                .get(
                    &format!("/api/logs/{account}/checkpoint"),
                    Some(ADMIN_TOKEN),
                )
                .await;
            if r.status() == 200 {
                let note = r.text().await.unwrap();
                let n: u64 = note.lines().nth(1).unwrap().parse().unwrap();
                if n >= size {
                    return note;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no checkpoint of {account} covering {size} entries within 10 s");
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }
}

/// Every GitHub webhook example payload: (event, file path).
pub fn fixture_payloads() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github/api.github.com");
    let mut out = Vec::new();
    for event_dir in std::fs::read_dir(&root).expect("fixtures present") {
        let event_dir = event_dir.unwrap().path();
        if !event_dir.is_dir() {
            continue;
        }
        let event = event_dir.file_name().unwrap().to_str().unwrap().to_string();
        for file in std::fs::read_dir(&event_dir).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push((event.clone(), path));
            }
        }
    }
    out.sort();
    out
}

/// A file under tests/fixtures.
pub fn local_fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel),
    )
    .unwrap_or_else(|e| panic!("tests/fixtures/{rel}: {e}"))
}

/// One fixture's bytes.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github/api.github.com")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `body` (a JSON object) made distinct by one extra member: each of GitHub's deliveries has a
/// body of its own, and sending the same bytes under a new delivery id is a replay.
pub fn variant(body: &[u8], n: u64) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).expect("a JSON fixture");
    v["verdict_test_variant"] = serde_json::json!(n);
    serde_json::to_vec(&v).unwrap()
}

/// The story on a server that also judges: returns once its three findings are recorded in
/// the log and projected.
pub async fn judged_story_server() -> (TestDb, TestServer) {
    let db = TestDb::new().await;
    let server = db.server_with_judge(&[SECRET]).await;
    server.deliver_story().await;
    let pool = db.app_pool().await;
    for _ in 0..200 {
        project_all(&pool).await;
        // The story's three findings, and the judge done: nothing pending, every entry
        // (its own findings and any withdrawal included) read and projected.
        let (found, pending, unjudged): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM findings WHERE withdrawn_seq IS NULL),
                    (SELECT count(*) FROM judge_pending),
                    (SELECT coalesce(sum(s.size - coalesce(j.next_seq, 0)), 0)::bigint
                       FROM (SELECT log_id, max(seq) + 1 AS size FROM log_entries GROUP BY log_id) s
                       LEFT JOIN judge_cursors j ON j.log_id = s.log_id)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if found >= 3 && pending == 0 && unjudged == 0 {
            project_all(&pool).await;
            return (db, server);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the judge did not record the story's findings within 10 s");
}

/// Runs the `verdict` binary; returns whether it succeeded and everything it printed.
pub fn verdict_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .envs(env.iter().copied())
        .env("VERDICT_LOG", "warn")
        .output()
        .expect("the verdict binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `body` moved to another account's repository `owner/name` (its own log).
pub fn in_repository(body: &[u8], owner: &str, name: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).expect("a JSON fixture");
    v["repository"]["full_name"] = serde_json::json!(format!("{owner}/{name}"));
    v["repository"]["name"] = serde_json::json!(name);
    v["repository"]["owner"]["login"] = serde_json::json!(owner);
    if let Some(o) = v.as_object_mut() {
        o.remove("organization");
        o.remove("installation");
    }
    serde_json::to_vec(&v).unwrap()
}

/// Projects every log entry (alongside the server's own background projector) and returns
/// once nothing is left to project.
pub async fn project_all(pool: &PgPool) {
    let projector = verdict::projections::projector::Projector::new(
        pool.clone(),
        verdict::projections::features::DEFAULT_LABEL_PREFIX,
    );
    for _ in 0..200 {
        projector.catch_up().await.unwrap();
        if verdict::projections::projector::backlog(pool)
            .await
            .unwrap()
            == 0
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the projections did not catch up with the log within 5 s");
}

/// A browser for a test server: keeps its cookies, follows no redirects (tests look at them),
/// and sends forms from verdict's own origin as a browser would.
pub struct Browser {
    pub base: String,
    client: reqwest::Client,
    cookies: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// The last GitHub authorization URL a sign-in was sent to.
    pub last_authorize: std::sync::Mutex<Option<url::Url>>,
}

impl Browser {
    pub fn new(server: &TestServer) -> Browser {
        Browser {
            base: server.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Default::default(),
            last_authorize: Default::default(),
        }
    }

    /// Posts JSON with the session's CSRF token in `X-CSRF-Token`, as a script in verdict's
    /// page would.
    pub async fn post_json(
        &self,
        path: &str,
        csrf: Option<&str>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .json(body);
        if let Some(t) = csrf {
            r = r.header("x-csrf-token", t);
        }
        let r = r.send().await.unwrap();
        self.keep(&r);
        r
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, response: &reqwest::Response) {
        for c in response.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if v.is_empty() || attrs.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_string(), v.to_string());
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    pub fn forget_cookies(&self) {
        self.cookies.lock().unwrap().clear();
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    /// Posts a form as verdict's own page would (its Origin), with `pairs` as the fields.
    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("origin", &self.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    /// The CSRF token the page at `path` puts in its forms.
    pub async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await.text().await.unwrap();
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("the page has a form with a CSRF token");
        let rest = &page[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// Starts signing in (`/login?next=`), lets GitHub authorize `person`, and comes back to
    /// the callback; returns the callback's answer.
    pub async fn sign_in(
        &self,
        github: &github::FakeGitHub,
        person: &github::Person,
        next: &str,
    ) -> reqwest::Response {
        let code = person.code();
        self.sign_in_with(github, next, &[("code", code.as_str())])
            .await
    }

    /// Like [`Browser::sign_in`], with GitHub sending `answer` back (a code, or an error).
    pub async fn sign_in_with(
        &self,
        github: &github::FakeGitHub,
        next: &str,
        answer: &[(&str, &str)],
    ) -> reqwest::Response {
        let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let start = self.get(&format!("/login?next={next}")).await;
        assert_eq!(start.status(), 303, "/login redirects to GitHub");
        let to = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
        assert!(to.as_str().starts_with(&github.uri()), "{to}");
        assert_eq!(to.path(), "/login/oauth/authorize");
        let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
        let state = q["state"].clone();
        *self.last_authorize.lock().unwrap() = Some(to.clone());
        let mut back: Vec<(&str, &str)> = answer.to_vec();
        back.push(("state", &state));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(back)
            .finish();
        self.get(&format!("/login/callback?{query}")).await
    }
}
