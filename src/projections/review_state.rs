//! Where a pull request's review stands, replayed from its decision records in order: who
//! approved which commit, which change requests are still open, which approvals went stale.
//! Pages summarise it; accountability rules judge it.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The decision facts the review state depends on.
#[derive(Debug, Clone)]
pub struct ReviewEvent {
    pub kind: String,
    pub actor: Option<String>,
    pub commit_sha: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// `details.review_id` of review decisions, to match a dismissal to its review.
    pub review_id: Option<i64>,
}

/// One reviewer's approval and whether it still covers the PR's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub reviewer: String,
    pub commit_sha: Option<String>,
    pub at: DateTime<Utc>,
    /// Approved a commit other than the head that was merged (or is current).
    pub stale: bool,
}

/// An open request for changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRequest {
    pub reviewer: String,
    pub commit_sha: Option<String>,
    pub at: DateTime<Utc>,
}

/// A PR's review state at its end (merge) or now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReviewState {
    /// Each reviewer's standing approval (latest review of theirs is an approval).
    pub approvals: Vec<Approval>,
    /// Change requests not superseded by the same reviewer's approval or a dismissal.
    pub outstanding_change_requests: Vec<ChangeRequest>,
    /// Reviews dismissed, by reviewer.
    pub dismissed: Vec<String>,
    /// Change requests made after the merge.
    pub post_merge_change_requests: Vec<ChangeRequest>,
}

#[derive(Clone)]
enum Standing {
    Approved(Approval, Option<i64>),
    ChangesRequested(ChangeRequest, Option<i64>),
}

impl ReviewState {
    /// Replays `events` (in the decision order) against the head commit that counts: the
    /// head when merged, else the current head.
    pub fn replay(events: &[ReviewEvent], head_sha: Option<&str>) -> ReviewState {
        let mut standing: Vec<(String, Standing)> = Vec::new();
        let mut state = ReviewState::default();
        let mut merged = false;
        let set = |standing: &mut Vec<(String, Standing)>, who: String, s: Option<Standing>| {
            standing.retain(|(r, _)| *r != who);
            if let Some(s) = s {
                standing.push((who, s));
            }
        };
        for e in events {
            let Some(who) = e.actor.clone() else { continue };
            match e.kind.as_str() {
                "pr.merged" => merged = true,
                "review.approved" if !merged => {
                    let approval = Approval {
                        reviewer: who.clone(),
                        commit_sha: e.commit_sha.clone(),
                        at: e.occurred_at,
                        stale: false,
                    };
                    set(
                        &mut standing,
                        who,
                        Some(Standing::Approved(approval, e.review_id)),
                    );
                }
                "review.changes_requested" => {
                    let request = ChangeRequest {
                        reviewer: who.clone(),
                        commit_sha: e.commit_sha.clone(),
                        at: e.occurred_at,
                    };
                    if merged {
                        state.post_merge_change_requests.push(request);
                    } else {
                        set(
                            &mut standing,
                            who,
                            Some(Standing::ChangesRequested(request, e.review_id)),
                        );
                    }
                }
                "review.dismissed" if !merged => {
                    // A dismissal withdraws that review (or, without an id, the reviewer's standing).
                    let matches = |id: &Option<i64>| e.review_id.is_none() || *id == e.review_id;
                    let withdrawn = standing.iter().any(|(r, s)| {
                        *r == who
                            && match s {
                                Standing::Approved(_, id) | Standing::ChangesRequested(_, id) => {
                                    matches(id)
                                }
                            }
                    });
                    if withdrawn {
                        set(&mut standing, who.clone(), None);
                    }
                    state.dismissed.push(who);
                }
                _ => {}
            }
        }
        for (_, s) in standing {
            match s {
                Standing::Approved(mut a, _) => {
                    a.stale = match (head_sha, &a.commit_sha) {
                        (Some(head), Some(commit)) => head != commit,
                        _ => false,
                    };
                    state.approvals.push(a);
                }
                Standing::ChangesRequested(c, _) => state.outstanding_change_requests.push(c),
            }
        }
        state
    }

    /// Approvals that still cover the head.
    pub fn fresh_approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals.iter().filter(|a| !a.stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, actor: &str, sha: &str, minute: u32, id: Option<i64>) -> ReviewEvent {
        ReviewEvent {
            kind: kind.into(),
            actor: Some(actor.into()),
            commit_sha: Some(sha.into()),
            occurred_at: format!("2026-01-01T10:{minute:02}:00Z").parse().unwrap(),
            review_id: id,
        }
    }

    #[test]
    fn approval_of_an_older_head_is_stale() {
        let events = [
            ev("review.approved", "ana", "aaa", 1, Some(1)),
            ev("pr.synchronize", "bob", "bbb", 2, None),
            ev("review.approved", "cy", "bbb", 3, Some(2)),
        ];
        let state = ReviewState::replay(&events, Some("bbb"));
        assert_eq!(state.approvals.len(), 2);
        assert!(
            state
                .approvals
                .iter()
                .find(|a| a.reviewer == "ana")
                .unwrap()
                .stale
        );
        assert!(
            !state
                .approvals
                .iter()
                .find(|a| a.reviewer == "cy")
                .unwrap()
                .stale
        );
        assert_eq!(state.fresh_approvals().count(), 1);
    }

    #[test]
    fn change_request_stands_until_the_same_reviewer_approves_or_it_is_dismissed() {
        let events = [
            ev("review.changes_requested", "ana", "aaa", 1, Some(1)),
            ev("review.changes_requested", "cy", "aaa", 2, Some(2)),
            ev("review.approved", "ana", "bbb", 3, Some(3)),
            ev("review.approved", "dee", "bbb", 4, Some(4)),
        ];
        let state = ReviewState::replay(&events, Some("bbb"));
        assert_eq!(state.outstanding_change_requests.len(), 1);
        assert_eq!(state.outstanding_change_requests[0].reviewer, "cy");

        let mut dismissed = events.to_vec();
        dismissed.push(ev("review.dismissed", "cy", "aaa", 5, Some(2)));
        let state = ReviewState::replay(&dismissed, Some("bbb"));
        assert!(state.outstanding_change_requests.is_empty());
        assert_eq!(state.dismissed, vec!["cy".to_string()]);
    }

    #[test]
    fn dismissing_an_approval_withdraws_it_and_later_reviews_count_after_merge_separately() {
        let events = [
            ev("review.approved", "ana", "aaa", 1, Some(1)),
            ev("review.dismissed", "ana", "aaa", 2, Some(1)),
            ev("pr.merged", "bob", "mmm", 3, None),
            ev("review.changes_requested", "cy", "aaa", 4, Some(2)),
        ];
        let state = ReviewState::replay(&events, Some("aaa"));
        assert!(state.approvals.is_empty());
        assert!(state.outstanding_change_requests.is_empty());
        assert_eq!(state.post_merge_change_requests.len(), 1);
    }
}
