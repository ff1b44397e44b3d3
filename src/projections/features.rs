//! Features: the unit product managers read. A pull request belongs to a feature through a
//! label with a configurable prefix (default `feature:`), an issue it closes with GitHub's
//! closing keywords (in its own repository or another), its milestone, or a tracker key
//! (Jira, Linear: `ABC-123`) in its title or branch name when a key pattern is configured.

use serde_json::Value;

/// Default label prefix that puts a PR in a feature (`feature: checkout` → `checkout`).
pub const DEFAULT_LABEL_PREFIX: &str = "feature:";

/// What puts a pull request in a feature besides closing keywords and milestones.
#[derive(Debug, Clone)]
pub struct FeatureLinking {
    /// Label prefix (`feature: checkout` → `checkout`).
    pub label_prefix: String,
    /// Tracker keys in titles and branch names (`VERDICT_FEATURE_KEY_PATTERN`).
    pub key_pattern: Option<regex::Regex>,
    /// Where a tracker key's issue is, with `{key}` for the key
    /// (`VERDICT_FEATURE_KEY_URL`, e.g. `https://linear.app/acme/issue/{key}`).
    pub key_url: Option<String>,
}

impl FeatureLinking {
    /// Labels with `prefix`, no tracker keys.
    pub fn labels(prefix: impl Into<String>) -> FeatureLinking {
        FeatureLinking {
            label_prefix: prefix.into(),
            key_pattern: None,
            key_url: None,
        }
    }

    /// The tracker's page of `key`, when a tracker URL is configured and `key` is one the
    /// pattern finds.
    pub fn tracker_link(&self, key: &str) -> Option<String> {
        let (pattern, url) = (self.key_pattern.as_ref()?, self.key_url.as_ref()?);
        let whole = pattern
            .find_iter(key)
            .any(|m| m.as_str().eq_ignore_ascii_case(key));
        whole.then(|| {
            url.replace(
                "{key}",
                &form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>(),
            )
        })
    }
}

/// Longest tracker key kept (a key is an id, not a sentence).
const MAX_TRACKER_KEY: usize = 64;

/// How a pull request came to belong to a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSource {
    Label,
    ClosingIssue,
    Milestone,
    /// A tracker key in the title or branch name.
    TrackerKey,
    /// Not a PR link: the issue itself, which names the feature.
    IssueTitle,
}

impl LinkSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkSource::Label => "label",
            LinkSource::ClosingIssue => "closes",
            LinkSource::Milestone => "milestone",
            LinkSource::TrackerKey => "tracker",
            LinkSource::IssueTitle => "issue",
        }
    }
}

/// A feature of a repository, and the PR linked to it (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureLink {
    /// `owner/name` of the repository the feature lives in.
    pub repo: String,
    /// URL-safe key: `issue-42`, `milestone-v2-0`, or the slug of the label's suffix.
    pub key: String,
    /// Human title.
    pub title: String,
    pub source: LinkSource,
    pub pr_number: Option<i64>,
}

impl FeatureLink {
    /// The feature an issue stands for, titled by the issue.
    pub fn issue_title(repo: &str, number: i64, title: &str) -> FeatureLink {
        FeatureLink {
            repo: repo.to_string(),
            key: issue_key(number),
            title: format!("#{number} {title}"),
            source: LinkSource::IssueTitle,
            pr_number: None,
        }
    }
}

/// Key of the feature an issue stands for.
pub fn issue_key(number: i64) -> String {
    format!("issue-{number}")
}

/// Lower-case ASCII slug: letters and digits, runs of anything else become one `-`.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Feature links of a PR payload object in `repo`.
pub fn links_of_pull_request(repo: &str, pr: &Value, linking: &FeatureLinking) -> Vec<FeatureLink> {
    let label_prefix = linking.label_prefix.as_str();
    let Some(number) = pr.get("number").and_then(Value::as_i64) else {
        return Vec::new();
    };
    let mut links = Vec::new();
    let mut add = |repo: &str, key: String, title: String, source| {
        if !key.is_empty()
            && !links
                .iter()
                .any(|l: &FeatureLink| l.repo == repo && l.key == key)
        {
            links.push(FeatureLink {
                repo: repo.to_string(),
                key,
                title,
                source,
                pr_number: Some(number),
            });
        }
    };
    for label in pr
        .get("labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = label.get("name").and_then(Value::as_str)
            && let Some(rest) = strip_prefix_ci(name, label_prefix)
        {
            add(repo, slug(rest), rest.trim().to_string(), LinkSource::Label);
        }
    }
    if let Some(body) = pr.get("body").and_then(Value::as_str) {
        for (issue_repo, n) in closing_references(body, repo) {
            add(
                &issue_repo,
                issue_key(n),
                format!("#{n}"),
                LinkSource::ClosingIssue,
            );
        }
    }
    if let Some(pattern) = &linking.key_pattern {
        for text in ["/title", "/head/ref"]
            .iter()
            .filter_map(|p| pr.pointer(p).and_then(Value::as_str))
        {
            for found in pattern.find_iter(text) {
                let key = found.as_str().to_ascii_uppercase();
                let url_safe = key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if url_safe && !key.is_empty() && key.len() <= MAX_TRACKER_KEY {
                    add(repo, key.clone(), key, LinkSource::TrackerKey);
                }
            }
        }
    }
    if let Some(title) = pr.pointer("/milestone/title").and_then(Value::as_str) {
        add(
            repo,
            format!("milestone-{}", slug(title)),
            title.to_string(),
            LinkSource::Milestone,
        );
    }
    links
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get`, not indexing: a label may have a multi-byte character where the prefix ends.
    s.get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .and_then(|_| s.get(prefix.len()..))
}

/// Issues a PR body closes with GitHub's keywords (close/closes/closed, fix/fixes/fixed,
/// resolve/resolves/resolved, optionally followed by a colon), referenced as `#N`,
/// `owner/repo#N` or an issue URL. Returns `(owner/repo, N)`.
pub fn closing_references(body: &str, this_repo: &str) -> Vec<(String, i64)> {
    const KEYWORDS: [&str; 9] = [
        "close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved",
    ];
    let words: Vec<&str> = body.split_whitespace().collect();
    let mut refs = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0].trim_end_matches(':').to_ascii_lowercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            continue;
        }
        let target = pair[1].trim_end_matches(['.', ',', ';', ')', '!']);
        if let Some(r) = parse_issue_ref(target, this_repo)
            && !refs.contains(&r)
        {
            refs.push(r);
        }
    }
    refs
}

fn parse_issue_ref(target: &str, this_repo: &str) -> Option<(String, i64)> {
    let number = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0);
    if let Some(n) = target.strip_prefix('#') {
        return Some((this_repo.to_string(), number(n)?));
    }
    let valid = |repo: String| crate::github::names::is_full_name(&repo).then_some(repo);
    if let Some(rest) = target.strip_prefix("https://github.com/") {
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() >= 4 && parts[2] == "issues" {
            return Some((
                valid(format!("{}/{}", parts[0], parts[1]))?,
                number(parts[3])?,
            ));
        }
        return None;
    }
    let (repo, n) = target.split_once('#')?;
    Some((valid(repo.to_string())?, number(n)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn closing_keywords_in_all_their_forms() {
        let body = "Fixes #12. Also closes octo/other#7, resolves: https://github.com/o/r/issues/9\n\
                    Mentions #99 without a keyword; FIXED #12 again";
        assert_eq!(
            closing_references(body, "o/r"),
            vec![
                ("o/r".into(), 12),
                ("octo/other".into(), 7),
                ("o/r".into(), 9)
            ]
        );
        assert!(closing_references("see #4, fixes nothing", "o/r").is_empty());
    }

    #[test]
    fn labels_issues_and_milestones_make_features() {
        let pr = json!({"number": 5, "body": "Closes #3",
                        "labels": [{"name": "Feature: One-click Checkout"}, {"name": "bug"}],
                        "milestone": {"title": "v2.0"}});
        let links =
            links_of_pull_request("o/r", &pr, &FeatureLinking::labels(DEFAULT_LABEL_PREFIX));
        let keys: Vec<(&str, LinkSource)> =
            links.iter().map(|l| (l.key.as_str(), l.source)).collect();
        assert_eq!(
            keys,
            vec![
                ("one-click-checkout", LinkSource::Label),
                ("issue-3", LinkSource::ClosingIssue),
                ("milestone-v2-0", LinkSource::Milestone)
            ]
        );
        assert!(links.iter().all(|l| l.pr_number == Some(5)));
        assert!(
            links_of_pull_request("o/r", &pr, &FeatureLinking::labels("area:"))
                .iter()
                .all(|l| l.source != LinkSource::Label)
        );
        // A multi-byte character where the prefix would end is no prefix (and no panic).
        let pr = json!({"number": 6, "labels": [{"name": "ෲ`<𐄰/¥k5"}, {"name": "feat😀: x"}]});
        assert!(
            links_of_pull_request("o/r", &pr, &FeatureLinking::labels(DEFAULT_LABEL_PREFIX))
                .is_empty()
        );
    }

    #[test]
    fn tracker_keys_in_titles_and_branch_names_make_features() {
        let linking = FeatureLinking {
            label_prefix: DEFAULT_LABEL_PREFIX.into(),
            key_pattern: Some(regex::Regex::new("(?i)[A-Z][A-Z0-9]+-[0-9]+").unwrap()),
            key_url: Some("https://linear.app/acme/issue/{key}".into()),
        };
        assert_eq!(
            linking.tracker_link("PAY-12").as_deref(),
            Some("https://linear.app/acme/issue/PAY-12")
        );
        assert_eq!(linking.tracker_link("checkout"), None);
        let pr = json!({"number": 5, "title": "PAY-12: card vault", "labels": [],
                        "head": {"ref": "pay-12-vault-and-web-7"}});
        let keys: Vec<(String, LinkSource)> = links_of_pull_request("o/r", &pr, &linking)
            .into_iter()
            .map(|l| (l.key, l.source))
            .collect();
        assert_eq!(
            keys,
            [
                ("PAY-12".to_string(), LinkSource::TrackerKey),
                ("WEB-7".to_string(), LinkSource::TrackerKey)
            ]
        );
        // Without a pattern, titles and branches say nothing.
        assert!(
            links_of_pull_request("o/r", &pr, &FeatureLinking::labels(DEFAULT_LABEL_PREFIX))
                .is_empty()
        );
    }
}
