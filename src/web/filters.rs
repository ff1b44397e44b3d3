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
                "kind={k:?} is not a decision kind; use one of {} or a family such as \"review\"",
                KINDS.join(", ")
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
    KINDS.contains(&k) || KINDS.iter().any(|known| known.split('.').next() == Some(k))
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
