//! What an object read from GitHub's API (a `github-api` entry, written by a backfill) means:
//! the same decision records, pull request state and features a webhook delivery of the same
//! thing yields, marked as coming from the API (`from_api`, GitHub's `Date`) and keyed like the
//! delivery's (`decisions::keys`) so one review, comment or merge stays one record.
//!
//! The entry's `hook_id` holds the request URL: it says which repository and pull request an
//! object belongs to when the object itself does not.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::decisions::{
    Decision, ProjectError, Projected, PullRequestSnapshot, RepositoryState, keys,
};
use super::features::{self, FeatureLink};

fn s(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).map(str::to_string)
}

fn time(v: &Value, ptr: &str) -> Option<DateTime<Utc>> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `owner/name` and the number in `/repos/{owner}/{name}/(pulls|issues)/{n}...`, from the
/// request URL (absolute or not).
pub fn repo_and_number(url: &str) -> (Option<String>, Option<i64>) {
    let path = url
        .split_once("/repos/")
        .map(|(_, rest)| rest)
        .unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.split('/').collect();
    let repo = (parts.len() >= 2)
        .then(|| format!("{}/{}", parts[0], parts[1]))
        .filter(|r| crate::github::names::is_full_name(r));
    let number = match parts.get(2) {
        Some(&"pulls") | Some(&"issues") => parts.get(3).and_then(|n| n.parse().ok()),
        _ => None,
    };
    (repo, number)
}

/// GitHub's `Date` header (RFC 2822), as kept in the entry.
pub fn api_date(date: &str, received: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::parse_from_rfc2822(date.trim())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(received)
}

/// Projects one `github-api` entry: `event` is the object's type, `url` the request URL,
/// `date` the answer's `Date`.
pub fn project(
    event: &str,
    url: &str,
    body: &[u8],
    date: DateTime<Utc>,
    linking: &super::features::FeatureLinking,
) -> Result<Projected, ProjectError> {
    let o: Value = serde_json::from_slice(body).map_err(|_| ProjectError::NotJson)?;
    let (url_repo, url_number) = repo_and_number(url);
    let repo = url_repo.ok_or_else(|| ProjectError::Missing {
        event: event.to_string(),
        field: "a repository in the request URL",
    })?;
    let mut p = match event {
        "pull_request" => pull(&repo, &o, date, linking),
        "pull_request_review" => review(&repo, url_number, &o),
        "pull_request_review_comment" => review_comment(&repo, url_number, &o),
        "issue_comment" => comment(&repo, url_number, &o),
        "issue_event" => timeline(&repo, url_number, &o),
        "check_run" => check_run(&repo, &o),
        "commit_status" => status(&repo, &o),
        "issue" => issue(&repo, &o),
        _ => Projected::default(),
    };
    for d in &mut p.decisions {
        d.from_api = Some(date);
    }
    Ok(p.clean())
}

fn decision(repo: &str, pr: Option<i64>, kind: &str, at: Option<DateTime<Utc>>) -> Decision {
    Decision {
        repo: repo.to_string(),
        repo_private: true,
        pr_number: pr,
        kind: kind.to_string(),
        actor: None,
        occurred_at: at.unwrap_or(DateTime::UNIX_EPOCH),
        commit_sha: None,
        body: None,
        details: json!({}),
        source_key: None,
        from_api: None,
    }
}

fn pull(
    repo: &str,
    o: &Value,
    date: DateTime<Utc>,
    linking: &super::features::FeatureLinking,
) -> Projected {
    let Some(number) = o.get("number").and_then(Value::as_i64) else {
        return Projected::default();
    };
    let private = o
        .pointer("/base/repo/private")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let merged = o.get("merged").and_then(Value::as_bool).unwrap_or(false)
        || o.get("merged_at").is_some_and(|m| !m.is_null());
    let snap = PullRequestSnapshot {
        repo: repo.to_string(),
        repo_private: private,
        number,
        title: s(o, "/title").unwrap_or_default(),
        author: s(o, "/user/login"),
        state: s(o, "/state").unwrap_or_else(|| "open".into()),
        draft: o.get("draft").and_then(Value::as_bool).unwrap_or(false),
        merged,
        merged_by: s(o, "/merged_by/login"),
        merged_at: time(o, "/merged_at"),
        merge_commit_sha: s(o, "/merge_commit_sha"),
        head_sha: s(o, "/head/sha"),
        base_ref: s(o, "/base/ref"),
        html_url: s(o, "/html_url"),
        body: s(o, "/body"),
        updated_at: time(o, "/updated_at").unwrap_or(date),
    };
    let title = json!({"title": snap.title, "head_sha": snap.head_sha});
    let mut decisions = vec![Decision {
        actor: snap.author.clone(),
        commit_sha: snap.head_sha.clone(),
        details: title.clone(),
        source_key: Some(keys::pr_opened(number)),
        ..decision(repo, Some(number), "pr.opened", time(o, "/created_at"))
    }];
    if merged {
        decisions.push(Decision {
            // GitHub's list omits merged_by; the pull request itself has it.
            actor: snap.merged_by.clone(),
            commit_sha: snap.merge_commit_sha.clone(),
            details: title,
            source_key: Some(keys::pr_merged(number)),
            ..decision(repo, Some(number), "pr.merged", snap.merged_at)
        });
    } else if snap.state == "closed"
        && let Some(closed) = s(o, "/closed_at")
    {
        decisions.push(Decision {
            details: title,
            source_key: Some(keys::pr_closed(number, &closed)),
            ..decision(repo, Some(number), "pr.closed", time(o, "/closed_at"))
        });
    }
    let repository = s(o, "/base/repo/full_name")
        .filter(|n| n == repo)
        .map(|name| RepositoryState {
            name,
            private,
            as_of: time(o, "/base/repo/updated_at").unwrap_or(date),
        });
    Projected {
        features: features::links_of_pull_request(repo, o, linking),
        decisions,
        pull_request: Some(snap),
        repository,
    }
}

fn review(repo: &str, pr: Option<i64>, o: &Value) -> Projected {
    let state = s(o, "/state").unwrap_or_default().to_ascii_lowercase();
    let kind = match state.as_str() {
        "approved" => "review.approved",
        "changes_requested" => "review.changes_requested",
        "commented" => "review.commented",
        "dismissed" => "review.dismissed",
        // A pending review is the reviewer's draft, not a decision.
        _ => return Projected::default(),
    };
    let id = o.get("id").and_then(Value::as_i64);
    Projected {
        decisions: vec![Decision {
            actor: s(o, "/user/login"),
            commit_sha: s(o, "/commit_id"),
            body: s(o, "/body").filter(|b| !b.is_empty()),
            details: json!({"review_id": id, "state": state}),
            source_key: id.map(if kind == "review.dismissed" {
                keys::review_dismissed
            } else {
                keys::review
            }),
            ..decision(repo, pr, kind, time(o, "/submitted_at"))
        }],
        ..Default::default()
    }
}

fn review_comment(repo: &str, pr: Option<i64>, o: &Value) -> Projected {
    let id = o.get("id").and_then(Value::as_i64);
    Projected {
        decisions: vec![Decision {
            actor: s(o, "/user/login"),
            commit_sha: s(o, "/commit_id"),
            body: s(o, "/body"),
            details: json!({"path": s(o, "/path"), "comment_id": id, "html_url": s(o, "/html_url")}),
            source_key: id.map(keys::review_comment),
            ..decision(repo, pr, "review_comment.created", time(o, "/created_at"))
        }],
        ..Default::default()
    }
}

/// A comment on a pull request, or on an issue (the feature's discussion).
fn comment(repo: &str, number: Option<i64>, o: &Value) -> Projected {
    let id = o.get("id").and_then(Value::as_i64);
    let on_pull = s(o, "/html_url").is_some_and(|u| u.contains("/pull/"));
    let at = time(o, "/created_at");
    if !on_pull {
        let Some(issue) = number else {
            return Projected::default();
        };
        return Projected {
            decisions: vec![Decision {
                actor: s(o, "/user/login"),
                body: s(o, "/body"),
                details: json!({"issue": issue, "feature": features::issue_key(issue),
                                "comment_id": id, "html_url": s(o, "/html_url")}),
                source_key: id.map(keys::comment),
                ..decision(repo, None, "issue.commented", at)
            }],
            ..Default::default()
        };
    }
    let mut decisions = vec![Decision {
        actor: s(o, "/user/login"),
        body: s(o, "/body"),
        details: json!({"comment_id": id, "html_url": s(o, "/html_url")}),
        source_key: id.map(keys::comment),
        ..decision(repo, number, "comment.created", at)
    }];
    if let Some(Ok(text)) = s(o, "/body")
        .as_deref()
        .and_then(super::decisions::decision_command)
    {
        decisions.push(Decision {
            kind: "decision.recorded".into(),
            body: Some(text),
            source_key: id.map(keys::decision),
            ..decisions[0].clone()
        });
    }
    Projected {
        decisions,
        ..Default::default()
    }
}

/// One item of an issue's or pull request's timeline.
fn timeline(repo: &str, number: Option<i64>, o: &Value) -> Projected {
    let actor = s(o, "/actor/login");
    let at = time(o, "/created_at");
    let key = o
        .get("id")
        .and_then(Value::as_i64)
        .map(|id| format!("timeline:{id}"));
    let (kind, details) = match s(o, "/event").as_deref() {
        Some("labeled") => ("pr.labeled", json!({"label": s(o, "/label/name")})),
        Some("unlabeled") => ("pr.unlabeled", json!({"label": s(o, "/label/name")})),
        Some("review_requested") => (
            "pr.review_requested",
            json!({"requested_reviewer": s(o, "/requested_reviewer/login"),
                   "requested_team": s(o, "/requested_team/name")}),
        ),
        Some("review_request_removed") => (
            "pr.review_request_removed",
            json!({"requested_reviewer": s(o, "/requested_reviewer/login")}),
        ),
        Some("milestoned") => (
            "pr.milestoned",
            json!({"milestone": s(o, "/milestone/title")}),
        ),
        Some("demilestoned") => ("pr.demilestoned", json!({})),
        Some("ready_for_review") => ("pr.ready_for_review", json!({})),
        Some("convert_to_draft") => ("pr.converted_to_draft", json!({})),
        Some("reopened") => ("pr.reopened", json!({})),
        // The same push a `synchronize` delivery reports; the timeline says it was forced.
        Some("head_ref_force_pushed") => (
            "pr.synchronize",
            json!({"forced": true, "before": s(o, "/before"), "after": s(o, "/after")}),
        ),
        Some("review_dismissed") => {
            let review = o
                .pointer("/dismissed_review/review_id")
                .and_then(Value::as_i64);
            return Projected {
                decisions: vec![Decision {
                    actor: s(o, "/dismissed_review/reviewer/login").or(actor.clone()),
                    details: json!({"review_id": review, "dismissed_by": actor,
                                    "message": s(o, "/dismissed_review/dismissal_message")}),
                    source_key: review.map(keys::review_dismissed),
                    ..decision(repo, number, "review.dismissed", at)
                }],
                ..Default::default()
            };
        }
        // Opened, merged, closed, reviews and comments come from their own objects.
        _ => return Projected::default(),
    };
    Projected {
        decisions: vec![Decision {
            actor,
            commit_sha: s(o, "/commit_id"),
            details,
            source_key: key,
            ..decision(repo, number, kind, at)
        }],
        ..Default::default()
    }
}

fn check_run(repo: &str, o: &Value) -> Projected {
    let status = s(o, "/status").unwrap_or_default();
    let conclusion = s(o, "/conclusion");
    let outcome = match (status.as_str(), conclusion.as_deref()) {
        ("completed", Some(c)) => c.to_string(),
        _ => "pending".to_string(),
    };
    let id = o.get("id").and_then(Value::as_i64);
    let prs: Vec<Option<i64>> = o
        .get("pull_requests")
        .and_then(Value::as_array)
        .map(|prs| {
            prs.iter()
                .filter_map(|p| p.get("number").and_then(Value::as_i64))
                .map(Some)
                .collect()
        })
        .filter(|v: &Vec<Option<i64>>| !v.is_empty())
        .unwrap_or_else(|| vec![None]);
    let at = time(o, "/completed_at").or_else(|| time(o, "/started_at"));
    Projected {
        decisions: prs
            .into_iter()
            .map(|pr| Decision {
                actor: s(o, "/app/slug"),
                commit_sha: s(o, "/head_sha"),
                details: json!({"source": "check_run", "name": s(o, "/name"), "status": status,
                                "conclusion": conclusion}),
                source_key: id.map(|id| keys::check_run(id, &outcome, pr)),
                ..decision(repo, pr, &format!("check.{outcome}"), at)
            })
            .collect(),
        ..Default::default()
    }
}

/// A commit's combined status: one record per status context.
fn status(repo: &str, o: &Value) -> Projected {
    let sha = s(o, "/sha");
    let statuses = o
        .get("statuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Projected {
        decisions: statuses
            .iter()
            .map(|st| Decision {
                actor: s(st, "/creator/login"),
                commit_sha: sha.clone(),
                details: json!({"source": "status", "context": s(st, "/context"),
                                "description": s(st, "/description")}),
                source_key: st.get("id").and_then(Value::as_i64).map(keys::status),
                ..decision(
                    repo,
                    None,
                    &format!(
                        "check.{}",
                        s(st, "/state").unwrap_or_else(|| "pending".into())
                    ),
                    time(st, "/updated_at").or_else(|| time(st, "/created_at")),
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// An issue a pull request closes: the feature it stands for.
fn issue(repo: &str, o: &Value) -> Projected {
    let Some(number) = o.get("number").and_then(Value::as_i64) else {
        return Projected::default();
    };
    let title = s(o, "/title").unwrap_or_default();
    let details = json!({"issue": number, "title": title, "feature": features::issue_key(number)});
    let mut decisions = vec![Decision {
        actor: s(o, "/user/login"),
        details: details.clone(),
        source_key: Some(keys::issue_opened(number)),
        ..decision(repo, None, "issue.opened", time(o, "/created_at"))
    }];
    if let Some(closed) = s(o, "/closed_at") {
        decisions.push(Decision {
            actor: s(o, "/closed_by/login"),
            details,
            source_key: Some(keys::issue_closed(number, &closed)),
            ..decision(repo, None, "issue.closed", time(o, "/closed_at"))
        });
    }
    Projected {
        decisions,
        features: vec![FeatureLink::issue_title(repo, number, &title)],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_url_names_the_repository_and_number() {
        assert_eq!(
            repo_and_number("https://api.github.com/repos/acme/web/pulls/42/reviews?per_page=100"),
            (Some("acme/web".into()), Some(42))
        );
        assert_eq!(
            repo_and_number("/repos/acme/web/issues/7/comments"),
            (Some("acme/web".into()), Some(7))
        );
        assert_eq!(
            repo_and_number("/repos/acme/web/commits/abc/status"),
            (Some("acme/web".into()), None)
        );
        assert_eq!(repo_and_number("/app/hook/deliveries"), (None, None));
        assert_eq!(repo_and_number("/repos/../x/pulls/1"), (None, Some(1)));
    }
}
