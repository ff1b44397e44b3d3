//! Which log a delivery belongs to: the GitHub account (organization or user) the installation
//! is for. See docs/log-format.md, "Choosing the log".

use serde::Deserialize;
use serde::de::IgnoredAny;

/// Log for deliveries that name no account at all (or whose body is not readable). `_`
/// cannot start a GitHub login, so it never collides with a real account.
pub const FALLBACK_LOG: &str = "_unattributed";

/// What the intake needs to know of a body before storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The log the delivery goes to.
    pub log_name: String,
    /// Whether a JSON payload could be read (JSON body, or GitHub's form encoding).
    pub readable: bool,
}

#[derive(Deserialize)]
struct Login {
    login: Option<String>,
}

#[derive(Deserialize)]
struct Installation {
    account: Option<Login>,
}

#[derive(Deserialize)]
struct Repository {
    owner: Option<Login>,
}

/// Only the fields that name the account; everything else is skipped while parsing.
#[derive(Deserialize)]
struct Owners {
    installation: Option<Installation>,
    organization: Option<Login>,
    repository: Option<Repository>,
}

/// Finds the log for a body: the first valid login among `installation.account`,
/// `organization` and `repository.owner`, lower-cased (GitHub logins are case-insensitive);
/// [`FALLBACK_LOG`] when there is none.
pub fn inspect(body: &[u8]) -> Inspection {
    if let Some(owners) = parse::<Owners>(body) {
        return Inspection {
            log_name: log_name_of(&owners),
            readable: true,
        };
    }
    // Readable JSON whose account fields have unexpected shapes.
    let readable = parse::<IgnoredAny>(body).is_some();
    Inspection {
        log_name: FALLBACK_LOG.to_string(),
        readable,
    }
}

/// The GitHub App installation a delivery came through (`installation.id`): write-back
/// acts as that installation.
pub fn installation_id(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<u64>,
    }
    #[derive(Deserialize)]
    struct WithInstallation {
        installation: Option<Id>,
    }
    parse::<WithInstallation>(body)?.installation?.id
}

/// Parses a JSON body, or the JSON in the `payload` field of a form-encoded body.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Option<T> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Some(value);
    }
    let (_, payload) = form_urlencoded::parse(body).find(|(key, _)| key == "payload")?;
    serde_json::from_str(&payload).ok()
}

fn log_name_of(o: &Owners) -> String {
    let candidates = [
        o.installation
            .as_ref()
            .and_then(|i| i.account.as_ref())
            .and_then(|a| a.login.as_deref()),
        o.organization.as_ref().and_then(|a| a.login.as_deref()),
        o.repository
            .as_ref()
            .and_then(|r| r.owner.as_ref())
            .and_then(|a| a.login.as_deref()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|login| is_plausible_login(login))
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| FALLBACK_LOG.to_string())
}

/// GitHub logins: ASCII letters, digits and hyphens (apps' bots end in `[bot]`), at most 39
/// characters. Anything else would make an unsafe URL segment and is not a real account.
fn is_plausible_login(login: &str) -> bool {
    let core = login.strip_suffix("[bot]").unwrap_or(login);
    !core.is_empty()
        && core.len() <= 39
        && !core.starts_with('-')
        && core.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(body: &str) -> String {
        inspect(body.as_bytes()).log_name
    }

    #[test]
    fn installation_account_wins_then_org_then_repo_owner() {
        let all = r#"{"installation": {"account": {"login": "Inst"}},
                      "organization": {"login": "Org"},
                      "repository": {"owner": {"login": "Owner"}}}"#;
        assert_eq!(log(all), "inst");
        let org = r#"{"organization": {"login": "Org"}, "repository": {"owner": {"login": "O"}}}"#;
        assert_eq!(log(org), "org");
        let repo =
            r#"{"installation": {"id": 1}, "repository": {"owner": {"login": "Codertocat"}}}"#;
        assert_eq!(log(repo), "codertocat");
    }

    #[test]
    fn no_account_or_unreadable_body_goes_to_the_fallback_log() {
        assert_eq!(
            inspect(br#"{"zen": "hi"}"#),
            Inspection {
                log_name: FALLBACK_LOG.into(),
                readable: true
            }
        );
        assert_eq!(
            inspect(b"{not json"),
            Inspection {
                log_name: FALLBACK_LOG.into(),
                readable: false
            }
        );
        assert_eq!(
            log(r#"{"organization": {"login": "../etc"}}"#),
            FALLBACK_LOG
        );
        let odd = inspect(br#"{"organization": "a string", "x": 1}"#);
        assert_eq!((odd.log_name.as_str(), odd.readable), (FALLBACK_LOG, true));
    }

    #[test]
    fn form_encoded_payloads_are_understood() {
        let body = "payload=%7B%22organization%22%3A%7B%22login%22%3A%22Acme%22%7D%7D";
        assert_eq!(log(body), "acme");
    }
}
