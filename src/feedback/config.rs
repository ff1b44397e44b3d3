//! The rules' configuration file (`--rules-config` / `VERDICT_RULES_CONFIG`, TOML): which
//! rules apply to which repositories, and at which severity. Without a file every rule
//! applies everywhere at its default severity. A changed file affects what is judged from
//! then on (and by `verdict rules rerun`); findings already in the log stay, as the log is
//! append-only.
//!
//! ```toml
//! [defaults]                      # every rule, unless its own section says otherwise
//! repositories = ["acme/*"]       # glob patterns of owner/name; default ["*/*"]
//! exclude = ["acme/sandbox-*"]
//!
//! [rules.self-merge]
//! enabled = false
//!
//! [rules.stale-approval]
//! severity = "high"
//! repositories = ["acme/storefront", "acme/payments"]
//! ```

use std::collections::HashMap;
use std::path::Path;

use glob::{MatchOptions, Pattern};
use serde::Deserialize;

use super::rules::{RULES, Rule, Severity};

#[derive(Debug, thiserror::Error)]
pub enum RuleConfigError {
    #[error("cannot read the rules config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the rules config {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: ScopeFile,
    #[serde(default)]
    rules: HashMap<String, RuleFile>,
    retention: Option<crate::log::retention::Retention>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    repositories: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    enabled: Option<bool>,
    severity: Option<Severity>,
    repositories: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
struct Scope {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl Scope {
    fn everywhere() -> Scope {
        Scope {
            include: vec![Pattern::new("*/*").expect("a valid pattern")],
            exclude: Vec::new(),
        }
    }

    fn covers(&self, repo: &str) -> bool {
        let options = MatchOptions {
            case_sensitive: false,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.include.iter().any(|p| p.matches_with(repo, options))
            && !self.exclude.iter().any(|p| p.matches_with(repo, options))
    }
}

#[derive(Debug, Clone)]
struct Setting {
    enabled: bool,
    severity: Severity,
    scope: Scope,
}

/// One rule's configuration as people read it (`/rules`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleSetting {
    pub enabled: bool,
    pub severity: Severity,
    /// Glob patterns of `owner/name` the rule judges.
    pub repositories: Vec<String>,
    /// Patterns it leaves out.
    pub exclude: Vec<String>,
}

/// Where and how each rule applies.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    settings: HashMap<&'static str, Setting>,
    /// The `[retention]` section: which bodies to drop after how long.
    pub retention: Option<crate::log::retention::Retention>,
}

impl Default for RuleConfig {
    /// Every rule, every repository, default severities.
    fn default() -> Self {
        RuleConfig {
            settings: RULES
                .iter()
                .map(|r| {
                    (
                        r.id,
                        Setting {
                            enabled: true,
                            severity: r.severity,
                            scope: Scope::everywhere(),
                        },
                    )
                })
                .collect(),
            retention: None,
        }
    }
}

impl RuleConfig {
    pub fn load(path: &Path) -> Result<RuleConfig, RuleConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuleConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        RuleConfig::parse(&text).map_err(|reason| RuleConfigError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses the TOML text; the error names the offending key or value.
    pub fn parse(text: &str) -> Result<RuleConfig, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let patterns = |list: &Option<Vec<String>>,
                        key: &str|
         -> Result<Option<Vec<Pattern>>, String> {
            list.as_ref()
                .map(|l| {
                    l.iter()
                        .map(|p| {
                            Pattern::new(p).map_err(|e| {
                                format!("{key}: {p:?} is not a glob pattern of owner/name ({e})")
                            })
                        })
                        .collect()
                })
                .transpose()
        };
        let defaults = Scope {
            include: patterns(&file.defaults.repositories, "defaults.repositories")?
                .unwrap_or_else(|| Scope::everywhere().include),
            exclude: patterns(&file.defaults.exclude, "defaults.exclude")?.unwrap_or_default(),
        };
        for id in file.rules.keys() {
            if !RULES.iter().any(|r| r.id == id) {
                let known: Vec<&str> = RULES.iter().map(|r| r.id).collect();
                return Err(format!(
                    "[rules.{id}] names no rule; the rules are {}",
                    known.join(", ")
                ));
            }
        }
        let mut settings = HashMap::new();
        for rule in RULES {
            let own = file.rules.get(rule.id);
            let key = |k: &str| format!("rules.{}.{k}", rule.id);
            let include = match own {
                Some(o) => patterns(&o.repositories, &key("repositories"))?,
                None => None,
            };
            let exclude = match own {
                Some(o) => patterns(&o.exclude, &key("exclude"))?,
                None => None,
            };
            settings.insert(
                rule.id,
                Setting {
                    enabled: own.and_then(|o| o.enabled).unwrap_or(true),
                    severity: own.and_then(|o| o.severity).unwrap_or(rule.severity),
                    scope: Scope {
                        include: include.unwrap_or_else(|| defaults.include.clone()),
                        exclude: exclude.unwrap_or_else(|| defaults.exclude.clone()),
                    },
                },
            );
        }
        if let Some(r) = &file.retention {
            r.check()?;
        }
        Ok(RuleConfig {
            settings,
            retention: file.retention,
        })
    }

    /// Whether `rule` judges `repo` (`owner/name`).
    pub fn applies(&self, rule: &str, repo: &str) -> bool {
        self.settings
            .get(rule)
            .is_some_and(|s| s.enabled && s.scope.covers(repo))
    }

    /// How `rule` is configured, for people: on or off, severity, and the repository patterns
    /// it covers and leaves out.
    pub fn describe(&self, rule: &Rule) -> RuleSetting {
        match self.settings.get(rule.id) {
            Some(s) => RuleSetting {
                enabled: s.enabled,
                severity: s.severity,
                repositories: s.scope.include.iter().map(|p| p.to_string()).collect(),
                exclude: s.scope.exclude.iter().map(|p| p.to_string()).collect(),
            },
            None => RuleSetting {
                enabled: true,
                severity: rule.severity,
                repositories: vec!["*/*".into()],
                exclude: Vec::new(),
            },
        }
    }

    /// The severity configured for `rule`.
    pub fn severity(&self, rule: &Rule) -> Severity {
        self.settings
            .get(rule.id)
            .map_or(rule.severity, |s| s.severity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::rules::rule;

    #[test]
    fn without_a_file_every_rule_applies_everywhere() {
        let c = RuleConfig::default();
        for r in RULES {
            assert!(c.applies(r.id, "any/repo"));
            assert_eq!(c.severity(r), r.severity);
        }
    }

    #[test]
    fn scopes_severities_and_switches_apply_per_rule() {
        let c = RuleConfig::parse(
            r#"
            [defaults]
            repositories = ["acme/*"]
            exclude = ["acme/sandbox-*"]

            [rules.self-merge]
            enabled = false

            [rules.stale-approval]
            severity = "high"
            repositories = ["acme/storefront", "other/*"]
            "#,
        )
        .unwrap();
        assert!(c.applies("merged-without-approval", "acme/payments"));
        assert!(c.applies("merged-without-approval", "ACME/Payments"));
        assert!(!c.applies("merged-without-approval", "acme/sandbox-1"));
        assert!(!c.applies("merged-without-approval", "other/thing"));
        assert!(!c.applies("self-merge", "acme/payments"));
        assert!(c.applies("stale-approval", "other/thing"));
        assert!(!c.applies("stale-approval", "acme/payments"));
        assert!(!c.applies("stale-approval", "acme/sandbox-1"));
        assert_eq!(c.severity(rule("stale-approval")), Severity::High);
        assert_eq!(c.severity(rule("self-merge")), Severity::Medium);
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = RuleConfig::parse("[rules.no-such-rule]\nenabled = false").unwrap_err();
        assert!(unknown.contains("no-such-rule") && unknown.contains("stale-approval"));
        let typo = RuleConfig::parse("[rules.self-merge]\nenable = false").unwrap_err();
        assert!(typo.contains("enable"), "{typo}");
        let severity = RuleConfig::parse("[rules.self-merge]\nseverity = \"urgent\"").unwrap_err();
        assert!(severity.contains("urgent"), "{severity}");
    }
}
