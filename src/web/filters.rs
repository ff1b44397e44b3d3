//! The filters every timeline accepts (actor, decision kind, date range, full-text search,
//! page), parsed strictly: a malformed value is a 400 that names the parameter, never a
//! silently ignored filter.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::error::WebError;
use crate::projections::decisions::KINDS;

/// Decisions per page.
pub const PER_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    pub actor: Option<String>,
    /// A kind (`review.approved`) or a family (`review`).
    pub kind: Option<String>,
    /// Inclusive, in UTC.
    pub from: Option<NaiveDate>,
    /// Inclusive, in UTC.
    pub to: Option<NaiveDate>,
    /// Words to find in review and comment bodies (PostgreSQL web-search syntax).
    pub q: Option<String>,
    /// 1-based.
    pub page: i64,
}

impl Filters {
    /// A `kind=` that is not one of the offered groups (a kind or family typed into a link),
    /// so the form can still show it selected.
    pub fn custom_kind(&self) -> Option<&str> {
        self.kind
            .as_deref()
            .filter(|k| !GROUPS.iter().any(|g| g.value == *k))
    }

    pub fn parse(params: &HashMap<String, String>) -> Result<Filters, WebError> {
        let get = |name: &str| {
            params
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let date = |name: &str| -> Result<Option<NaiveDate>, WebError> {
            get(name)
                .map(|v| {
                    NaiveDate::parse_from_str(&v, "%Y-%m-%d").map_err(|_| {
                        WebError::BadRequest(format!(
                            "{name}={v:?} is not a date; write it as YYYY-MM-DD"
                        ))
                    })
                })
                .transpose()
        };
        let kind = get("kind");
        if let Some(k) = &kind
            && !is_kind_or_family(k)
        {
            return Err(WebError::BadRequest(format!(
                "kind={k:?} is not a decision kind; use one of {}, a kind such as \"review.approved\" or a family such as \"review\"",
                GROUPS
                    .iter()
                    .map(|g| g.value)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let page = match get("page") {
            None => 1,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(WebError::BadRequest(format!(
                        "page={v:?} is not a page number; use a whole number from 1 to {MAX_PAGE}"
                    )));
                }
            },
        };
        let q = get("q");
        if let Some(q) = &q
            && q.chars().count() > 200
        {
            return Err(WebError::BadRequest(
                "q is longer than 200 characters; search for fewer words".into(),
            ));
        }
        let actor = get("actor");
        if let Some(a) = &actor
            && (a.len() > 100 || a.chars().any(char::is_whitespace))
        {
            return Err(WebError::BadRequest(format!(
                "actor={a:?} is not a GitHub login; logins have no spaces"
            )));
        }
        let filters = Filters {
            actor,
            kind,
            from: date("from")?,
            to: date("to")?,
            q,
            page,
        };
        if let (Some(from), Some(to)) = (filters.from, filters.to)
            && from > to
        {
            return Err(WebError::BadRequest(format!(
                "from={from} is after to={to}; the date range is empty"
            )));
        }
        Ok(filters)
    }

    /// True when any filter besides the page is set.
    pub fn any(&self) -> bool {
        self.actor.is_some()
            || self.kind.is_some()
            || self.from.is_some()
            || self.to.is_some()
            || self.q.is_some()
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * PER_PAGE
    }

    /// The query string for the same filters on another page (with a leading `?`).
    pub fn query_for_page(&self, page: i64) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(v) = &self.actor {
            q.append_pair("actor", v);
        }
        if let Some(v) = &self.kind {
            q.append_pair("kind", v);
        }
        if let Some(v) = self.from {
            q.append_pair("from", &v.to_string());
        }
        if let Some(v) = self.to {
            q.append_pair("to", &v.to_string());
        }
        if let Some(v) = &self.q {
            q.append_pair("q", v);
        }
        if page > 1 {
            q.append_pair("page", &page.to_string());
        }
        let q = q.finish();
        if q.is_empty() {
            String::new()
        } else {
            format!("?{q}")
        }
    }
}

fn is_kind_or_family(k: &str) -> bool {
    KINDS.contains(&k)
        || KINDS.iter().any(|known| known.split('.').next() == Some(k))
        || GROUPS.iter().any(|g| g.value == k)
}

/// A group of decision kinds as the filter offers it, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KindGroup {
    /// What `kind=` carries.
    pub value: &'static str,
    /// What people read.
    pub label: &'static str,
    /// Kinds (exact) and families (ending in `.`) it covers.
    pub covers: &'static [&'static str],
}

/// The decision filter's choices, in words and without duplicates. `kind=` still accepts any
/// kind (`review.approved`) or family (`review`) for links made by hand.
pub const GROUPS: &[KindGroup] = &[
    KindGroup {
        value: "approvals",
        label: "Approvals",
        covers: &["review.approved"],
    },
    KindGroup {
        value: "change-requests",
        label: "Change requests",
        covers: &["review.changes_requested"],
    },
    KindGroup {
        value: "dismissals",
        label: "Dismissed reviews",
        covers: &["review.dismissed"],
    },
    KindGroup {
        value: "reviews",
        label: "All reviews",
        covers: &["review."],
    },
    KindGroup {
        value: "merges",
        label: "Merges",
        covers: &["pr.merged"],
    },
    KindGroup {
        value: "decisions",
        label: "Recorded decisions (/decision)",
        covers: &["decision."],
    },
    KindGroup {
        value: "comments",
        label: "Comments",
        covers: &[
            "comment.",
            "review_comment.",
            "review_thread.",
            "issue.commented",
            "issue.comment_edited",
            "issue.comment_deleted",
        ],
    },
    KindGroup {
        value: "checks",
        label: "Checks",
        covers: &["check."],
    },
    KindGroup {
        value: "failing-checks",
        label: "Failing checks",
        covers: &[
            "check.failure",
            "check.error",
            "check.timed_out",
            "check.cancelled",
            "check.action_required",
        ],
    },
    KindGroup {
        value: "pushes",
        label: "Pushes",
        covers: &["pr.synchronize", "push."],
    },
    KindGroup {
        value: "review-requests",
        label: "Review requests",
        covers: &["pr.review_requested", "pr.review_request_removed"],
    },
    KindGroup {
        value: "pull-requests",
        label: "Pull request changes (opened, closed, labels…)",
        covers: &["pr."],
    },
    KindGroup {
        value: "issues",
        label: "Issues",
        covers: &["issue."],
    },
];

/// The SQL `LIKE` patterns a `kind=` value selects: a group's kinds and families, a family's
/// kinds, or one kind.
pub fn kind_patterns(kind: &str) -> Vec<String> {
    let like = |k: &str| {
        if let Some(family) = k.strip_suffix('.') {
            format!("{family}.%")
        } else {
            k.to_string()
        }
    };
    if let Some(g) = GROUPS.iter().find(|g| g.value == kind) {
        g.covers.iter().map(|k| like(k)).collect()
    } else if KINDS.contains(&kind) {
        vec![kind.to_string()]
    } else {
        vec![format!("{kind}.%")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Filters, WebError> {
        Filters::parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn parses_and_round_trips() {
        let f = parse(&[
            ("actor", "octocat"),
            ("kind", "review"),
            ("from", "2026-01-01"),
            ("to", "2026-02-01"),
            ("q", "needs tests"),
            ("page", "3"),
        ])
        .unwrap();
        assert_eq!(f.offset(), 2 * PER_PAGE);
        let again = Filters::parse(
            &form_urlencoded::parse(&f.query_for_page(3).as_bytes()[1..])
                .into_owned()
                .collect(),
        )
        .unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn rejects_malformed_values_naming_the_parameter() {
        for (pairs, names) in [
            (vec![("from", "yesterday")], "from="),
            (vec![("to", "2026-13-01")], "to="),
            (vec![("page", "0")], "page="),
            (vec![("page", "two")], "page="),
            (vec![("kind", "review.lgtm")], "kind="),
            (vec![("from", "2026-02-02"), ("to", "2026-02-01")], "after"),
            (vec![("actor", "two words")], "actor="),
        ] {
            match parse(&pairs) {
                Err(WebError::BadRequest(msg)) => assert!(msg.contains(names), "{msg}"),
                other => panic!("{pairs:?} gave {other:?}"),
            }
        }
    }
}
