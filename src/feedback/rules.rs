//! Accountability rules: pure judgments over one pull request's decision records, replayed in
//! GitHub's order. Each rule has a stable id (shown wherever its finding appears) and a
//! severity. The same function serves pages now and `verdict rules rerun` later: findings
//! are a projection of the log, like everything else.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// A rule's stable id, severity, and what people read about it: a plain-language name, what
/// it checks, and why that matters (shown on finding pages and `/rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// The rule in a few words ("Merged without approval").
    pub name: &'static str,
    /// What it checks, in one sentence.
    pub description: &'static str,
    /// Why it matters to the people who rely on the record.
    pub why: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// Every rule verdict applies.
pub const RULES: &[Rule] = &[
    Rule {
        id: "merged-without-approval",
        severity: Severity::High,
        name: "Merged without approval",
        description: "merged with no approving review at all",
        why: "nobody but the author vouched for the change that shipped; most teams require at least one approval",
    },
    Rule {
        id: "stale-approval",
        severity: Severity::Medium,
        name: "Approval was for an older commit",
        description: "the latest approval was for an older head commit than the one merged",
        why: "commits pushed after the approval shipped without anyone reviewing them",
    },
    Rule {
        id: "merged-with-changes-requested",
        severity: Severity::High,
        name: "Merged over a change request",
        description: "a change request was still outstanding at merge",
        why: "a reviewer's objection was neither resolved nor dismissed before the change shipped",
    },
    Rule {
        id: "merged-with-failing-checks",
        severity: Severity::High,
        name: "Merged with failing checks",
        description: "checks on the merged head were failing or pending",
        why: "the automated tests or policies did not pass on the code that shipped",
    },
    Rule {
        id: "dismissed-then-merged",
        severity: Severity::Medium,
        name: "Review dismissed, then merged",
        description: "a review was dismissed, then the PR merged without a new approval",
        why: "dismissing a review removes an objection without anyone approving in its place",
    },
    Rule {
        id: "force-push-default-branch",
        severity: Severity::High,
        name: "Default branch history rewritten",
        description: "history of the default branch was rewritten by a forced push",
        why: "commits others built on, reviewed or deployed may have disappeared from the main line",
    },
    Rule {
        id: "self-merge",
        severity: Severity::Medium,
        name: "Merged by its author alone",
        description: "merged by its author with no other reviewer's approval",
        why: "the four-eyes principle: the person who wrote the change also decided it ships",
    },
    Rule {
        id: "post-merge-objection",
        severity: Severity::Low,
        name: "Objection after the merge",
        description: "changes were requested after the merge",
        why: "a reviewer disagrees with something that already shipped; it may need a follow-up",
    },
];

/// A rule by id; `None` for an id no rule has (e.g. from a newer version's log).
pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

pub fn rule(id: &str) -> &'static Rule {
    RULES.iter().find(|r| r.id == id).expect("a known rule id")
}

/// One decision record as the rules see it.
#[derive(Debug, Clone)]
pub struct Fact {
    pub kind: String,
    pub actor: Option<String>,
    pub commit_sha: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// `details.review_id` of review decisions (matches a dismissal to its review).
    pub review_id: Option<i64>,
    /// `details.name` (or `context`) of check decisions.
    pub check_name: Option<String>,
    /// Where the record is in the log (account, seq), cited as evidence.
    pub record: (String, i64),
}

/// What the rules need to know about the PR besides its decisions.
#[derive(Debug, Clone, Default)]
pub struct PullFacts {
    pub author: Option<String>,
    pub merged: bool,
    pub merged_by: Option<String>,
    /// The head commit that was merged (or is current).
    pub head_sha: Option<String>,
}

/// A rule's judgment about one pull request (or push), with the records it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    /// `/records/{account}/{seq}` of the decisions the finding rests on.
    pub evidence: Vec<String>,
}

impl Finding {
    fn new(id: &'static str, message: String, evidence: Vec<&(String, i64)>) -> Finding {
        Finding {
            rule: id,
            severity: rule(id).severity,
            message,
            evidence: evidence
                .into_iter()
                .map(|(a, s)| format!("/records/{a}/{s}"))
                .collect(),
        }
    }
}

const FAILING: &[&str] = &[
    "check.failure",
    "check.timed_out",
    "check.cancelled",
    "check.action_required",
    "check.error",
    "check.pending",
    "check.stale",
];

fn short(sha: Option<&str>) -> String {
    sha.map(|s| s.chars().take(7).collect())
        .unwrap_or_else(|| "?".into())
}

/// Applies every rule to one pull request's decisions (in GitHub's order).
pub fn judge_pull(pr: &PullFacts, facts: &[Fact]) -> Vec<Finding> {
    let mut out = Vec::new();
    let merge_at = facts.iter().position(|f| f.kind == "pr.merged");
    let (before, after) = match merge_at {
        Some(i) => (&facts[..i], &facts[i + 1..]),
        None => (facts, &facts[..0]),
    };
    if let Some(i) = merge_at {
        let merge = &facts[i];
        let approvals: Vec<&Fact> = before
            .iter()
            .filter(|f| f.kind == "review.approved")
            .collect();
        if approvals.is_empty() {
            out.push(Finding::new(
                "merged-without-approval",
                format!(
                    "merged by {} with no approving review",
                    merge.actor.as_deref().unwrap_or("someone")
                ),
                vec![&merge.record],
            ));
        }

        // Standing reviews at merge, per reviewer: their latest approval / change request,
        // unless dismissed since.
        let mut standing: Vec<&Fact> = Vec::new();
        for f in before {
            match f.kind.as_str() {
                "review.approved" | "review.changes_requested" => {
                    standing.retain(|s| s.actor != f.actor);
                    standing.push(f);
                }
                "review.dismissed" => {
                    standing.retain(|s| {
                        !(s.actor == f.actor
                            && (f.review_id.is_none() || s.review_id == f.review_id))
                    });
                }
                _ => {}
            }
        }
        let head = pr.head_sha.as_deref();
        let standing_approvals: Vec<&&Fact> = standing
            .iter()
            .filter(|f| f.kind == "review.approved")
            .collect();
        if let (Some(latest), Some(head)) = (standing_approvals.last(), head)
            && latest.commit_sha.as_deref().is_some_and(|c| c != head)
            && !standing_approvals
                .iter()
                .any(|a| a.commit_sha.as_deref() == Some(head))
        {
            out.push(Finding::new(
                "stale-approval",
                format!(
                    "{} approved {}, but {} was merged",
                    latest.actor.as_deref().unwrap_or("someone"),
                    short(latest.commit_sha.as_deref()),
                    short(Some(head))
                ),
                vec![&latest.record, &merge.record],
            ));
        }
        for request in standing
            .iter()
            .filter(|f| f.kind == "review.changes_requested")
        {
            out.push(Finding::new(
                "merged-with-changes-requested",
                format!(
                    "{}'s change request on {} was still open at merge",
                    request.actor.as_deref().unwrap_or("someone"),
                    short(request.commit_sha.as_deref())
                ),
                vec![&request.record, &merge.record],
            ));
        }

        // The newest state of each check on the merged head.
        let mut checks: Vec<(&str, &Fact)> = Vec::new();
        for f in before
            .iter()
            .filter(|f| f.kind.starts_with("check.") && f.commit_sha.as_deref() == head)
        {
            let name = f.check_name.as_deref().unwrap_or("");
            checks.retain(|(n, _)| *n != name);
            checks.push((name, f));
        }
        for (name, f) in checks
            .iter()
            .filter(|(_, f)| FAILING.contains(&f.kind.as_str()))
        {
            out.push(Finding::new(
                "merged-with-failing-checks",
                format!(
                    "check {} was {} on the merged head {}",
                    if name.is_empty() { "(unnamed)" } else { name },
                    &f.kind["check.".len()..],
                    short(head)
                ),
                vec![&f.record, &merge.record],
            ));
        }

        if let Some(d) = before.iter().rposition(|f| f.kind == "review.dismissed")
            && !before[d..].iter().any(|f| f.kind == "review.approved")
        {
            out.push(Finding::new(
                "dismissed-then-merged",
                format!(
                    "{}'s review was dismissed and no one approved after that",
                    before[d].actor.as_deref().unwrap_or("someone")
                ),
                vec![&before[d].record, &merge.record],
            ));
        }

        if pr.author.is_some()
            && pr.merged_by == pr.author
            && !approvals.iter().any(|a| a.actor != pr.author)
        {
            out.push(Finding::new(
                "self-merge",
                format!(
                    "{} merged their own pull request without another reviewer's approval",
                    pr.author.as_deref().unwrap_or("someone")
                ),
                vec![&merge.record],
            ));
        }

        for f in after
            .iter()
            .filter(|f| f.kind == "review.changes_requested")
        {
            out.push(Finding::new(
                "post-merge-objection",
                format!(
                    "{} requested changes after the merge",
                    f.actor.as_deref().unwrap_or("someone")
                ),
                vec![&f.record],
            ));
        }
    }
    out
}

/// Applies the repository-level rules to one `push.forced` decision (its details).
pub fn judge_push(actor: Option<&str>, details: &Value, record: &(String, i64)) -> Option<Finding> {
    let branch = details.get("default_branch").and_then(Value::as_str)?;
    let pushed = details.get("ref").and_then(Value::as_str)?;
    (pushed == format!("refs/heads/{branch}")).then(|| {
        Finding::new(
            "force-push-default-branch",
            format!("{} force-pushed {branch}", actor.unwrap_or("someone")),
            vec![record],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(seq: i64, kind: &str, actor: &str, sha: &str, details: Value) -> Fact {
        Fact {
            kind: kind.into(),
            actor: Some(actor.into()),
            commit_sha: Some(sha.into()),
            occurred_at: DateTime::from_timestamp(1_700_000_000 + seq * 60, 0).unwrap(),
            review_id: details.get("review_id").and_then(Value::as_i64),
            check_name: details
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
            record: ("acme".into(), seq),
        }
    }

    fn ids(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.rule).collect()
    }

    fn pr(author: &str, merged_by: &str, head: &str) -> PullFacts {
        PullFacts {
            author: Some(author.into()),
            merged: true,
            merged_by: Some(merged_by.into()),
            head_sha: Some(head.into()),
        }
    }

    #[test]
    fn a_clean_merge_has_no_findings() {
        let facts = [
            f(1, "pr.opened", "dev", "a", json!({})),
            f(2, "review.approved", "rev", "a", json!({"review_id": 1})),
            f(3, "check.success", "ci", "a", json!({"name": "build"})),
            f(4, "pr.merged", "dev", "m", json!({})),
        ];
        assert!(judge_pull(&pr("dev", "dev", "a"), &facts).is_empty());
    }

    #[test]
    fn each_rule_fires_on_its_case() {
        let none = [f(1, "pr.merged", "dev", "m", json!({}))];
        assert_eq!(
            ids(&judge_pull(&pr("dev", "dev", "a"), &none)),
            ["merged-without-approval", "self-merge"]
        );
        let stale = [
            f(1, "review.approved", "rev", "a", json!({"review_id": 1})),
            f(2, "pr.synchronize", "dev", "b", json!({})),
            f(3, "pr.merged", "lead", "m", json!({})),
        ];
        assert_eq!(
            ids(&judge_pull(&pr("dev", "lead", "b"), &stale)),
            ["stale-approval"]
        );
        let objection = [
            f(1, "review.approved", "rev", "a", json!({"review_id": 1})),
            f(
                2,
                "review.changes_requested",
                "sam",
                "a",
                json!({"review_id": 2}),
            ),
            f(3, "check.failure", "ci", "a", json!({"name": "test"})),
            f(4, "check.success", "ci", "a", json!({"name": "lint"})),
            f(5, "pr.merged", "lead", "m", json!({})),
            f(
                6,
                "review.changes_requested",
                "kim",
                "a",
                json!({"review_id": 3}),
            ),
        ];
        assert_eq!(
            ids(&judge_pull(&pr("dev", "lead", "a"), &objection)),
            [
                "merged-with-changes-requested",
                "merged-with-failing-checks",
                "post-merge-objection"
            ]
        );
        let dismissed = [
            f(1, "review.approved", "rev", "a", json!({"review_id": 1})),
            f(
                2,
                "review.changes_requested",
                "sam",
                "a",
                json!({"review_id": 2}),
            ),
            f(3, "review.dismissed", "sam", "a", json!({"review_id": 2})),
            f(4, "pr.merged", "lead", "m", json!({})),
        ];
        let found = judge_pull(&pr("dev", "lead", "a"), &dismissed);
        assert_eq!(ids(&found), ["dismissed-then-merged"]);
        assert_eq!(found[0].evidence, ["/records/acme/3", "/records/acme/4"]);
        // A check that failed and then passed on the merged head is fine.
        let rerun = [
            f(1, "review.approved", "rev", "a", json!({"review_id": 1})),
            f(2, "check.failure", "ci", "a", json!({"name": "test"})),
            f(3, "check.success", "ci", "a", json!({"name": "test"})),
            f(4, "pr.merged", "lead", "m", json!({})),
        ];
        assert!(judge_pull(&pr("dev", "lead", "a"), &rerun).is_empty());
        // Not merged: nothing to judge yet.
        let open = PullFacts {
            merged: false,
            ..pr("dev", "dev", "a")
        };
        assert!(judge_pull(&open, &none[..0]).is_empty());
    }

    #[test]
    fn force_pushes_count_on_the_default_branch_only() {
        let record = ("acme".to_string(), 1);
        let main = json!({"ref": "refs/heads/main", "default_branch": "main"});
        let topic = json!({"ref": "refs/heads/topic", "default_branch": "main"});
        assert_eq!(
            judge_push(Some("dev"), &main, &record).unwrap().rule,
            "force-push-default-branch"
        );
        assert!(judge_push(Some("dev"), &topic, &record).is_none());
    }
}
