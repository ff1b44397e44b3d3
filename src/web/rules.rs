//! `/rules`: every accountability rule in words — its name, what it checks, why it matters —
//! and how this server is configured to apply it (on or off, severity, repositories).

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use serde::Serialize;

use super::WebState;
use super::access::Viewer;
use crate::feedback::config::{RuleConfig, RuleSetting};
use crate::feedback::rules::{RULES, Rule};

/// A rule and its configuration.
#[derive(Debug, Clone, Serialize)]
pub struct RuleItem {
    #[serde(flatten)]
    pub rule: Rule,
    /// The severity it has by default (the configured one is in `setting`).
    pub default_severity: &'static str,
    pub setting: RuleSetting,
    /// The findings list narrowed to this rule.
    pub findings_url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RulesPage {
    pub rules: Vec<RuleItem>,
}

/// Every rule, in the order the judge applies them.
pub fn rules(config: &RuleConfig) -> RulesPage {
    RulesPage {
        rules: RULES
            .iter()
            .map(|r| RuleItem {
                rule: *r,
                default_severity: r.severity.as_str(),
                setting: config.describe(r),
                findings_url: format!("/findings?rule={}", r.id),
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesHtml {
    viewer: Viewer,
    api_url: String,
    page: RulesPage,
}

pub async fn page(State(s): State<WebState>, viewer: Viewer, uri: Uri) -> Response {
    super::pages::respond(
        &viewer,
        Ok(RulesHtml {
            viewer: viewer.clone(),
            api_url: super::pages::api_url(&uri),
            page: rules(&s.rules),
        }),
    )
}

pub async fn api(State(s): State<WebState>) -> Response {
    super::api::json(Ok(rules(&s.rules)))
}
