//! What one delivery means: the decision records it yields, the pull request state it shows,
//! and the features it links. Pure functions over the payload, tolerant of missing fields
//! (GitHub's payloads change under you); the raw JSON stays in the log either way.

use crate::github::names;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::features::{self, FeatureLink};

/// One decision record: something a person (or GitHub on their behalf) decided about a PR.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `owner/name`.
    pub repo: String,
    pub repo_private: bool,
    /// `None` for decisions about no single PR (issues, forced pushes).
    pub pr_number: Option<i64>,
    /// Stable kind names, e.g. `pr.merged`, `review.approved`; see [`KINDS`].
    pub kind: String,
    pub actor: Option<String>,
    /// GitHub's own time for the decision (not when verdict received it).
    pub occurred_at: DateTime<Utc>,
    /// The commit the decision was about (reviewed commit, new head, merge commit...).
    pub commit_sha: Option<String>,
    /// Markdown written by a person (review or comment body).
    pub body: Option<String>,
    /// Kind-specific facts (label, reviewer, check conclusion...).
    pub details: Value,
    /// What GitHub object the record is about (`review:123`, `pr.merged:42`...), for the
    /// decisions a webhook and a backfill can both describe: one record per key.
    pub source_key: Option<String>,
    /// When GitHub's API returned the object this record comes from (`Date`); `None` for a
    /// signed webhook delivery.
    pub from_api: Option<DateTime<Utc>>,
}

/// A pull request as a delivery shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PullRequestSnapshot {
    pub repo: String,
    pub repo_private: bool,
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
    pub base_ref: Option<String>,
    pub html_url: Option<String>,
    pub body: Option<String>,
    /// GitHub's `updated_at`: a snapshot only replaces an older one.
    pub updated_at: DateTime<Utc>,
}

/// Everything projected from one delivery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projected {
    pub decisions: Vec<Decision>,
    pub pull_request: Option<PullRequestSnapshot>,
    pub features: Vec<FeatureLink>,
    /// The repository the delivery is about, as it shows it (visibility follows the newest).
    pub repository: Option<RepositoryState>,
}

/// A repository's visibility as one delivery shows it, with GitHub's time for it.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryState {
    pub name: String,
    pub private: bool,
    /// The payload's `repository.updated_at` (GitHub's clock), or when verdict received it.
    pub as_of: DateTime<Utc>,
}

/// Every decision kind verdict records.
pub const KINDS: &[&str] = &[
    "pr.opened",
    "pr.edited",
    "pr.merged",
    "pr.closed",
    "pr.reopened",
    "pr.synchronize",
    "pr.ready_for_review",
    "pr.converted_to_draft",
    "pr.review_requested",
    "pr.review_request_removed",
    "pr.labeled",
    "pr.unlabeled",
    "pr.milestoned",
    "pr.demilestoned",
    "pr.auto_merge_enabled",
    "pr.auto_merge_disabled",
    "pr.enqueued",
    "pr.dequeued",
    "review.approved",
    "review.changes_requested",
    "review.commented",
    "review.edited",
    "review.dismissed",
    "review_comment.created",
    "review_comment.edited",
    "review_comment.deleted",
    "review_thread.resolved",
    "review_thread.unresolved",
    "comment.created",
    "decision.recorded",
    "comment.edited",
    "comment.deleted",
    "issue.opened",
    "issue.closed",
    "issue.reopened",
    "issue.edited",
    "issue.commented",
    "issue.comment_edited",
    "issue.comment_deleted",
    "check.success",
    "check.failure",
    "check.pending",
    "check.neutral",
    "check.cancelled",
    "check.skipped",
    "check.timed_out",
    "check.action_required",
    "check.stale",
    "check.error",
    "push.forced",
];

/// The natural keys of the decisions both a signed delivery and GitHub's API (a backfill) can
/// describe: one record per key, whichever comes first, a delivery replacing an API record.
pub mod keys {
    pub fn review(id: i64) -> String {
        format!("review:{id}")
    }
    pub fn review_dismissed(id: i64) -> String {
        format!("review_dismissed:{id}")
    }
    pub fn review_comment(id: i64) -> String {
        format!("review_comment:{id}")
    }
    pub fn comment(id: i64) -> String {
        format!("comment:{id}")
    }
    pub fn decision(comment_id: i64) -> String {
        format!("decision:{comment_id}")
    }
    pub fn pr_opened(number: i64) -> String {
        format!("pr.opened:{number}")
    }
    pub fn pr_merged(number: i64) -> String {
        format!("pr.merged:{number}")
    }
    pub fn pr_closed(number: i64, closed_at: &str) -> String {
        format!("pr.closed:{number}:{closed_at}")
    }
    pub fn issue_opened(number: i64) -> String {
        format!("issue.opened:{number}")
    }
    pub fn issue_closed(number: i64, closed_at: &str) -> String {
        format!("issue.closed:{number}:{closed_at}")
    }
    pub fn check_run(id: i64, outcome: &str, pr: Option<i64>) -> String {
        format!("check_run:{id}:{outcome}:{}", pr.unwrap_or(0))
    }
    pub fn status(id: i64) -> String {
        format!("status:{id}")
    }
}

/// Why a delivery could not be projected. It stays in the log; the projector reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    #[error("body is not JSON")]
    NotJson,
    #[error("{event} payload lacks {field}")]
    Missing { event: String, field: &'static str },
    /// A name GitHub would never give (it would become a link, a key or a file name).
    #[error("{what} {value:?} is not a name GitHub gives")]
    InvalidName { what: &'static str, value: String },
    /// The payload is shaped like another event's: a body replayed under a false event name.
    #[error("event name {event} does not match the payload: {reason}")]
    EventMismatch { event: String, reason: String },
}

/// The top-level members each interpreted event's payload must have, and those that belong to
/// other events and must be absent. GitHub's payloads of one event always share these; a body
/// posted under another event's name (a replay of a public body with a false
/// `X-GitHub-Event`) does not.
const SHAPES: &[(&str, &[&str], &[&str])] = &[
    (
        "pull_request",
        &["pull_request", "number"],
        &["review", "comment", "thread", "issue"],
    ),
    (
        "pull_request_review",
        &["pull_request", "review"],
        &["comment", "thread", "issue"],
    ),
    (
        "pull_request_review_comment",
        &["pull_request", "comment"],
        &["review", "thread", "issue"],
    ),
    (
        "pull_request_review_thread",
        &["pull_request", "thread"],
        &["review", "comment", "issue"],
    ),
    (
        "issue_comment",
        &["issue", "comment"],
        &["pull_request", "review", "thread"],
    ),
    ("issues", &["issue"], &["pull_request", "comment", "review"]),
    (
        "check_suite",
        &["check_suite"],
        &["check_run", "pull_request"],
    ),
    (
        "check_run",
        &["check_run"],
        &["check_suite", "pull_request"],
    ),
    (
        "status",
        &["sha", "state"],
        &["pull_request", "check_run", "check_suite"],
    ),
    (
        "push",
        &["ref", "before", "after"],
        &["pull_request", "check_run", "issue"],
    ),
];

/// Checks that `payload` is shaped like a delivery of `event` (see [`SHAPES`]).
pub fn check_shape(event: &str, payload: &Value) -> Result<(), ProjectError> {
    let Some((_, required, foreign)) = SHAPES.iter().find(|(e, _, _)| *e == event) else {
        return Ok(());
    };
    let mismatch = |reason: String| ProjectError::EventMismatch {
        event: event.to_string(),
        reason,
    };
    let Some(members) = payload.as_object() else {
        return Err(mismatch("the payload is not a JSON object".into()));
    };
    if let Some(m) = required.iter().find(|m| !members.contains_key(**m)) {
        return Err(mismatch(format!("it has no `{m}` member")));
    }
    if let Some(m) = foreign.iter().find(|m| members.contains_key(**m)) {
        return Err(mismatch(format!(
            "it has a `{m}` member, which {event} deliveries never carry"
        )));
    }
    Ok(())
}

fn s(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).map(str::to_string)
}

fn time(v: &Value, ptr: &str) -> Option<DateTime<Utc>> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn missing(event: &str, field: &'static str) -> ProjectError {
    ProjectError::Missing {
        event: event.to_string(),
        field,
    }
}

/// The events the projector reads; deliveries of any other event project to nothing.
const INTERPRETED: &[&str] = &[
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_review_thread",
    "issue_comment",
    "issues",
    "check_suite",
    "check_run",
    "status",
    "push",
    // Only for the repository's visibility (privatized, publicized).
    "repository",
];

/// Projects one delivery. Events verdict does not interpret project to nothing.
/// `linking` says what puts a PR in a feature (label prefix, tracker key pattern).
pub fn project(
    event: &str,
    body: &[u8],
    received_at: DateTime<Utc>,
    linking: &features::FeatureLinking,
) -> Result<Projected, ProjectError> {
    // Most deliveries of other events are large; reading them would find nothing to record.
    if !INTERPRETED.contains(&event) {
        return Ok(Projected::default());
    }
    let payload = super::payload::parse(body).map_err(|_| ProjectError::NotJson)?;
    project_value(event, &payload, received_at, linking)
}

/// Projects one delivery's parsed payload (see [`project`]).
pub fn project_value(
    event: &str,
    payload: &Value,
    received_at: DateTime<Utc>,
    linking: &features::FeatureLinking,
) -> Result<Projected, ProjectError> {
    if !INTERPRETED.contains(&event) {
        return Ok(Projected::default());
    }
    check_shape(event, payload)?;
    let action = s(payload, "/action").unwrap_or_default();
    let projected = match event {
        "pull_request" => pull_request(payload, &action, received_at, linking),
        "pull_request_review" => review(payload, &action, received_at, linking),
        "pull_request_review_comment" => review_comment(payload, &action, received_at),
        "pull_request_review_thread" => review_thread(payload, &action, received_at),
        "issue_comment" => issue_comment(payload, &action, received_at),
        "issues" => issue(payload, &action, received_at),
        "check_suite" | "check_run" => check(event, payload, received_at),
        "status" => status(payload, received_at),
        "push" => push(payload, received_at),
        _ => Ok(Projected::default()),
    }?;
    Ok(Projected {
        repository: repository_state(payload, received_at),
        ..projected
    }
    .clean())
}

/// The repository a payload names, if its name is one GitHub gives; private unless the
/// payload says otherwise.
fn repository_state(p: &Value, received: DateTime<Utc>) -> Option<RepositoryState> {
    let name = s(p, "/repository/full_name")?;
    crate::github::names::is_full_name(&name).then(|| RepositoryState {
        name,
        private: p
            .pointer("/repository/private")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        as_of: time(p, "/repository/updated_at").unwrap_or(received),
    })
}

/// A numeric GitHub id (review, comment): a whole number, or nothing.
fn id(v: &Value, key: &str) -> Value {
    v.get(key)
        .and_then(Value::as_i64)
        .map(Value::from)
        .unwrap_or(Value::Null)
}

struct Repo {
    name: String,
    private: bool,
}

fn repo(event: &str, p: &Value) -> Result<Repo, ProjectError> {
    let name =
        s(p, "/repository/full_name").ok_or_else(|| missing(event, "repository.full_name"))?;
    // The name becomes page addresses, keys and file names: only GitHub's own names will do.
    if !crate::github::names::is_full_name(&name) {
        return Err(ProjectError::InvalidName {
            what: "repository.full_name",
            value: name.chars().take(100).collect(),
        });
    }
    Ok(Repo {
        name,
        private: p
            .pointer("/repository/private")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    })
}

fn snapshot(repo: &Repo, pr: &Value, fallback_time: DateTime<Utc>) -> Option<PullRequestSnapshot> {
    let number = pr.get("number")?.as_i64()?;
    Some(PullRequestSnapshot {
        repo: repo.name.clone(),
        repo_private: repo.private,
        number,
        title: s(pr, "/title").unwrap_or_default(),
        author: s(pr, "/user/login"),
        state: s(pr, "/state").unwrap_or_else(|| "open".into()),
        draft: pr.get("draft").and_then(Value::as_bool).unwrap_or(false),
        merged: pr.get("merged").and_then(Value::as_bool).unwrap_or(false),
        merged_by: s(pr, "/merged_by/login"),
        merged_at: time(pr, "/merged_at"),
        merge_commit_sha: s(pr, "/merge_commit_sha"),
        head_sha: s(pr, "/head/sha"),
        base_ref: s(pr, "/base/ref"),
        html_url: s(pr, "/html_url"),
        body: s(pr, "/body"),
        updated_at: time(pr, "/updated_at").unwrap_or(fallback_time),
    })
}

fn pull_request(
    p: &Value,
    action: &str,
    received: DateTime<Utc>,
    linking: &features::FeatureLinking,
) -> Result<Projected, ProjectError> {
    let repo = repo("pull_request", p)?;
    let pr = p
        .get("pull_request")
        .ok_or_else(|| missing("pull_request", "pull_request"))?;
    let snap = snapshot(&repo, pr, received)
        .ok_or_else(|| missing("pull_request", "pull_request.number"))?;
    const DECISIVE: [&str; 17] = [
        "opened",
        "edited",
        "closed",
        "reopened",
        "synchronize",
        "ready_for_review",
        "converted_to_draft",
        "review_requested",
        "review_request_removed",
        "labeled",
        "unlabeled",
        "milestoned",
        "demilestoned",
        "auto_merge_enabled",
        "auto_merge_disabled",
        "enqueued",
        "dequeued",
    ];
    if !DECISIVE.contains(&action) {
        // Assignment, locking and the like are no decisions, but still show the PR's state.
        let features = features::links_of_pull_request(&repo.name, pr, linking);
        return Ok(Projected {
            decisions: Vec::new(),
            pull_request: Some(snap),
            features,
            repository: None,
        });
    }
    let merged = action == "closed" && snap.merged;
    let kind = match action {
        "closed" if merged => "pr.merged".to_string(),
        "closed" => "pr.closed".to_string(),
        other => format!("pr.{other}"),
    };
    let occurred_at = match action {
        "opened" => time(pr, "/created_at"),
        "closed" if merged => time(pr, "/merged_at"),
        "closed" => time(pr, "/closed_at"),
        _ => time(pr, "/updated_at"),
    }
    .unwrap_or(received);
    let actor = if merged {
        snap.merged_by.clone().or_else(|| s(p, "/sender/login"))
    } else {
        s(p, "/sender/login")
    };
    let commit_sha = match action {
        "closed" if merged => snap.merge_commit_sha.clone(),
        "synchronize" => s(p, "/after").or_else(|| snap.head_sha.clone()),
        _ => snap.head_sha.clone(),
    };
    let mut details = serde_json::Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            details.insert(k.to_string(), Value::String(v));
        }
    };
    put("label", s(p, "/label/name"));
    put("requested_reviewer", s(p, "/requested_reviewer/login"));
    put("requested_team", s(p, "/requested_team/name"));
    put(
        "milestone",
        s(p, "/milestone/title").filter(|_| action.contains("milestone")),
    );
    put("before", s(p, "/before"));
    put("after", s(p, "/after"));
    put("head_sha", snap.head_sha.clone());
    put("title", Some(snap.title.clone()));
    let source_key = match kind.as_str() {
        "pr.opened" => Some(keys::pr_opened(snap.number)),
        "pr.merged" => Some(keys::pr_merged(snap.number)),
        "pr.closed" => s(pr, "/closed_at").map(|at| keys::pr_closed(snap.number, &at)),
        _ => None,
    };
    let decision = Decision {
        repo: repo.name.clone(),
        repo_private: repo.private,
        pr_number: Some(snap.number),
        kind,
        actor,
        occurred_at,
        commit_sha,
        body: None,
        details: Value::Object(details),
        source_key,
        from_api: None,
    };
    let features = features::links_of_pull_request(&repo.name, pr, linking);
    Ok(Projected {
        decisions: vec![decision],
        pull_request: Some(snap),
        features,
        repository: None,
    })
}

fn review(
    p: &Value,
    action: &str,
    received: DateTime<Utc>,
    linking: &features::FeatureLinking,
) -> Result<Projected, ProjectError> {
    let repo = repo("pull_request_review", p)?;
    let pr = p
        .get("pull_request")
        .ok_or_else(|| missing("pull_request_review", "pull_request"))?;
    let number = pr
        .get("number")
        .and_then(Value::as_i64)
        .ok_or_else(|| missing("pull_request_review", "pull_request.number"))?;
    let r = p
        .get("review")
        .ok_or_else(|| missing("pull_request_review", "review"))?;
    let state = s(r, "/state").unwrap_or_default().to_ascii_lowercase();
    let kind = match action {
        "submitted" => match state.as_str() {
            "approved" => "review.approved",
            "changes_requested" => "review.changes_requested",
            _ => "review.commented",
        },
        "dismissed" => "review.dismissed",
        "edited" => "review.edited",
        _ => return Ok(Projected::default()),
    };
    let occurred_at = match action {
        "submitted" => time(r, "/submitted_at"),
        _ => None,
    }
    .or_else(|| time(pr, "/updated_at"))
    .unwrap_or(received);
    let mut details = serde_json::json!({"review_id": id(r, "id"), "state": state});
    if action == "dismissed" {
        details["dismissed_by"] = serde_json::json!(s(p, "/sender/login"));
    }
    Ok(Projected {
        decisions: vec![Decision {
            repo: repo.name.clone(),
            repo_private: repo.private,
            pr_number: Some(number),
            kind: kind.into(),
            actor: s(r, "/user/login").or_else(|| s(p, "/sender/login")),
            occurred_at,
            commit_sha: s(r, "/commit_id"),
            body: s(r, "/body").filter(|b| !b.is_empty()),
            details,
            source_key: r
                .get("id")
                .and_then(Value::as_i64)
                .and_then(|id| match action {
                    "submitted" => Some(format!("review:{id}")),
                    "dismissed" => Some(format!("review_dismissed:{id}")),
                    _ => None,
                }),
            from_api: None,
        }],
        pull_request: snapshot(&repo, pr, received),
        features: features::links_of_pull_request(&repo.name, pr, linking),
        repository: None,
    })
}

fn review_comment(
    p: &Value,
    action: &str,
    received: DateTime<Utc>,
) -> Result<Projected, ProjectError> {
    let repo = repo("pull_request_review_comment", p)?;
    let pr = p
        .get("pull_request")
        .ok_or_else(|| missing("pull_request_review_comment", "pull_request"))?;
    let number = pr
        .get("number")
        .and_then(Value::as_i64)
        .ok_or_else(|| missing("pull_request_review_comment", "pull_request.number"))?;
    let c = p
        .get("comment")
        .ok_or_else(|| missing("pull_request_review_comment", "comment"))?;
    let occurred_at = match action {
        "created" => time(c, "/created_at"),
        _ => time(c, "/updated_at"),
    }
    .unwrap_or(received);
    Ok(Projected {
        decisions: vec![Decision {
            repo: repo.name.clone(),
            repo_private: repo.private,
            pr_number: Some(number),
            kind: format!("review_comment.{action}"),
            actor: s(c, "/user/login"),
            occurred_at,
            commit_sha: s(c, "/commit_id"),
            body: s(c, "/body"),
            details: serde_json::json!({"path": s(c, "/path"), "comment_id": id(c, "id"), "html_url": s(c, "/html_url")}),
            source_key: c
                .get("id")
                .and_then(Value::as_i64)
                .filter(|_| action == "created")
                .map(keys::review_comment),
            from_api: None,
        }],
        pull_request: snapshot(&repo, pr, received),
        features: Vec::new(),
        repository: None,
    })
}

fn review_thread(
    p: &Value,
    action: &str,
    received: DateTime<Utc>,
) -> Result<Projected, ProjectError> {
    let repo = repo("pull_request_review_thread", p)?;
    let pr = p
        .get("pull_request")
        .ok_or_else(|| missing("pull_request_review_thread", "pull_request"))?;
    let number = pr
        .get("number")
        .and_then(Value::as_i64)
        .ok_or_else(|| missing("pull_request_review_thread", "pull_request.number"))?;
    let last_comment_time = p
        .pointer("/thread/comments")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().filter_map(|c| time(c, "/updated_at")).max());
    Ok(Projected {
        decisions: vec![Decision {
            repo: repo.name.clone(),
            repo_private: repo.private,
            pr_number: Some(number),
            kind: format!("review_thread.{action}"),
            actor: s(p, "/sender/login"),
            occurred_at: time(pr, "/updated_at")
                .or(last_comment_time)
                .unwrap_or(received),
            commit_sha: None,
            body: None,
            details: serde_json::json!({"node_id": s(p, "/thread/node_id")}),
            source_key: None,
            from_api: None,
        }],
        pull_request: snapshot(&repo, pr, received),
        features: Vec::new(),
        repository: None,
    })
}

fn issue_comment(
    p: &Value,
    action: &str,
    received: DateTime<Utc>,
) -> Result<Projected, ProjectError> {
    // A comment on a plain issue is discussion of the feature the issue stands for.
    if p.pointer("/issue/pull_request").is_none() {
        return issue_discussion(p, action, received);
    }
    let repo = repo("issue_comment", p)?;
    let number = p
        .pointer("/issue/number")
        .and_then(Value::as_i64)
        .ok_or_else(|| missing("issue_comment", "issue.number"))?;
    let c = p
        .get("comment")
        .ok_or_else(|| missing("issue_comment", "comment"))?;
    let occurred_at = match action {
        "created" => time(c, "/created_at"),
        _ => time(c, "/updated_at"),
    }
    .unwrap_or(received);
    let comment = Decision {
        repo: repo.name,
        repo_private: repo.private,
        pr_number: Some(number),
        kind: format!("comment.{action}"),
        actor: s(c, "/user/login"),
        occurred_at,
        commit_sha: None,
        body: s(c, "/body"),
        details: serde_json::json!({"comment_id": id(c, "id"), "html_url": s(c, "/html_url")}),
        source_key: c
            .get("id")
            .and_then(Value::as_i64)
            .filter(|_| action == "created")
            .map(keys::comment),
        from_api: None,
    };
    let mut decisions = Vec::new();
    // `/decision <text>` in a new comment is an explicit decision record of its own.
    if action == "created"
        && let Some(Ok(text)) = comment.body.as_deref().and_then(decision_command)
    {
        decisions.push(Decision {
            kind: "decision.recorded".into(),
            body: Some(text),
            source_key: c.get("id").and_then(Value::as_i64).map(keys::decision),
            ..comment.clone()
        });
    }
    decisions.insert(0, comment);
    Ok(Projected {
        decisions,
        pull_request: None,
        features: Vec::new(),
        repository: None,
    })
}

/// A comment on a plain issue: shown on the timeline of the feature the issue names.
fn issue_discussion(
    p: &Value,
    action: &str,
    received: DateTime<Utc>,
) -> Result<Projected, ProjectError> {
    let repo = repo("issue_comment", p)?;
    let number = p
        .pointer("/issue/number")
        .and_then(Value::as_i64)
        .ok_or_else(|| missing("issue_comment", "issue.number"))?;
    let c = p
        .get("comment")
        .ok_or_else(|| missing("issue_comment", "comment"))?;
    let kind = match action {
        "created" => "issue.commented",
        "edited" => "issue.comment_edited",
        "deleted" => "issue.comment_deleted",
        _ => return Ok(Projected::default()),
    };
    let id = c.get("id").and_then(Value::as_i64);
    Ok(Projected {
        decisions: vec![Decision {
            repo: repo.name,
            repo_private: repo.private,
            pr_number: None,
            kind: kind.into(),
            actor: s(c, "/user/login"),
            occurred_at: match action {
                "created" => time(c, "/created_at"),
                _ => time(c, "/updated_at"),
            }
            .unwrap_or(received),
            commit_sha: None,
            body: s(c, "/body"),
            details: serde_json::json!({"issue": number, "feature": features::issue_key(number),
                                        "comment_id": id, "html_url": s(c, "/html_url")}),
            source_key: id.filter(|_| action == "created").map(keys::comment),
            from_api: None,
        }],
        ..Default::default()
    })
}

/// Reads a `/decision <text>` PR comment command: `None` when the comment is not a command,
/// `Some(Err(..))` when it is one without a decision to record (verdict answers with usage).
pub fn decision_command(body: &str) -> Option<Result<String, MalformedCommand>> {
    let rest = body.trim_start().strip_prefix("/decision")?;
    // `/decisions` or `/decision-log` are someone else's command.
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let text = rest.trim();
    if text.is_empty() {
        return Some(Err(MalformedCommand));
    }
    Some(Ok(text.to_string()))
}

/// A `/decision` command with nothing after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedCommand;

/// What verdict answers to a malformed `/decision` command.
pub const DECISION_USAGE: &str = "Usage: `/decision <what was decided>`, for example \
`/decision ship the new checkout behind the beta flag`. The text after `/decision` becomes a \
decision record in this repository's log. Nothing was recorded.";

fn issue(p: &Value, action: &str, received: DateTime<Utc>) -> Result<Projected, ProjectError> {
    let repo = repo("issues", p)?;
    let i = p.get("issue").ok_or_else(|| missing("issues", "issue"))?;
    let number = i
        .get("number")
        .and_then(Value::as_i64)
        .ok_or_else(|| missing("issues", "issue.number"))?;
    if !matches!(action, "opened" | "closed" | "reopened" | "edited") {
        return Ok(Projected::default());
    }
    let occurred_at = match action {
        "opened" => time(i, "/created_at"),
        "closed" => time(i, "/closed_at"),
        _ => time(i, "/updated_at"),
    }
    .unwrap_or(received);
    let title = s(i, "/title").unwrap_or_default();
    Ok(Projected {
        decisions: vec![Decision {
            repo: repo.name.clone(),
            repo_private: repo.private,
            pr_number: None,
            kind: format!("issue.{action}"),
            actor: s(p, "/sender/login"),
            occurred_at,
            commit_sha: None,
            body: None,
            details: serde_json::json!({"issue": number, "title": title, "feature": features::issue_key(number)}),
            source_key: match action {
                "opened" => Some(keys::issue_opened(number)),
                "closed" => s(i, "/closed_at").map(|at| keys::issue_closed(number, &at)),
                _ => None,
            },
            from_api: None,
        }],
        pull_request: None,
        features: vec![FeatureLink::issue_title(&repo.name, number, &title)],
        repository: None,
    })
}

fn check(event: &str, p: &Value, received: DateTime<Utc>) -> Result<Projected, ProjectError> {
    let repo = repo(event, p)?;
    let c = p.get(event).ok_or_else(|| missing(event, "check object"))?;
    let status = s(c, "/status").unwrap_or_default();
    let conclusion = s(c, "/conclusion");
    let outcome = match (status.as_str(), conclusion.as_deref()) {
        ("completed", Some(c)) => c.to_string(),
        _ => "pending".to_string(),
    };
    let occurred_at = time(c, "/completed_at")
        .or_else(|| time(c, "/updated_at"))
        .or_else(|| time(c, "/started_at"))
        .unwrap_or(received);
    let name = s(c, "/name").or_else(|| s(c, "/app/name"));
    let prs: Vec<i64> = c
        .get("pull_requests")
        .and_then(Value::as_array)
        .map(|prs| {
            prs.iter()
                .filter_map(|pr| pr.get("number").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default();
    let targets: Vec<Option<i64>> = if prs.is_empty() {
        vec![None]
    } else {
        prs.into_iter().map(Some).collect()
    };
    Ok(Projected {
        decisions: targets
            .into_iter()
            .map(|pr_number| Decision {
                repo: repo.name.clone(),
                repo_private: repo.private,
                pr_number,
                kind: format!("check.{outcome}"),
                actor: s(c, "/app/slug").or_else(|| s(p, "/sender/login")),
                occurred_at,
                commit_sha: s(c, "/head_sha"),
                body: None,
                details: serde_json::json!({"source": event, "name": name, "status": status, "conclusion": conclusion}),
                source_key: c
                    .get("id")
                    .and_then(Value::as_i64)
                    .filter(|_| event == "check_run")
                    .map(|id| keys::check_run(id, &outcome, pr_number)),
                from_api: None,
            })
            .collect(),
        pull_request: None,
        features: Vec::new(),
        repository: None,
    })
}

fn status(p: &Value, received: DateTime<Utc>) -> Result<Projected, ProjectError> {
    let repo = repo("status", p)?;
    let state = s(p, "/state").unwrap_or_else(|| "pending".into());
    Ok(Projected {
        decisions: vec![Decision {
            repo: repo.name,
            repo_private: repo.private,
            pr_number: None,
            kind: format!("check.{state}"),
            actor: s(p, "/sender/login"),
            occurred_at: time(p, "/updated_at")
                .or_else(|| time(p, "/created_at"))
                .unwrap_or(received),
            commit_sha: s(p, "/sha"),
            body: None,
            details: serde_json::json!({"source": "status", "context": s(p, "/context"), "description": s(p, "/description")}),
            source_key: p.get("id").and_then(Value::as_i64).map(keys::status),
            from_api: None,
        }],
        pull_request: None,
        features: Vec::new(),
        repository: None,
    })
}

fn push(p: &Value, received: DateTime<Utc>) -> Result<Projected, ProjectError> {
    if p.get("forced").and_then(Value::as_bool) != Some(true) {
        return Ok(Projected::default());
    }
    let repo = repo("push", p)?;
    let pushed_at = p
        .pointer("/repository/pushed_at")
        .and_then(Value::as_i64)
        .and_then(|t| DateTime::from_timestamp(t, 0));
    Ok(Projected {
        decisions: vec![Decision {
            repo: repo.name.clone(),
            repo_private: repo.private,
            pr_number: None,
            kind: "push.forced".into(),
            actor: s(p, "/pusher/name").or_else(|| s(p, "/sender/login")),
            occurred_at: time(p, "/head_commit/timestamp")
                .or(pushed_at)
                .unwrap_or(received),
            commit_sha: s(p, "/after"),
            body: None,
            // Branch names reach pages: only names git itself allows.
            details: serde_json::json!({
                "ref": s(p, "/ref").filter(|r| names::is_ref_name(r)),
                "before": s(p, "/before"),
                "after": s(p, "/after"),
                "default_branch": s(p, "/repository/default_branch").filter(|r| names::is_ref_name(r)),
            }),
            source_key: None,
            from_api: None,
        }],
        pull_request: None,
        features: Vec::new(),
        repository: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_commands_are_read_from_the_start_of_a_comment() {
        assert_eq!(
            decision_command("/decision ship it behind the flag"),
            Some(Ok("ship it behind the flag".into()))
        );
        assert_eq!(
            decision_command("  /decision\nkeep v1 for a release\n"),
            Some(Ok("keep v1 for a release".into()))
        );
        assert_eq!(decision_command("/decision"), Some(Err(MalformedCommand)));
        assert_eq!(
            decision_command("/decision   \n "),
            Some(Err(MalformedCommand))
        );
        assert_eq!(decision_command("/decisions please"), None);
        assert_eq!(decision_command("we made a /decision here"), None);
    }
}
