//! The pieces of decision history several pages share: decision records as pages show them,
//! timelines with their filters, pull-request review summaries and the findings recorded
//! about them. Each page's own read side lives beside its handler (`repository.rs`,
//! `pull.rs`, `feature.rs`, `findings.rs`, `records.rs`, ...).

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
pub(super) async fn recorded_findings(
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
pub(super) async fn pull_summaries(
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
pub(super) async fn partial_pulls(
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

pub(super) fn feature_ref(r: &sqlx::postgres::PgRow) -> FeatureRef {
    let repo: String = r.get("repo");
    let key: String = r.get("key");
    FeatureRef {
        url: format!("/{repo}/features/{key}"),
        title: r.get("title"),
        repo,
        key,
    }
}

/// One acknowledgement of a finding (its own log entry).
#[derive(Debug, Clone, Serialize)]
pub struct AckItem {
    pub by: String,
    pub note: String,
    pub recorded_at: DateTime<Utc>,
    pub record_url: String,
}
