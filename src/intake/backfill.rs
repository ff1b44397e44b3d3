//! Backfill: the history of a repository from before the App was installed, read from GitHub's
//! REST API as the installation. For every pull request: the pull request itself, its
//! reviews, review comments, comments and timeline (review requests, labels, milestones, force
//! pushes...), the check runs and combined status of its head and merge commits, and the
//! issues it closes with their comments. Each object GitHub returned is appended to the log as
//! a `github-api` entry holding its exact bytes, with the request URL and GitHub's `Date` (see
//! docs/log-format.md); its delivery id names the object and its `updated_at`, so running a
//! backfill again appends only what changed.
//!
//! A backfill is a job in `backfill_jobs` that remembers where listing the pull requests got
//! to: after a crash it resumes there (what it appended before is not appended twice). Jobs
//! are queued when the App is installed or repositories are added (`installation` and
//! `installation_repositories` deliveries), and by `verdict backfill OWNER/REPO`.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use sqlx::{PgPool, Row};

use crate::github::app::{Answer, ApiError, As, GitHubApp, Patience};
use crate::log::entry::{KIND_GITHUB_API, body_hash};
use crate::log::{AppendError, AppendOutcome, NewEntry, Sequencer};
use crate::projections::features::closing_references;

/// Pull requests read at once (each reads its own objects one request at a time; the
/// client caps requests in flight for everyone).
const PULLS_AT_ONCE: usize = 4;
/// How often the background runner looks for new installations and queued jobs.
pub const RUNNER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// Pages read at most of any one list.
const MAX_PAGES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    GitHub(#[from] ApiError),
    #[error("the database could not answer: {0}")]
    Database(#[from] sqlx::Error),
    #[error("appending to the log: {0}")]
    Append(#[from] AppendError),
    #[error("no backfill of {0} is queued; `verdict backfill OWNER/REPO` queues one")]
    NoJob(String),
}

/// One object as GitHub returned it, ready to append.
#[derive(Debug, Clone)]
pub struct ApiObject {
    /// What it is (the entry's `event`): `pull_request`, `pull_request_review`,
    /// `pull_request_review_comment`, `issue_comment`, `issue`, `issue_event`, `check_run`,
    /// `commit_status`.
    pub kind: &'static str,
    /// Stable key of the object and its `updated_at` (the entry's delivery id).
    pub key: String,
    /// The request URL it was returned for.
    pub url: String,
    /// GitHub's `Date` header of that answer.
    pub date: String,
    /// The object's exact bytes.
    pub body: Bytes,
}

/// How far a backfill has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub pulls_seen: u64,
    pub pulls_done: u64,
    pub appended: u64,
    pub requests: u64,
}

/// The members of a pull request the backfill reads to know what else to ask for.
#[derive(Deserialize)]
struct PullHead {
    number: i64,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    body: Option<String>,
    head: Option<Commit>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    #[serde(default)]
    merged_at: Option<String>,
}

#[derive(Deserialize)]
struct Commit {
    sha: Option<String>,
}

/// Members every object may key on.
#[derive(Deserialize, Default)]
struct Keyed {
    id: Option<serde_json::Value>,
    sha: Option<String>,
    node_id: Option<String>,
    updated_at: Option<String>,
    submitted_at: Option<String>,
    created_at: Option<String>,
    completed_at: Option<String>,
    started_at: Option<String>,
}

impl Keyed {
    fn key(&self, repo: &str, kind: &str, bytes: &[u8]) -> String {
        // A commit's combined status changes as its statuses do, with no time of its own.
        if kind == "commit_status" {
            let sha = self.sha.as_deref().unwrap_or_default();
            return format!(
                "api:{repo}:{kind}:{sha}:{}",
                hex::encode(&body_hash(bytes)[..8])
            );
        }
        let id = match (&self.id, &self.sha, &self.node_id) {
            (Some(serde_json::Value::Number(n)), _, _) => n.to_string(),
            (Some(serde_json::Value::String(s)), _, _) => s.clone(),
            (_, Some(sha), _) => sha.clone(),
            (_, _, Some(node)) => node.clone(),
            // No id at all: the object's own hash names it.
            _ => hex::encode(&body_hash(bytes)[..8]),
        };
        let at = [
            &self.updated_at,
            &self.submitted_at,
            &self.completed_at,
            &self.started_at,
            &self.created_at,
        ]
        .into_iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_default();
        format!("api:{repo}:{kind}:{id}:{at}")
    }
}

/// Reads history from GitHub into the log.
#[derive(Clone)]
pub struct Backfill {
    pool: PgPool,
    app: Arc<GitHubApp>,
    sequencer: Sequencer,
    patience: Patience,
}

impl Backfill {
    pub fn new(pool: PgPool, app: Arc<GitHubApp>, sequencer: Sequencer) -> Backfill {
        Backfill {
            pool,
            app,
            sequencer,
            patience: Patience::default(),
        }
    }

    /// Queues (or queues again) the backfill of `repo` through `installation`; a job already
    /// running keeps running.
    pub async fn enqueue(
        &self,
        repo: &str,
        installation: u64,
        since: Option<DateTime<Utc>>,
        alert_history: bool,
    ) -> sqlx::Result<()> {
        queue(&self.pool, repo, installation, since, alert_history).await
    }

    /// Runs the job of `repo` to its end, reporting progress as it goes.
    pub async fn run(
        &self,
        repo: &str,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<Progress, BackfillError> {
        let job = sqlx::query(
            "UPDATE backfill_jobs SET state = 'running', error = NULL, updated_at = now()
              WHERE repo = $1 RETURNING installation_id, since, next_page, pulls_seen,
                    pulls_done, objects_appended",
        )
        .bind(repo)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| BackfillError::NoJob(repo.to_string()))?;
        let installation = As::Installation(job.get::<i64, _>("installation_id") as u64);
        let since: Option<DateTime<Utc>> = job.get("since");
        let mut done = Progress {
            pulls_seen: job.get::<i32, _>("pulls_seen") as u64,
            pulls_done: job.get::<i32, _>("pulls_done") as u64,
            appended: job.get::<i32, _>("objects_appended") as u64,
            requests: 0,
        };
        let result = self
            .pages(
                repo,
                installation,
                since,
                job.get("next_page"),
                &mut done,
                &mut progress,
            )
            .await;
        // Waiting for a rate limit or for GitHub to come back: queued, to resume from where it
        // got to. Anything else needs a person: failed, saying why.
        let (state, error) = match &result {
            Ok(()) => ("done", None),
            Err(BackfillError::GitHub(
                e @ (ApiError::RateLimited { .. } | ApiError::Unreachable { .. }),
            )) => ("queued", Some(e.to_string())),
            Err(e) => ("failed", Some(e.to_string())),
        };
        sqlx::query(
            "UPDATE backfill_jobs SET state = $2, error = $3, updated_at = now() WHERE repo = $1",
        )
        .bind(repo)
        .bind(state)
        .bind(error)
        .execute(&self.pool)
        .await?;
        result.map(|()| done)
    }

    async fn pages(
        &self,
        repo: &str,
        installation: As,
        since: Option<DateTime<Utc>>,
        resume: Option<String>,
        done: &mut Progress,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<(), BackfillError> {
        let log = repo
            .split_once('/')
            .map(|(owner, _)| owner.to_ascii_lowercase())
            .unwrap_or_default();
        let mut page = Some(resume.unwrap_or_else(|| {
            format!("/repos/{repo}/pulls?state=all&sort=created&direction=asc&per_page=100")
        }));
        let mut issues_read: BTreeSet<(String, i64)> = BTreeSet::new();
        for _ in 0..MAX_PAGES {
            let Some(url) = page.take() else { break };
            let answer = self.app.fetch(installation, &url, self.patience).await?;
            done.requests += 1;
            let pulls: Vec<Box<RawValue>> = answer.json()?;
            done.pulls_seen += pulls.len() as u64;
            progress(*done);
            let mut wanted = Vec::new();
            for raw in pulls {
                let head: PullHead =
                    serde_json::from_str(raw.get()).map_err(|e| ApiError::Unreadable {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
                if since.is_some_and(|s| head.updated_at.is_some_and(|u| u < s)) {
                    done.pulls_done += 1;
                    continue;
                }
                wanted.push(head);
            }
            // Pull requests in small groups; each group's objects are appended together.
            for group in wanted.chunks(PULLS_AT_ONCE) {
                let mut reads = tokio::task::JoinSet::new();
                for head in group {
                    let (this, repo, number) = (self.clone(), repo.to_string(), head.number);
                    let shas: Vec<String> = [
                        head.head.as_ref().and_then(|h| h.sha.clone()),
                        head.merged_at.as_ref().and(head.merge_commit_sha.clone()),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    let closes: Vec<(String, i64)> = head
                        .body
                        .as_deref()
                        .map(|b| closing_references(b, &repo))
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|i| issues_read.insert(i.clone()))
                        .collect();
                    reads.spawn(async move {
                        this.read_pull(&repo, installation, number, &shas, &closes)
                            .await
                    });
                }
                let mut objects = Vec::new();
                while let Some(read) = reads.join_next().await {
                    let (read, requests) = read.expect("a pull request's read does not panic")?;
                    objects.extend(read);
                    done.requests += requests;
                }
                done.appended += self.append(&log, installation, objects).await?;
                done.pulls_done += group.len() as u64;
                self.save(repo, done, None).await?;
                progress(*done);
            }
            page = answer.next_page();
            // Where a restart resumes: the next page (this one is done).
            self.save(repo, done, page.as_deref()).await?;
        }
        Ok(())
    }

    async fn save(&self, repo: &str, done: &Progress, next: Option<&str>) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE backfill_jobs SET pulls_seen = $2, pulls_done = $3, objects_appended = $4,
                    next_page = coalesce($5, next_page), updated_at = now() WHERE repo = $1",
        )
        .bind(repo)
        .bind(done.pulls_seen as i32)
        .bind(done.pulls_done as i32)
        .bind(done.appended as i32)
        .bind(next)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Everything GitHub has about one pull request; and how many requests it took.
    async fn read_pull(
        &self,
        repo: &str,
        installation: As,
        number: i64,
        shas: &[String],
        closes: &[(String, i64)],
    ) -> Result<(Vec<ApiObject>, u64), BackfillError> {
        let mut objects = Vec::new();
        let mut requests = 0;
        let one = async |url: String, kind: &'static str, objects: &mut Vec<ApiObject>| {
            let answer = self.app.fetch(installation, &url, self.patience).await?;
            objects.push(object(
                repo_of(&url, repo),
                kind,
                &answer,
                answer.body.clone(),
            ));
            Ok::<u64, BackfillError>(1)
        };
        requests += one(
            format!("/repos/{repo}/pulls/{number}"),
            "pull_request",
            &mut objects,
        )
        .await?;
        for (path, kind) in [
            (
                format!("/repos/{repo}/pulls/{number}/reviews"),
                "pull_request_review",
            ),
            (
                format!("/repos/{repo}/pulls/{number}/comments"),
                "pull_request_review_comment",
            ),
            (
                format!("/repos/{repo}/issues/{number}/comments"),
                "issue_comment",
            ),
            (
                format!("/repos/{repo}/issues/{number}/timeline"),
                "issue_event",
            ),
        ] {
            requests += self
                .list(
                    installation,
                    &format!("{path}?per_page=100"),
                    kind,
                    None,
                    repo,
                    &mut objects,
                )
                .await?;
        }
        for sha in shas {
            requests += self
                .list(
                    installation,
                    &format!("/repos/{repo}/commits/{sha}/check-runs?per_page=100"),
                    "check_run",
                    Some("check_runs"),
                    repo,
                    &mut objects,
                )
                .await?;
            requests += one(
                format!("/repos/{repo}/commits/{sha}/status"),
                "commit_status",
                &mut objects,
            )
            .await?;
        }
        // The issues it closes, with their discussion (the feature they stand for).
        for (issue_repo, issue) in closes {
            let url = format!("/repos/{issue_repo}/issues/{issue}");
            match self.app.fetch(installation, &url, self.patience).await {
                Ok(answer) => {
                    requests += 1;
                    objects.push(object(issue_repo, "issue", &answer, answer.body.clone()));
                    requests += self
                        .list(
                            installation,
                            &format!("{url}/comments?per_page=100"),
                            "issue_comment",
                            None,
                            issue_repo,
                            &mut objects,
                        )
                        .await?;
                }
                // An issue elsewhere the installation cannot read, or deleted: skip it.
                Err(ApiError::Refused {
                    status: 403 | 404 | 410,
                    ..
                }) => requests += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok((objects, requests))
    }

    /// Every item of a paginated list (under `member` when the list is wrapped).
    async fn list(
        &self,
        installation: As,
        first: &str,
        kind: &'static str,
        member: Option<&str>,
        repo: &str,
        objects: &mut Vec<ApiObject>,
    ) -> Result<u64, BackfillError> {
        #[derive(Deserialize)]
        struct Wrapped {
            check_runs: Vec<Box<RawValue>>,
        }
        let mut url = Some(first.to_string());
        let mut requests = 0;
        for _ in 0..MAX_PAGES {
            let Some(page) = url.take() else { break };
            let answer = self.app.fetch(installation, &page, self.patience).await?;
            requests += 1;
            let items: Vec<Box<RawValue>> = match member {
                Some(_) => answer.json::<Wrapped>()?.check_runs,
                None => answer.json()?,
            };
            for raw in items {
                let bytes = Bytes::copy_from_slice(raw.get().as_bytes());
                objects.push(object(repo, kind, &answer, bytes));
            }
            url = answer.next_page();
        }
        Ok(requests)
    }

    /// Appends `objects` to the log of `log`; returns how many were new.
    async fn append(
        &self,
        log: &str,
        installation: As,
        objects: Vec<ApiObject>,
    ) -> Result<u64, BackfillError> {
        let id = match installation {
            As::Installation(id) => id.to_string(),
            As::App => String::new(),
        };
        let mut appends = tokio::task::JoinSet::new();
        for o in objects {
            let entry = NewEntry {
                log_name: log.to_string(),
                kind: KIND_GITHUB_API.into(),
                received_at: micros(Utc::now()),
                delivery_id: o.key,
                event: o.kind.into(),
                hook_id: Some(o.url),
                installation_target_type: Some("installation".into()),
                installation_target_id: Some(id.clone()),
                signature: Some(o.date),
                body_sha256: body_hash(&o.body),
                body: o.body,
                body_readable: true,
            };
            let sequencer = self.sequencer.clone();
            appends.spawn(async move { sequencer.append(entry).await });
        }
        let mut appended = 0;
        while let Some(outcome) = appends.join_next().await {
            if let AppendOutcome::Appended { .. } = outcome.expect("an append does not panic")? {
                appended += 1;
            }
        }
        Ok(appended)
    }
}

/// The repository a request URL is about (`/repos/{owner}/{repo}/...`), else `fallback`.
fn repo_of<'a>(url: &'a str, fallback: &'a str) -> &'a str {
    let path = url.strip_prefix("/repos/").unwrap_or("");
    let mut parts = path.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(owner), Some(name)) if !owner.is_empty() && !name.is_empty() => {
            let end = owner.len() + 1 + name.len();
            &path[..end]
        }
        _ => fallback,
    }
}

fn object(repo: &str, kind: &'static str, answer: &Answer, bytes: Bytes) -> ApiObject {
    let keyed: Keyed = serde_json::from_slice(&bytes).unwrap_or_default();
    ApiObject {
        kind,
        key: keyed.key(repo, kind, &bytes),
        url: absolute(answer),
        date: answer.header("date").unwrap_or_default().to_string(),
        body: bytes,
    }
}

/// The request URL as an auditor would repeat it.
fn absolute(answer: &Answer) -> String {
    answer.url.clone()
}

/// The repositories an `installation` (`created`) or `installation_repositories` (`added`)
/// delivery names, with the installation: their history is to be read.
pub fn repositories_installed(event: &str, body: &[u8]) -> Option<(u64, Vec<String>)> {
    #[derive(Deserialize)]
    struct Repo {
        full_name: String,
    }
    #[derive(Deserialize)]
    struct Installation {
        id: u64,
    }
    #[derive(Deserialize)]
    struct Payload {
        action: Option<String>,
        installation: Option<Installation>,
        #[serde(default)]
        repositories: Vec<Repo>,
        #[serde(default)]
        repositories_added: Vec<Repo>,
    }
    let p: Payload = serde_json::from_slice(body).ok()?;
    let repos = match (event, p.action.as_deref()) {
        ("installation", Some("created")) => p.repositories,
        ("installation_repositories", Some("added")) => p.repositories_added,
        _ => return None,
    };
    let repos: Vec<String> = repos
        .into_iter()
        .map(|r| r.full_name)
        .filter(|r| crate::github::names::is_full_name(r))
        .collect();
    Some((p.installation?.id, repos))
}

/// Runs backfills in the background: queues a job for each repository an installation
/// delivery names, and works through queued jobs (and jobs a crash left running) one at a
/// time.
#[derive(Clone)]
pub struct Runner {
    backfill: Backfill,
}

impl Runner {
    pub fn new(backfill: Backfill) -> Runner {
        Runner { backfill }
    }

    /// Queues jobs for installation deliveries not looked at yet; returns how many.
    pub async fn discover(&self) -> sqlx::Result<usize> {
        let pool = &self.backfill.pool;
        let logs: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT l.id, coalesce(c.next_seq, 0) FROM logs l
               LEFT JOIN backfill_cursors c ON c.log_id = l.id
              WHERE coalesce((SELECT max(seq) + 1 FROM log_entries e WHERE e.log_id = l.id), 0)
                  > coalesce(c.next_seq, 0)",
        )
        .fetch_all(pool)
        .await?;
        let mut queued = 0;
        for (log_id, from) in logs {
            let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
                "SELECT seq, event, body FROM log_entries
                  WHERE log_id = $1 AND seq >= $2 AND kind = 'github-delivery'
                    AND event IN ('installation', 'installation_repositories')
                  ORDER BY seq",
            )
            .bind(log_id)
            .bind(from)
            .fetch_all(pool)
            .await?;
            for (_, event, body) in &rows {
                if let Some((installation, repos)) = repositories_installed(event, body) {
                    for repo in repos {
                        queue(pool, &repo, installation, None, false).await?;
                        queued += 1;
                    }
                }
            }
            let size: i64 = sqlx::query_scalar(
                "SELECT coalesce(max(seq) + 1, 0) FROM log_entries WHERE log_id = $1",
            )
            .bind(log_id)
            .fetch_one(pool)
            .await?;
            sqlx::query(
                "INSERT INTO backfill_cursors (log_id, next_seq) VALUES ($1, $2)
                 ON CONFLICT (log_id) DO UPDATE SET next_seq = greatest(backfill_cursors.next_seq, $2)",
            )
            .bind(log_id)
            .bind(size)
            .execute(pool)
            .await?;
        }
        Ok(queued)
    }

    /// Runs the oldest queued job (or one a crash left running for over a minute).
    pub async fn run_next(&self) -> Result<Option<(String, Progress)>, BackfillError> {
        let repo: Option<String> = sqlx::query_scalar(
            "SELECT repo FROM backfill_jobs
              WHERE state = 'queued' OR (state = 'running' AND updated_at < now() - interval '1 minute')
              ORDER BY created_at LIMIT 1",
        )
        .fetch_optional(&self.backfill.pool)
        .await?;
        let Some(repo) = repo else { return Ok(None) };
        let done = self.backfill.run(&repo, |_| {}).await?;
        tracing::info!(
            repo,
            pulls = done.pulls_done,
            appended = done.appended,
            requests = done.requests,
            "history backfilled"
        );
        Ok(Some((repo, done)))
    }

    /// Runs in the background, every `interval`.
    pub fn spawn(self, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.discover().await {
                    tracing::warn!(error = %e, "looking for new installations failed; will retry");
                }
                loop {
                    match self.run_next().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "a backfill stopped; it resumes later");
                            break;
                        }
                    }
                }
                tokio::time::sleep(interval).await;
            }
        })
    }
}

/// Queues the backfill of `repo` (again, unless it is running now).
pub async fn queue(
    pool: &PgPool,
    repo: &str,
    installation: u64,
    since: Option<DateTime<Utc>>,
    alert_history: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO backfill_jobs (repo, installation_id, since, alert_history)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (repo) DO UPDATE SET installation_id = EXCLUDED.installation_id,
             since = EXCLUDED.since, alert_history = EXCLUDED.alert_history,
             state = 'queued', next_page = NULL, pulls_seen = 0, pulls_done = 0,
             objects_appended = 0,
             error = NULL, updated_at = now()
          WHERE backfill_jobs.state <> 'running'",
    )
    .bind(repo)
    .bind(installation as i64)
    .bind(since)
    .bind(alert_history)
    .execute(pool)
    .await?;
    Ok(())
}

fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_keyed_by_id_and_time_so_only_changes_append() {
        let review = br#"{"id": 80, "submitted_at": "2019-11-17T17:43:43Z", "state": "APPROVED"}"#;
        let k: Keyed = serde_json::from_slice(review).unwrap();
        assert_eq!(
            k.key("o/r", "pull_request_review", review),
            "api:o/r:pull_request_review:80:2019-11-17T17:43:43Z"
        );
        let pull = br#"{"id": 1, "updated_at": "2026-01-02T00:00:00Z", "created_at": "2026-01-01T00:00:00Z"}"#;
        let k: Keyed = serde_json::from_slice(pull).unwrap();
        assert!(
            k.key("o/r", "pull_request", pull)
                .ends_with(":1:2026-01-02T00:00:00Z")
        );
        let status = br#"{"sha": "6dcb09b", "state": "success"}"#;
        let k: Keyed = serde_json::from_slice(status).unwrap();
        assert!(
            k.key("o/r", "commit_status", status)
                .starts_with("api:o/r:commit_status:6dcb09b:")
        );
        let changed = br#"{"sha": "6dcb09b", "state": "failure"}"#;
        assert_ne!(
            k.key("o/r", "commit_status", status),
            k.key("o/r", "commit_status", changed),
            "a status that changed is a new object"
        );
        assert_eq!(repo_of("/repos/acme/web/issues/3", "x/y"), "acme/web");
        assert_eq!(repo_of("/app/hook", "x/y"), "x/y");
    }
}
