//! The read side of the pages: each function answers one page's question from the
//! projections (and, for a record, the log itself) and returns a plain serializable value.
//! HTML pages render these values; the JSON API returns them as they are.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use super::access::Viewer;
use super::error::WebError;
use super::filters::{Filters, PER_PAGE};
use super::markdown;
use crate::feedback::facts;
use crate::projections::review_state::{ReviewEvent, ReviewState};

/// One decision record as pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionView {
    pub account: String,
    pub seq: i64,
    pub ordinal: i32,
    pub repo: String,
    pub pr_number: Option<i64>,
    pub kind: String,
    /// The decision in words ("approved", "requested changes"...).
    pub summary: String,
    pub actor: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub commit_sha: Option<String>,
    /// Markdown as written.
    pub body: Option<String>,
    #[serde(skip)]
    pub body_html: Option<String>,
    pub details: Value,
    /// Permalink of the log entry this record comes from.
    pub record_url: String,
    /// When GitHub's API returned the object this record comes from (a backfill); absent for
    /// a signed webhook delivery.
    pub from_api: Option<DateTime<Utc>>,
}

impl DecisionView {
    pub(super) fn from_row(r: &sqlx::postgres::PgRow) -> DecisionView {
        let account: String = r.get("account");
        let seq: i64 = r.get("seq");
        let ordinal: i32 = r.get("ordinal");
        let kind: String = r.get("kind");
        let details: Value = r.get("details");
        let body: Option<String> = r.get("body");
        DecisionView {
            summary: summary(&kind, &details),
            body_html: body.as_deref().map(markdown::to_safe_html),
            record_url: format!("/records/{account}/{seq}#d{ordinal}"),
            account,
            seq,
            ordinal,
            repo: r.get("repo"),
            pr_number: r.get("pr_number"),
            kind,
            actor: r.get("actor"),
            occurred_at: r.get("occurred_at"),
            commit_sha: r.get("commit_sha"),
            body,
            details,
            from_api: r.get("from_api"),
        }
    }

    pub fn short_sha(&self) -> String {
        self.commit_sha
            .as_deref()
            .map(|s| s.chars().take(7).collect())
            .unwrap_or_default()
    }

    pub fn when(&self) -> String {
        self.occurred_at.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    /// CSS class naming the kind (`k-review-approved`).
    pub fn kind_class(&self) -> String {
        format!("k-{}", self.kind.replace('.', "-"))
    }

    /// CSS class for the kind's family (review, pr, check...).
    pub fn family(&self) -> &str {
        self.kind.split('.').next().unwrap_or("")
    }

    /// Said beside a record read from GitHub's API rather than received signed.
    pub fn provenance(&self) -> Option<String> {
        self.from_api.map(|at| {
            format!(
                "from GitHub's API on {}, not a signed delivery",
                at.format("%Y-%m-%d")
            )
        })
    }

    /// Where this record is on GitHub, for `viewer`: the comment's or review's own address
    /// from the payload (on GitHub's host only), else the commit, else the pull request.
    pub fn github_url(&self, viewer: &Viewer) -> Option<String> {
        if let Some(url) = self.details.get("html_url").and_then(Value::as_str) {
            return viewer.github_link(url);
        }
        let base = viewer.github_url_base();
        if let (Some(sha), Some(n)) = (&self.commit_sha, self.pr_number)
            && sha.len() == 40
            && sha.bytes().all(|b| b.is_ascii_hexdigit())
        {
            if let Some(review) = self.details.get("review_id").and_then(Value::as_i64) {
                return viewer.github_link(&format!(
                    "{base}/{}/pull/{n}#pullrequestreview-{review}",
                    self.repo
                ));
            }
            return viewer.github_link(&format!("{base}/{}/pull/{n}/commits/{sha}", self.repo));
        }
        if let Some(n) = self.pr_number {
            return viewer.github_link(&format!("{base}/{}/pull/{n}", self.repo));
        }
        // A record of the issue a feature is named after.
        let issue = self.details.get("issue").and_then(Value::as_i64)?;
        viewer.github_link(&format!("{base}/{}/issues/{issue}", self.repo))
    }

    /// Discussion on the issue a feature is named after (not a pull request decision).
    pub fn is_issue_discussion(&self) -> bool {
        self.kind.starts_with("issue.comment") || self.kind == "issue.commented"
    }
}

/// The decision in words, for people who don't read kind names.
pub fn summary(kind: &str, details: &Value) -> String {
    let d = |k: &str| details.get(k).and_then(Value::as_str).unwrap_or("?");
    match kind {
        "pr.opened" => "opened the pull request".into(),
        "pr.edited" => "edited the pull request".into(),
        "pr.merged" => "merged".into(),
        "pr.closed" => "closed without merging".into(),
        "pr.reopened" => "reopened".into(),
        "pr.synchronize" if details.get("forced") == Some(&Value::Bool(true)) => {
            "force-pushed the branch".into()
        }
        "pr.synchronize" => "pushed new commits".into(),
        "pr.ready_for_review" => "marked ready for review".into(),
        "pr.converted_to_draft" => "converted to draft".into(),
        "pr.review_requested" => match details.get("requested_team").and_then(Value::as_str) {
            Some(team) => format!("requested a review from team {team}"),
            None => format!("requested a review from {}", d("requested_reviewer")),
        },
        "pr.review_request_removed" => {
            format!(
                "withdrew the review request for {}",
                d("requested_reviewer")
            )
        }
        "pr.labeled" => format!("added label “{}”", d("label")),
        "pr.unlabeled" => format!("removed label “{}”", d("label")),
        "pr.milestoned" => format!("set milestone “{}”", d("milestone")),
        "pr.demilestoned" => "removed the milestone".into(),
        "pr.auto_merge_enabled" => "enabled auto-merge".into(),
        "pr.auto_merge_disabled" => "disabled auto-merge".into(),
        "pr.enqueued" => "added to the merge queue".into(),
        "pr.dequeued" => "removed from the merge queue".into(),
        "review.approved" => "approved".into(),
        "review.changes_requested" => "requested changes".into(),
        "review.commented" => "reviewed with comments".into(),
        "review.edited" => "edited a review".into(),
        "review.dismissed" => match details.get("dismissed_by").and_then(Value::as_str) {
            Some(by) => format!("had a review dismissed by {by}"),
            None => "had a review dismissed".into(),
        },
        "review_comment.created" => format!("commented on {}", d("path")),
        "review_comment.edited" => format!("edited a comment on {}", d("path")),
        "review_comment.deleted" => format!("deleted a comment on {}", d("path")),
        "review_thread.resolved" => "resolved a review thread".into(),
        "review_thread.unresolved" => "reopened a review thread".into(),
        "comment.created" => "commented".into(),
        "comment.edited" => "edited a comment".into(),
        "comment.deleted" => "deleted a comment".into(),
        "issue.opened" => format!(
            "opened issue #{}",
            details.get("issue").unwrap_or(&Value::Null)
        ),
        "issue.closed" => format!(
            "closed issue #{}",
            details.get("issue").unwrap_or(&Value::Null)
        ),
        "issue.reopened" => {
            format!(
                "reopened issue #{}",
                details.get("issue").unwrap_or(&Value::Null)
            )
        }
        "issue.edited" => format!(
            "edited issue #{}",
            details.get("issue").unwrap_or(&Value::Null)
        ),
        "issue.commented" => format!(
            "commented on issue #{}",
            details.get("issue").unwrap_or(&Value::Null)
        ),
        "issue.comment_edited" => format!(
            "edited a comment on issue #{}",
            details.get("issue").unwrap_or(&Value::Null)
        ),
        "issue.comment_deleted" => format!(
            "deleted a comment on issue #{}",
            details.get("issue").unwrap_or(&Value::Null)
        ),

        "push.forced" => format!("force-pushed {}", d("ref")),
        k if k.starts_with("check.") => {
            let name = details
                .get("name")
                .or_else(|| details.get("context"))
                .and_then(Value::as_str)
                .unwrap_or("check");
            format!("{name}: {}", &k["check.".len()..])
        }
        other => other.to_string(),
    }
}

/// A page of decisions with the filters that chose them.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub decisions: Vec<DecisionView>,
    pub filters: Filters,
    pub page: i64,
    pub per_page: i64,
    /// Decisions matching the filters, across all pages.
    pub total: i64,
    pub newest_first: bool,
}

impl Timeline {
    pub fn pages(&self) -> i64 {
        ((self.total + PER_PAGE - 1) / PER_PAGE).max(1)
    }
    pub fn has_next(&self) -> bool {
        self.page < self.pages()
    }
    pub fn next_query(&self) -> String {
        self.filters.query_for_page(self.page + 1)
    }
    pub fn prev_query(&self) -> String {
        self.filters.query_for_page(self.page - 1)
    }
}

/// Which decisions a timeline covers.
#[derive(Debug, Clone)]
pub enum Scope<'a> {
    Repo(&'a str),
    Pull(&'a str, i64),
    /// A feature key in one or more repositories (one account's feature spanning several).
    Feature(&'a [String], &'a str),
}

fn push_scope(q: &mut QueryBuilder<Postgres>, scope: &Scope<'_>, viewer: &Viewer) {
    match scope {
        Scope::Repo(repo) => {
            q.push(" d.repo = ").push_bind(repo.to_string());
        }
        Scope::Pull(repo, n) => {
            q.push(" d.repo = ")
                .push_bind(repo.to_string())
                .push(" AND d.pr_number = ")
                .push_bind(*n);
        }
        Scope::Feature(repos, key) => {
            q.push(
                " ((d.repo, d.pr_number) IN (SELECT pr_repo, pr_number FROM feature_pull_requests
                    WHERE repo = ANY(",
            )
            .push_bind(repos.to_vec())
            .push(") AND key = ")
            .push_bind(key.to_string())
            .push(") OR (d.repo = ANY(")
            .push_bind(repos.to_vec())
            .push(") AND d.kind LIKE 'issue.%' AND d.details ->> 'feature' = ")
            .push_bind(key.to_string())
            .push("))");
        }
    }
    if let Some(visible) = viewer.visible() {
        q.push(" AND d.repo = ANY(")
            .push_bind(visible.to_vec())
            .push(")");
    }
}

pub(super) const DECISION_COLUMNS: &str =
    "SELECT l.name AS account, d.seq, d.ordinal, d.repo, d.pr_number,
    d.kind, d.actor, d.occurred_at, d.commit_sha, d.body, d.details, d.from_api";

/// One page of the decisions in `scope` that match `filters`.
pub async fn timeline(
    pool: &PgPool,
    scope: &Scope<'_>,
    filters: &Filters,
    viewer: &Viewer,
    newest_first: bool,
) -> Result<Timeline, WebError> {
    // Filter, count and order narrow key rows first; only the page's rows are then read in
    // full (bodies and details make whole rows ten times wider).
    let mut q = QueryBuilder::<Postgres>::new(
        "WITH page AS (SELECT d.log_id, d.seq, d.ordinal, d.occurred_at, count(*) OVER () AS total
           FROM decisions d WHERE",
    );
    push_scope(&mut q, scope, viewer);
    if let Some(actor) = &filters.actor {
        q.push(" AND lower(d.actor) = lower(")
            .push_bind(actor.clone())
            .push(")");
    }
    if let Some(kind) = &filters.kind {
        // `_` in a kind is a LIKE wildcard for one character, which no two kinds differ by.
        q.push(" AND d.kind LIKE ANY(")
            .push_bind(super::filters::kind_patterns(kind))
            .push(")");
    }
    if let Some(from) = filters.from {
        q.push(" AND d.occurred_at >= ")
            .push_bind(from.and_hms_opt(0, 0, 0).unwrap().and_utc());
    }
    if let Some(to) = filters.to {
        let end = to
            .succ_opt()
            .unwrap_or(to)
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        q.push(" AND d.occurred_at < ").push_bind(end);
    }
    if let Some(text) = &filters.q {
        // Both configurations of the search vector (migration 0009): stemmed English, and
        // every word as typed, so stop words such as "before" are found too.
        q.push(" AND d.body_search @@ (websearch_to_tsquery('english', ")
            .push_bind(text.clone())
            .push(") || websearch_to_tsquery('simple', ")
            .push_bind(text.clone())
            .push("))");
    }
    let order = if newest_first {
        " ORDER BY p.occurred_at DESC, p.log_id DESC, p.seq DESC, p.ordinal DESC"
    } else {
        " ORDER BY p.occurred_at, p.log_id, p.seq, p.ordinal"
    };
    q.push(order.replace("p.", "d."));
    q.push(" LIMIT ")
        .push_bind(PER_PAGE)
        .push(" OFFSET ")
        .push_bind(filters.offset());
    q.push(") ");
    q.push(DECISION_COLUMNS);
    q.push(
        ", p.total FROM page p JOIN decisions d USING (log_id, seq, ordinal)
           JOIN logs l ON l.id = d.log_id",
    );
    q.push(order);
    let rows = q.build().fetch_all(pool).await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        // Past the last page: count so the page can say how many there are.
        None if filters.page > 1 => {
            let mut c = QueryBuilder::<Postgres>::new("SELECT count(*) FROM decisions d WHERE");
            push_scope(&mut c, scope, viewer);
            c.build_query_scalar::<i64>().fetch_one(pool).await?
        }
        None => 0,
    };
    Ok(Timeline {
        decisions: rows.iter().map(DecisionView::from_row).collect(),
        filters: filters.clone(),
        page: filters.page,
        per_page: PER_PAGE,
        total,
        newest_first,
    })
}

// ---------------------------------------------------------------------------------------------
// Index: accounts and repositories

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryItem {
    pub repo: String,
    pub private: bool,
    pub last_activity: DateTime<Utc>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountItem {
    pub account: String,
    /// Entries in the account's log.
    pub log_size: i64,
    pub repositories: Vec<RepositoryItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Index {
    pub accounts: Vec<AccountItem>,
}

pub async fn index(pool: &PgPool, viewer: &Viewer) -> Result<Index, WebError> {
    let rows = sqlx::query(
        "SELECT l.name, coalesce((SELECT max(seq) + 1 FROM log_entries e WHERE e.log_id = l.id), 0)
                AS size, r.repo, r.private, r.last_activity
           FROM logs l LEFT JOIN repositories r ON r.log_id = l.id
                                               AND ($1::text[] IS NULL OR r.repo = ANY($1))
          ORDER BY l.name, r.repo",
    )
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?;
    let mut accounts: Vec<AccountItem> = Vec::new();
    for r in rows {
        let name: String = r.get("name");
        if accounts.last().is_none_or(|a| a.account != name) {
            accounts.push(AccountItem {
                account: name,
                log_size: r.get("size"),
                repositories: Vec::new(),
            });
        }
        if let Some(repo) = r.get::<Option<String>, _>("repo") {
            accounts
                .last_mut()
                .unwrap()
                .repositories
                .push(RepositoryItem {
                    url: format!("/{repo}"),
                    repo,
                    private: r.get("private"),
                    last_activity: r.get("last_activity"),
                });
        }
    }
    // Nobody learns which accounts have only repositories they cannot see.
    if !viewer.is_operator() {
        accounts.retain(|a| !a.repositories.is_empty());
    }
    Ok(Index { accounts })
}

// ---------------------------------------------------------------------------------------------
// Repository

#[derive(Debug, Clone, Serialize)]
pub struct FeatureItem {
    pub key: String,
    pub title: String,
    pub pull_requests: i64,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PullItem {
    pub number: i64,
    pub title: String,
    pub author: Option<String>,
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub updated_at: DateTime<Utc>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryPage {
    pub repo: String,
    pub account: String,
    pub private: bool,
    pub features: Vec<FeatureItem>,
    pub open_pull_requests: Vec<PullItem>,
    pub recent_pull_requests: Vec<PullItem>,
    pub decisions: Timeline,
    /// How complete the account's record is ("complete since …", or the gaps).
    pub coverage: String,
}

pub(crate) struct RepoRow {
    pub(crate) account: String,
    pub(crate) private: bool,
}

pub(crate) async fn repository_row(
    pool: &PgPool,
    repo: &str,
    viewer: &Viewer,
) -> Result<RepoRow, WebError> {
    let row = sqlx::query(
        "SELECT l.name, r.private FROM repositories r JOIN logs l ON l.id = r.log_id
          WHERE r.repo = $1",
    )
    .bind(repo)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(r) if viewer.may_see(Some(repo)) => Ok(RepoRow {
            account: r.get("name"),
            private: r.get("private"),
        }),
        _ => Err(WebError::NotFound(format!(
            "verdict has no record of a repository named {repo}{}",
            viewer.not_found_hint()
        ))),
    }
}

fn pull_item(r: &sqlx::postgres::PgRow) -> PullItem {
    let repo: String = r.get("repo");
    let number: i64 = r.get("number");
    PullItem {
        url: format!("/{repo}/pull/{number}"),
        number,
        title: r.get("title"),
        author: r.get("author"),
        state: r.get("state"),
        draft: r.get("draft"),
        merged: r.get("merged"),
        updated_at: r.get("updated_at"),
    }
}

pub async fn repository(
    pool: &PgPool,
    repo: &str,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<RepositoryPage, WebError> {
    let row = repository_row(pool, repo, viewer).await?;
    let features = sqlx::query(
        "SELECT f.key, f.title,
                (SELECT count(DISTINCT (p.pr_repo, p.pr_number)) FROM feature_pull_requests p
                  WHERE p.repo = f.repo AND p.key = f.key
                    AND ($2::text[] IS NULL OR p.pr_repo = ANY($2))) AS prs
           FROM features f WHERE f.repo = $1 ORDER BY f.title, f.key",
    )
    .bind(repo)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        let key: String = r.get("key");
        FeatureItem {
            url: format!("/{repo}/features/{key}"),
            key,
            title: r.get("title"),
            pull_requests: r.get("prs"),
        }
    })
    .collect();
    let pulls = sqlx::query(
        "SELECT repo, number, title, author, state, draft, merged, updated_at FROM pull_requests
          WHERE repo = $1 ORDER BY (state = 'open') DESC, updated_at DESC LIMIT 100",
    )
    .bind(repo)
    .fetch_all(pool)
    .await?;
    let (open, recent): (Vec<PullItem>, Vec<PullItem>) =
        pulls.iter().map(pull_item).partition(|p| p.state == "open");
    let coverage = super::coverage::coverage(pool, viewer, Some(&row.account))
        .await?
        .accounts
        .first()
        .map(|a| a.summary())
        .unwrap_or_default();
    Ok(RepositoryPage {
        coverage,
        repo: repo.to_string(),
        account: row.account,
        private: row.private,
        features,
        open_pull_requests: open,
        recent_pull_requests: recent.into_iter().take(20).collect(),
        decisions: timeline(pool, &Scope::Repo(repo), filters, viewer, true).await?,
    })
}

// ---------------------------------------------------------------------------------------------
// Pull request and feature: the review summary

/// A pull request with where its review stands.
#[derive(Debug, Clone, Serialize)]
pub struct PullSummary {
    pub repo: String,
    pub number: i64,
    pub title: String,
    pub author: Option<String>,
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub merged_by: Option<String>,
    pub merged_at: Option<DateTime<Utc>>,
    pub merge_commit_sha: Option<String>,
    pub head_sha: Option<String>,
    pub html_url: Option<String>,
    pub url: String,
    pub review: ReviewState,
    /// What the accountability rules found about it, as recorded in the log.
    pub findings: Vec<RecordedFinding>,
    /// False for a pull request known only through its comments, reviews or checks: its
    /// opening never reached verdict (a backfill reads it from GitHub).
    pub opening_seen: bool,
}

/// A finding of an accountability rule, as its log entry records it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedFinding {
    /// Stable rule id (see feedback::rules::RULES).
    pub rule: String,
    /// The rule in words.
    pub rule_name: &'static str,
    pub severity: String,
    pub message: String,
    /// Permalinks of the decision records the finding rests on.
    pub evidence: Vec<String>,
    /// Permalink of the finding's own log entry.
    pub record_url: String,
    pub recorded_at: DateTime<Utc>,
    /// About history read from GitHub's API: shown, not alerted.
    pub history: bool,
    /// Withdrawn, when records that arrived later showed it wrong.
    pub withdrawn: Option<Withdrawal>,
    /// Notes people appended about it, oldest first.
    pub acknowledgements: Vec<AckItem>,
}

impl RecordedFinding {
    /// Still asks for attention: neither withdrawn nor acknowledged.
    pub fn is_open(&self) -> bool {
        self.withdrawn.is_none() && self.acknowledgements.is_empty()
    }
}

/// A rule's plain-language name; the id itself for a rule this version does not know.
pub fn rule_name(id: &str) -> &'static str {
    crate::feedback::rules::find(id)
        .map(|r| r.name)
        .unwrap_or("Unknown rule")
}

/// The acknowledgements of the given findings (`account`, finding seq), oldest first.
pub async fn acknowledgements(
    pool: &PgPool,
    findings: &[(String, i64)],
) -> Result<BTreeMap<(String, i64), Vec<AckItem>>, WebError> {
    let accounts: Vec<&str> = findings.iter().map(|f| f.0.as_str()).collect();
    let seqs: Vec<i64> = findings.iter().map(|f| f.1).collect();
    let rows = sqlx::query(
        "SELECT l.name AS account, a.finding_seq, a.seq, a.by_name, a.note, a.recorded_at
           FROM finding_acks a JOIN logs l ON l.id = a.log_id
           JOIN UNNEST($1::text[], $2::bigint[]) AS w(account, seq)
             ON l.name = w.account AND a.finding_seq = w.seq
          ORDER BY a.log_id, a.seq",
    )
    .bind(&accounts)
    .bind(&seqs)
    .fetch_all(pool)
    .await?;
    let mut out: BTreeMap<(String, i64), Vec<AckItem>> = BTreeMap::new();
    for a in rows {
        let account: String = a.get("account");
        out.entry((account.clone(), a.get("finding_seq")))
            .or_default()
            .push(AckItem {
                by: a.get("by_name"),
                note: a.get("note"),
                recorded_at: a.get("recorded_at"),
                record_url: format!("/records/{account}/{}", a.get::<i64, _>("seq")),
            });
    }
    Ok(out)
}

/// The withdrawal of a finding (its own log entry).
#[derive(Debug, Clone, Serialize)]
pub struct Withdrawal {
    pub at: DateTime<Utc>,
    pub why: String,
    pub record_url: String,
}

pub(super) fn withdrawal(r: &sqlx::postgres::PgRow, account: &str) -> Option<Withdrawal> {
    let seq: Option<i64> = r.get("withdrawn_seq");
    Some(Withdrawal {
        at: r.get::<Option<DateTime<Utc>>, _>("withdrawn_at")?,
        why: r
            .get::<Option<String>, _>("withdrawn_why")
            .unwrap_or_default(),
        record_url: format!("/records/{account}/{}", seq?),
    })
}

/// The recorded findings of `prs`, by PR.
async fn recorded_findings(
    pool: &PgPool,
    prs: &[(String, i64)],
    viewer: &Viewer,
) -> Result<BTreeMap<(String, i64), Vec<RecordedFinding>>, WebError> {
    let repos: Vec<String> = prs.iter().map(|p| p.0.clone()).collect();
    let numbers: Vec<i64> = prs.iter().map(|p| p.1).collect();
    let rows = sqlx::query(
        "SELECT f.repo, f.pr_number, f.rule, f.severity, f.message, f.evidence, f.seq,
                f.recorded_at, l.name AS account, f.history, f.withdrawn_seq, f.withdrawn_at,
                f.withdrawn_why
           FROM findings f JOIN UNNEST($1::text[], $2::bigint[]) AS w(repo, number)
             ON f.repo = w.repo AND f.pr_number = w.number
           JOIN logs l ON l.id = f.log_id
          WHERE $3::text[] IS NULL OR f.repo = ANY($3)
          ORDER BY f.log_id, f.seq",
    )
    .bind(&repos)
    .bind(&numbers)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?;
    let keys: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.get("account"), r.get("seq")))
        .collect();
    let mut acks = acknowledgements(pool, &keys).await?;
    let mut out: BTreeMap<(String, i64), Vec<RecordedFinding>> = BTreeMap::new();
    for r in rows {
        let account: String = r.get("account");
        let seq: i64 = r.get("seq");
        let acknowledgements = acks.remove(&(account.clone(), seq)).unwrap_or_default();
        let evidence: Value = r.get("evidence");
        out.entry((r.get("repo"), r.get("pr_number")))
            .or_default()
            .push(RecordedFinding {
                rule_name: rule_name(&r.get::<String, _>("rule")),
                rule: r.get("rule"),
                severity: r.get("severity"),
                message: r.get("message"),
                evidence: serde_json::from_value(evidence).unwrap_or_default(),
                record_url: format!("/records/{account}/{seq}"),
                recorded_at: r.get("recorded_at"),
                history: r.get("history"),
                withdrawn: withdrawal(&r, &account),
                acknowledgements,
            });
    }
    Ok(out)
}

impl PullSummary {
    pub fn status(&self) -> &'static str {
        match (self.merged, self.state.as_str(), self.draft) {
            (true, _, _) => "merged",
            (false, "closed", _) => "closed",
            (false, _, true) => "draft",
            _ => "open",
        }
    }
    pub fn short_head(&self) -> String {
        short(self.head_sha.as_deref())
    }
}

pub fn short(sha: Option<&str>) -> String {
    sha.map(|s| s.chars().take(7).collect()).unwrap_or_default()
}

/// Summaries of the given PRs, each replayed from its review decisions.
async fn pull_summaries(
    pool: &PgPool,
    prs: &[(String, i64)],
    viewer: &Viewer,
) -> Result<Vec<PullSummary>, WebError> {
    if prs.is_empty() {
        return Ok(Vec::new());
    }
    let repos: Vec<String> = prs.iter().map(|p| p.0.clone()).collect();
    let numbers: Vec<i64> = prs.iter().map(|p| p.1).collect();
    let rows = sqlx::query(
        "SELECT p.repo, p.number, p.title, p.author, p.state, p.draft, p.merged, p.merged_by,
                p.merged_at, p.merge_commit_sha, p.head_sha, p.html_url
           FROM pull_requests p JOIN UNNEST($1::text[], $2::bigint[]) AS w(repo, number)
             ON p.repo = w.repo AND p.number = w.number
          WHERE $3::text[] IS NULL OR p.repo = ANY($3)
          ORDER BY p.repo, p.number",
    )
    .bind(&repos)
    .bind(&numbers)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?;
    let facts = facts::load(pool, prs).await?;
    let mut findings = recorded_findings(pool, prs, viewer).await?;
    let review = |repo: &str, number: i64, head_sha: Option<&str>| {
        let events: Vec<ReviewEvent> = facts
            .get(&(repo.to_string(), number))
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter(|f| !f.kind.starts_with("check."))
            .map(|f| ReviewEvent {
                kind: f.kind.clone(),
                actor: f.actor.clone(),
                commit_sha: f.commit_sha.clone(),
                occurred_at: f.occurred_at,
                review_id: f.review_id,
            })
            .collect();
        ReviewState::replay(&events, head_sha)
    };
    let seen: BTreeSet<(String, i64)> = rows
        .iter()
        .map(|r| (r.get("repo"), r.get("number")))
        .collect();
    let unseen: Vec<&(String, i64)> = prs.iter().filter(|p| !seen.contains(*p)).collect();
    let partial = partial_pulls(pool, &unseen, viewer).await?;
    let mut out: Vec<PullSummary> = rows
        .iter()
        .map(|r| {
            let repo: String = r.get("repo");
            let number: i64 = r.get("number");
            let head_sha: Option<String> = r.get("head_sha");
            let review = review(&repo, number, head_sha.as_deref());
            let findings = findings.remove(&(repo.clone(), number)).unwrap_or_default();
            PullSummary {
                url: format!("/{repo}/pull/{number}"),
                repo,
                number,
                title: r.get("title"),
                author: r.get("author"),
                state: r.get("state"),
                draft: r.get("draft"),
                merged: r.get("merged"),
                merged_by: r.get("merged_by"),
                merged_at: r.get("merged_at"),
                merge_commit_sha: r.get("merge_commit_sha"),
                head_sha,
                html_url: r
                    .get::<Option<String>, _>("html_url")
                    .and_then(|u| viewer.github_link(&u)),
                review,
                findings,
                opening_seen: true,
            }
        })
        .collect();
    for (repo, number, html_url) in partial {
        out.push(PullSummary {
            url: format!("/{repo}/pull/{number}"),
            title: format!("Pull request #{number}"),
            author: None,
            state: "unknown".into(),
            draft: false,
            merged: false,
            merged_by: None,
            merged_at: None,
            merge_commit_sha: None,
            head_sha: None,
            html_url,
            review: review(&repo, number, None),
            findings: findings.remove(&(repo.clone(), number)).unwrap_or_default(),
            opening_seen: false,
            repo,
            number,
        });
    }
    out.sort_by(|a, b| (&a.repo, a.number).cmp(&(&b.repo, b.number)));
    Ok(out)
}

/// Of `prs` (whose opening verdict has not seen), those it knows through other records, with
/// their address on GitHub when a record gives it.
async fn partial_pulls(
    pool: &PgPool,
    prs: &[&(String, i64)],
    viewer: &Viewer,
) -> Result<Vec<(String, i64, Option<String>)>, WebError> {
    if prs.is_empty() {
        return Ok(Vec::new());
    }
    let repos: Vec<&str> = prs.iter().map(|p| p.0.as_str()).collect();
    let numbers: Vec<i64> = prs.iter().map(|p| p.1).collect();
    let rows = sqlx::query(
        "SELECT w.repo, w.number,
                (SELECT d.details ->> 'html_url' FROM decisions d
                  WHERE d.repo = w.repo AND d.pr_number = w.number
                    AND d.details ->> 'html_url' LIKE 'https://%/pull/' || w.number || '#%'
                  ORDER BY d.occurred_at DESC LIMIT 1) AS html_url
           FROM UNNEST($1::text[], $2::bigint[]) AS w(repo, number)
          WHERE ($3::text[] IS NULL OR w.repo = ANY($3))
            AND EXISTS (SELECT 1 FROM decisions d
                         WHERE d.repo = w.repo AND d.pr_number = w.number)",
    )
    .bind(&repos)
    .bind(&numbers)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            // A comment's address, less its anchor, is the pull request's.
            let html_url: Option<String> = r.get("html_url");
            let html_url =
                html_url.and_then(|u| viewer.github_link(u.split('#').next().unwrap_or_default()));
            (r.get("repo"), r.get("number"), html_url)
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureRef {
    pub repo: String,
    pub key: String,
    pub title: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PullPage {
    pub account: String,
    pub pull: PullSummary,
    pub features: Vec<FeatureRef>,
    pub decisions: Timeline,
}

impl PullPage {
    /// The PR as a one-row summary table.
    pub fn pulls(&self) -> &[PullSummary] {
        std::slice::from_ref(&self.pull)
    }
}

pub async fn pull(
    pool: &PgPool,
    repo: &str,
    number: i64,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<PullPage, WebError> {
    let row = repository_row(pool, repo, viewer).await?;
    let pull = pull_summaries(pool, &[(repo.to_string(), number)], viewer)
        .await?
        .pop()
        .ok_or_else(|| {
            WebError::NotFound(format!(
                "verdict has no record of pull request #{number} in {repo}"
            ))
        })?;
    let features = sqlx::query(
        "SELECT DISTINCT f.repo, f.key, f.title FROM feature_pull_requests p
           JOIN features f ON f.repo = p.repo AND f.key = p.key
          WHERE p.pr_repo = $1 AND p.pr_number = $2 AND ($3::text[] IS NULL OR f.repo = ANY($3))
          ORDER BY f.repo, f.key",
    )
    .bind(repo)
    .bind(number)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?
    .iter()
    .map(feature_ref)
    .collect();
    Ok(PullPage {
        account: row.account,
        pull,
        features,
        decisions: timeline(pool, &Scope::Pull(repo, number), filters, viewer, false).await?,
    })
}

fn feature_ref(r: &sqlx::postgres::PgRow) -> FeatureRef {
    let repo: String = r.get("repo");
    let key: String = r.get("key");
    FeatureRef {
        url: format!("/{repo}/features/{key}"),
        title: r.get("title"),
        repo,
        key,
    }
}

/// Counts a product manager reads first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FeatureTotals {
    pub pull_requests: usize,
    pub merged: usize,
    pub open: usize,
    pub stale_approvals: usize,
    pub outstanding_change_requests: usize,
    /// Findings of the accountability rules across the feature's PRs (withdrawn ones aside).
    pub findings: usize,
    /// Of those, how many someone acknowledged.
    pub findings_acknowledged: usize,
}

impl FeatureTotals {
    /// Findings nobody has acknowledged yet.
    pub fn findings_open(&self) -> usize {
        self.findings - self.findings_acknowledged
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FeaturePage {
    pub account: String,
    pub feature: FeatureRef,
    /// The repositories the feature spans (one, unless this is an account's feature).
    pub repositories: Vec<String>,
    /// This is `/{owner}/features/{key}`: the feature across the account's repositories.
    pub account_wide: bool,
    /// On a repository's feature page, the account-wide page when the key is used in other
    /// repositories of the account too.
    pub across_url: Option<String>,
    /// The issue the feature is named after, on GitHub.
    pub issue_github_url: Option<String>,
    /// The tracker's page of the feature's key (Jira, Linear), when configured.
    pub tracker_url: Option<String>,
    /// How PRs joined the feature: label, closing reference, milestone.
    pub sources: Vec<String>,
    pub pulls: Vec<PullSummary>,
    pub totals: FeatureTotals,
    pub decisions: Timeline,
}

impl FeaturePage {
    /// Links the tracker's page of the key, when pull requests joined through a tracker key
    /// (an `issue-41` that a case-insensitive pattern happens to match is not one).
    pub fn link_tracker(&mut self, linking: &crate::projections::features::FeatureLinking) {
        if self.sources.iter().any(|s| s == "tracker") {
            self.tracker_url = linking.tracker_link(&self.feature.key);
        }
    }

    /// The findings list narrowed to this feature's pull requests.
    pub fn findings_url(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("repo", &self.feature.repo);
        q.append_pair("feature", &self.feature.key);
        format!("/findings?{}", q.finish())
    }
    /// How PRs joined, in words.
    pub fn sources_text(&self) -> String {
        self.sources
            .iter()
            .map(|s| match s.as_str() {
                "closes" => "a closing keyword (“Closes #N”)",
                "label" => "a feature label",
                "milestone" => "their milestone",
                "tracker" => "a tracker key in their title or branch name",
                other => other,
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub async fn feature(
    pool: &PgPool,
    repo: &str,
    key: &str,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<FeaturePage, WebError> {
    let row = repository_row(pool, repo, viewer).await?;
    let feature = sqlx::query("SELECT repo, key, title FROM features WHERE repo = $1 AND key = $2")
        .bind(repo)
        .bind(key)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(feature_ref)
        .ok_or_else(|| {
            WebError::NotFound(format!(
                "{repo} has no feature {key:?}; the repository page lists its features"
            ))
        })?;
    let elsewhere = account_feature_repos(pool, &row.account, key, viewer).await?;
    let across_url = (elsewhere.len() > 1).then(|| format!("/{}/features/{key}", row.account));
    let mut page = feature_across(
        pool,
        row.account,
        feature,
        vec![repo.to_string()],
        filters,
        viewer,
    )
    .await?;
    page.across_url = across_url;
    Ok(page)
}

/// `/{owner}/features/{key}`: one feature across every repository of the account that uses
/// the key (a `feature:` label in a frontend and a backend repository, say).
pub async fn account_feature(
    pool: &PgPool,
    account: &str,
    key: &str,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<FeaturePage, WebError> {
    let account = account.to_lowercase();
    let repos = account_feature_repos(pool, &account, key, viewer).await?;
    // The title of the issue the feature is named after, else the first one.
    let titles = sqlx::query(
        "SELECT repo, key, title FROM features WHERE repo = ANY($1) AND key = $2
          ORDER BY titled_by_issue DESC, repo",
    )
    .bind(&repos)
    .bind(key)
    .fetch_all(pool)
    .await?;
    let first = titles.first().ok_or_else(|| {
        WebError::NotFound(format!(
            "no repository of {account:?} that you can see has a feature {key:?}; the account page lists its features{}",
            viewer.not_found_hint()
        ))
    })?;
    let feature = FeatureRef {
        repo: account.clone(),
        key: key.to_string(),
        title: first.get("title"),
        url: format!("/{account}/features/{key}"),
    };
    let mut page = feature_across(pool, account, feature, repos, filters, viewer).await?;
    page.account_wide = true;
    Ok(page)
}

/// The visible repositories of `account` with a feature `key`.
async fn account_feature_repos(
    pool: &PgPool,
    account: &str,
    key: &str,
    viewer: &Viewer,
) -> Result<Vec<String>, WebError> {
    Ok(sqlx::query_scalar(
        "SELECT f.repo FROM features f
           JOIN repositories r ON r.repo = f.repo JOIN logs l ON l.id = r.log_id
          WHERE l.name = $1 AND f.key = $2 AND ($3::text[] IS NULL OR f.repo = ANY($3))
          ORDER BY f.repo",
    )
    .bind(account)
    .bind(key)
    .bind(viewer.visible())
    .fetch_all(pool)
    .await?)
}

async fn feature_across(
    pool: &PgPool,
    account: String,
    feature: FeatureRef,
    repos: Vec<String>,
    filters: &Filters,
    viewer: &Viewer,
) -> Result<FeaturePage, WebError> {
    let key = feature.key.clone();
    let members = sqlx::query(
        "SELECT DISTINCT pr_repo, pr_number, source FROM feature_pull_requests
          WHERE repo = ANY($1) AND key = $2 ORDER BY pr_repo, pr_number",
    )
    .bind(&repos)
    .bind(&key)
    .fetch_all(pool)
    .await?;
    let mut prs: Vec<(String, i64)> = members
        .iter()
        .map(|r| (r.get("pr_repo"), r.get("pr_number")))
        .collect();
    prs.dedup();
    let mut sources: Vec<String> = members.iter().map(|r| r.get("source")).collect();
    sources.sort();
    sources.dedup();
    let pulls = pull_summaries(pool, &prs, viewer).await?;
    let totals = FeatureTotals {
        pull_requests: pulls.len(),
        merged: pulls.iter().filter(|p| p.merged).count(),
        open: pulls.iter().filter(|p| p.state == "open").count(),
        stale_approvals: pulls
            .iter()
            .map(|p| p.review.approvals.iter().filter(|a| a.stale).count())
            .sum(),
        outstanding_change_requests: pulls
            .iter()
            .map(|p| p.review.outstanding_change_requests.len())
            .sum(),
        findings: pulls
            .iter()
            .map(|p| p.findings.iter().filter(|f| f.withdrawn.is_none()).count())
            .sum(),
        findings_acknowledged: pulls
            .iter()
            .map(|p| {
                p.findings
                    .iter()
                    .filter(|f| f.withdrawn.is_none() && !f.acknowledgements.is_empty())
                    .count()
            })
            .sum(),
    };
    // The issue a feature is named after (`issue-N` in one repository), on GitHub.
    let issue_github_url = match (key.strip_prefix("issue-"), repos.as_slice()) {
        (Some(n), [repo]) if n.parse::<u64>().is_ok() => {
            viewer.github_link(&format!("{}/{repo}/issues/{n}", viewer.github_url_base()))
        }
        _ => None,
    };
    Ok(FeaturePage {
        account,
        decisions: timeline(pool, &Scope::Feature(&repos, &key), filters, viewer, false).await?,
        feature,
        repositories: repos,
        account_wide: false,
        across_url: None,
        issue_github_url,
        tracker_url: None,
        sources,
        pulls,
        totals,
    })
}

// ---------------------------------------------------------------------------------------------
// Findings across repositories

/// One finding in the findings list.
#[derive(Debug, Clone, Serialize)]
pub struct FindingItem {
    pub rule: String,
    /// The rule in words.
    pub rule_name: &'static str,
    pub severity: String,
    pub message: String,
    pub repo: String,
    pub pr_number: Option<i64>,
    pub evidence: Vec<String>,
    pub record_url: String,
    pub recorded_at: DateTime<Utc>,
    /// Notes people appended about it, oldest first.
    pub acknowledgements: Vec<AckItem>,
    /// About history read from GitHub's API: shown, not alerted.
    pub history: bool,
    /// Withdrawn, when records that arrived later showed it wrong.
    pub withdrawn: Option<Withdrawal>,
}

/// One acknowledgement of a finding (its own log entry).
#[derive(Debug, Clone, Serialize)]
pub struct AckItem {
    pub by: String,
    pub note: String,
    pub recorded_at: DateTime<Utc>,
    pub record_url: String,
}

/// The filters of the findings page, checked against the rules that exist.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FindingFilters {
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub repo: Option<String>,
    /// `true`: only acknowledged findings; `false`: only open ones.
    pub acknowledged: Option<bool>,
    /// Only the findings about pull requests of this feature of `repo`.
    pub feature: Option<String>,
    pub page: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingsPage {
    pub findings: Vec<FindingItem>,
    pub filters: FindingFilters,
    pub total: i64,
    pub per_page: i64,
}

impl FindingsPage {
    pub fn pages(&self) -> i64 {
        ((self.total + PER_PAGE - 1) / PER_PAGE).max(1)
    }
    /// The query string of another page with the same filters.
    pub fn query_for_page(&self, page: i64) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("rule", &self.filters.rule),
            ("severity", &self.filters.severity),
            ("repo", &self.filters.repo),
            ("feature", &self.filters.feature),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(a) = self.filters.acknowledged {
            q.append_pair("acknowledged", if a { "yes" } else { "no" });
        }
        q.append_pair("page", &page.to_string());
        format!("?{}", q.finish())
    }
}

impl FindingFilters {
    pub fn parse(params: &std::collections::HashMap<String, String>) -> Result<Self, WebError> {
        let get = |k: &str| {
            params
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let rule = get("rule");
        if let Some(r) = &rule
            && !crate::feedback::rules::RULES
                .iter()
                .any(|known| known.id == r)
        {
            let ids: Vec<&str> = crate::feedback::rules::RULES.iter().map(|r| r.id).collect();
            return Err(WebError::BadRequest(format!(
                "rule={r:?} is not a rule; use one of {}",
                ids.join(", ")
            )));
        }
        let severity = get("severity");
        if let Some(s) = &severity
            && !["low", "medium", "high"].contains(&s.as_str())
        {
            return Err(WebError::BadRequest(format!(
                "severity={s:?} is not a severity; use low, medium or high"
            )));
        }
        let repo = get("repo");
        if let Some(r) = &repo
            && r.split('/').filter(|p| !p.is_empty()).count() != 2
        {
            return Err(WebError::BadRequest(format!(
                "repo={r:?} is not a repository; write it as owner/name"
            )));
        }
        let feature = get("feature");
        if feature.is_some() && repo.is_none() {
            return Err(WebError::BadRequest(
                "feature= needs repo= too: a feature belongs to a repository (e.g. ?repo=acme/web&feature=issue-41)".into(),
            ));
        }
        let acknowledged = match get("acknowledged").as_deref() {
            None => None,
            Some("yes") => Some(true),
            Some("no") => Some(false),
            Some(v) => {
                return Err(WebError::BadRequest(format!(
                    "acknowledged={v:?} must be yes or no"
                )));
            }
        };
        let page = match get("page") {
            None => 1,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    WebError::BadRequest(format!("page={v:?} is not a page number from 1"))
                })?,
        };
        Ok(FindingFilters {
            rule,
            severity,
            repo,
            acknowledged,
            feature,
            page,
        })
    }
}

/// Findings across every repository the viewer may see, newest first.
pub async fn findings(
    pool: &PgPool,
    filters: &FindingFilters,
    viewer: &Viewer,
) -> Result<FindingsPage, WebError> {
    let rows = sqlx::query(
        "SELECT f.rule, f.severity, f.message, f.repo, f.pr_number, f.evidence, f.seq,
                f.recorded_at, l.name AS account, count(*) OVER () AS total, f.history,
                f.withdrawn_seq, f.withdrawn_at, f.withdrawn_why
           FROM findings f JOIN logs l ON l.id = f.log_id
          WHERE ($1::text[] IS NULL OR f.repo = ANY($1))
            AND ($2::text IS NULL OR f.rule = $2)
            AND ($3::text IS NULL OR f.severity = $3)
            AND ($4::text IS NULL OR f.repo = $4)
            AND ($7::boolean IS NULL OR $7 = (f.withdrawn_seq IS NOT NULL OR EXISTS (
                 SELECT 1 FROM finding_acks a WHERE a.log_id = f.log_id AND a.finding_seq = f.seq)))
            AND ($8::text IS NULL OR EXISTS (
                 SELECT 1 FROM feature_pull_requests fp
                  WHERE fp.repo = $4 AND fp.key = $8
                    AND fp.pr_repo = f.repo AND fp.pr_number = f.pr_number))
          ORDER BY f.recorded_at DESC, f.log_id, f.seq DESC
          LIMIT $5 OFFSET $6",
    )
    .bind(viewer.visible())
    .bind(&filters.rule)
    .bind(&filters.severity)
    .bind(&filters.repo)
    .bind(PER_PAGE)
    .bind((filters.page - 1) * PER_PAGE)
    .bind(filters.acknowledged)
    .bind(&filters.feature)
    .fetch_all(pool)
    .await?;
    let total = rows.first().map(|r| r.get("total")).unwrap_or(0);
    let keys: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.get("account"), r.get("seq")))
        .collect();
    let mut acks = acknowledgements(pool, &keys).await?;
    Ok(FindingsPage {
        findings: rows
            .iter()
            .map(|r| {
                let account: String = r.get("account");
                let seq: i64 = r.get("seq");
                let evidence: Value = r.get("evidence");
                FindingItem {
                    rule_name: rule_name(&r.get::<String, _>("rule")),
                    rule: r.get("rule"),
                    severity: r.get("severity"),
                    message: r.get("message"),
                    repo: r.get("repo"),
                    pr_number: r.get("pr_number"),
                    evidence: serde_json::from_value(evidence).unwrap_or_default(),
                    acknowledgements: acks.remove(&(account.clone(), seq)).unwrap_or_default(),
                    record_url: format!("/records/{account}/{seq}"),
                    recorded_at: r.get("recorded_at"),
                    history: r.get("history"),
                    withdrawn: withdrawal(r, &account),
                }
            })
            .collect(),
        filters: filters.clone(),
        total,
        per_page: PER_PAGE,
    })
}
