//! Text on its way from a payload into the projection tables, made acceptable to PostgreSQL.
//!
//! A signed payload may carry what PostgreSQL refuses to store as `text` or `jsonb` (a NUL
//! character, `\u0000`) or more than it can index (a review body whose search vector exceeds
//! a megabyte). One such delivery must not stop the projector, so projected text is cleaned
//! here, once, and capped. The log keeps the exact bytes; pages say where the full text is.

use serde_json::Value;

use super::decisions::{Decision, Projected, PullRequestSnapshot};
use super::features::FeatureLink;

/// Longest review or comment body kept in the projections, in bytes: GitHub's own limit is
/// 65,536 characters, so only a forged payload is ever cut.
pub const MAX_BODY_BYTES: usize = 262_144;
/// Longest title, name or other short text kept, in bytes (GitHub's titles stop at 256
/// characters). Short texts are indexed, and an index row must stay well under PostgreSQL's
/// 2,704-byte limit whatever the characters.
pub const MAX_SHORT_BYTES: usize = 1_024;
/// What a cut text ends with.
pub const CUT_MARK: &str = "\n\n[… cut here by verdict; the log entry keeps the full text]";

/// Removes the characters PostgreSQL refuses in text (NUL) and keeps at most `max` bytes,
/// cut on a character boundary (a cut body says so).
pub fn text(s: &mut String, max: usize) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        if max >= MAX_BODY_BYTES {
            s.push_str(CUT_MARK);
        }
    }
}

fn opt(s: &mut Option<String>, max: usize) {
    if let Some(s) = s {
        text(s, max);
    }
}

/// Cleans every string, and every member name, of a JSON value.
pub fn json(v: &mut Value) {
    match v {
        Value::String(s) => text(s, MAX_BODY_BYTES),
        Value::Array(items) => items.iter_mut().for_each(json),
        Value::Object(members) => {
            if members.keys().any(|k| k.contains('\0')) {
                let taken = std::mem::take(members);
                *members = taken
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', ""), v))
                    .collect();
            }
            members.values_mut().for_each(json);
        }
        _ => {}
    }
}

impl Decision {
    fn clean(&mut self) {
        text(&mut self.repo, MAX_SHORT_BYTES);
        text(&mut self.kind, MAX_SHORT_BYTES);
        opt(&mut self.actor, MAX_SHORT_BYTES);
        opt(&mut self.commit_sha, MAX_SHORT_BYTES);
        opt(&mut self.body, MAX_BODY_BYTES);
        json(&mut self.details);
    }
}

impl PullRequestSnapshot {
    fn clean(&mut self) {
        text(&mut self.repo, MAX_SHORT_BYTES);
        text(&mut self.title, MAX_SHORT_BYTES);
        text(&mut self.state, MAX_SHORT_BYTES);
        for s in [
            &mut self.author,
            &mut self.merged_by,
            &mut self.merge_commit_sha,
            &mut self.head_sha,
            &mut self.base_ref,
            &mut self.html_url,
        ] {
            opt(s, MAX_SHORT_BYTES);
        }
        opt(&mut self.body, MAX_BODY_BYTES);
    }
}

impl FeatureLink {
    fn clean(&mut self) {
        text(&mut self.repo, MAX_SHORT_BYTES);
        text(&mut self.key, MAX_SHORT_BYTES);
        text(&mut self.title, MAX_SHORT_BYTES);
    }
}

impl Projected {
    /// Makes every text acceptable to PostgreSQL (see the module's documentation).
    pub fn clean(mut self) -> Projected {
        self.decisions.iter_mut().for_each(Decision::clean);
        if let Some(pr) = &mut self.pull_request {
            pr.clean();
        }
        self.features.iter_mut().for_each(FeatureLink::clean);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_goes_and_long_text_is_cut_on_a_character_boundary() {
        let mut s = "a\0b".to_string();
        text(&mut s, 10);
        assert_eq!(s, "ab");
        let mut long = format!("x{}", "é".repeat(MAX_BODY_BYTES));
        text(&mut long, MAX_BODY_BYTES);
        assert!(long.ends_with(CUT_MARK));
        let kept = &long[..long.len() - CUT_MARK.len()];
        assert_eq!(
            kept.len(),
            MAX_BODY_BYTES - 1,
            "cut before the split character"
        );
        let mut title = "😀".repeat(1000);
        text(&mut title, MAX_SHORT_BYTES);
        assert_eq!(title.len(), MAX_SHORT_BYTES);
        let mut v = serde_json::json!({"a\u{0}": ["x\u{0}y", {"k": "\u{0}"}], "n": 1});
        json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["xy", {"k": ""}], "n": 1}));
    }
}
