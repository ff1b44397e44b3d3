//! GitHub's rules for the names verdict puts into links, file names, headers and keys. A name
//! from a payload or a request that breaks them is not GitHub's, and is refused before it
//! reaches any of those places.

/// An account login (user or organization): letters, digits, hyphens and (for enterprise
/// managed users) underscores; at most 39 characters on github.com, so 100 leaves room for
/// Enterprise Server's longer ones. Bots end in `[bot]`.
pub fn is_login(s: &str) -> bool {
    let core = s.strip_suffix("[bot]").unwrap_or(s);
    (1..=100).contains(&core.len())
        && !core.starts_with('-')
        && core
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A repository's own name: letters, digits, `.`, `-` and `_`, at most 100 characters, and
/// not `.` or `..`.
pub fn is_repo_name(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// `owner/name`, each part valid.
pub fn is_full_name(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(owner, name)| is_login(owner) && is_repo_name(name))
}

/// A branch or tag name as git allows it (`git check-ref-format`), within GitHub's 255 bytes.
pub fn is_ref_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.ends_with('.')
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("//")
        && !s.contains("@{")
        && s != "@"
        && !s.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c))
}

/// A label name: any text GitHub shows, up to 50 characters, without control characters.
pub fn is_label(s: &str) -> bool {
    (1..=50).contains(&s.chars().count()) && !s.chars().any(char::is_control)
}

/// GitHub's web address when none is configured.
pub const GITHUB_URL: &str = "https://github.com";

/// `url` (from a payload or an API answer) if it is an `http`/`https` address on GitHub's web
/// host, `github_url` (`https://github.com`, or an Enterprise Server's), with no user name or
/// password: the only addresses from GitHub that become links. Returned re-serialized, so
/// what reaches a page is exactly what was checked.
pub fn github_link(url: &str, github_url: &str) -> Option<String> {
    let github = url::Url::parse(github_url).ok()?;
    let u = url::Url::parse(url.trim()).ok()?;
    let same_host = u.host_str().is_some_and(|h| {
        github.host_str().is_some_and(|g| {
            h.eq_ignore_ascii_case(g) || h.eq_ignore_ascii_case(&format!("www.{g}"))
        })
    });
    (matches!(u.scheme(), "https" | "http")
        && same_host
        && u.port_or_known_default() == github.port_or_known_default()
        && u.username().is_empty()
        && u.password().is_none())
    .then(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_githubs_own_addresses_become_links() {
        for ok in [
            "https://github.com/acme/web/pull/7",
            "https://github.com/acme/web/pull/7#issuecomment-1",
            "HTTPS://GitHub.com/acme/web",
        ] {
            assert!(github_link(ok, GITHUB_URL).is_some(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript://github.com/%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "//evil.example/acme",
            "/acme/web",
            "https://evil.example/github.com",
            "https://github.com.evil.example/x",
            "https://github.com@evil.example/x",
            "https://user:pw@github.com/x",
            "https://github.com:8443/x",
            "ftp://github.com/x",
            "",
        ] {
            assert_eq!(github_link(bad, GITHUB_URL), None, "{bad}");
        }
        assert_eq!(
            github_link(
                "https://ghe.acme.internal/a/b/pull/1",
                "https://ghe.acme.internal"
            ),
            Some("https://ghe.acme.internal/a/b/pull/1".into())
        );
        assert_eq!(
            github_link("https://github.com/a/b\"><script>", GITHUB_URL).as_deref(),
            Some("https://github.com/a/b%22%3E%3Cscript%3E"),
            "re-serialized: quotes and brackets escaped"
        );
    }

    #[test]
    fn names_follow_githubs_rules() {
        for ok in [
            "octocat",
            "acme-corp",
            "dependabot[bot]",
            "user_shortcode",
            "A1",
        ] {
            assert!(is_login(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a b",
            "a/b",
            "../etc",
            "é",
            "a\r\nb",
            "x[bot][bot]",
        ] {
            assert!(!is_login(bad), "{bad:?}");
        }
        for ok in ["storefront", "Hello-World", ".github", "a_b.c"] {
            assert!(is_repo_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a?b", "a\"b", &"x".repeat(101)] {
            assert!(!is_repo_name(bad), "{bad:?}");
        }
        assert!(is_full_name("acme/storefront"));
        for bad in [
            "acme",
            "/storefront",
            "acme/",
            "//evil.example/x",
            "a/b/c",
            "a/b\r\n",
        ] {
            assert!(!is_full_name(bad), "{bad:?}");
        }
        for ok in [
            "main",
            "feature/one-click",
            "release-1.2",
            "refs/heads/main",
        ] {
            assert!(is_ref_name(ok), "{ok}");
        }
        for bad in ["", "a..b", "a b", "x.lock", "/x", "x/", "a\nb", "a:b", "@"] {
            assert!(!is_ref_name(bad), "{bad:?}");
        }
        assert!(is_label("feature: One-click checkout"));
        assert!(!is_label("a\nb"));
        assert!(!is_label(&"x".repeat(51)));
    }
}
