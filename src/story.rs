//! A realistic story of one feature, built from GitHub's real webhook payloads with the
//! names, numbers, commits and times changed: the demo replays it, the tests check the pages
//! against it, the benchmarks grow it. Every delivery is what GitHub would send.
//!
//! Issue acme/storefront#41 "One-click checkout" is closed by two PRs:
//! - #42 (dev-lena): rev-omar requests changes (his review tries to smuggle a script in), new
//!   commits are pushed, rev-omar approves, rev-sam requests changes, maria-pm comments, and
//!   dev-lena merges with rev-sam's change request still open.
//! - #43 (dev-kai): rev-omar approves, new commits make that approval stale, rev-sam requests
//!   changes, dev-kai dismisses that review and merges on the stale approval.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// The account (GitHub organization) the story happens in.
pub const ACCOUNT: &str = "acme";
/// The repository.
pub const REPO: &str = "acme/storefront";
/// The feature page the story builds (the issue both PRs close).
pub const FEATURE_KEY: &str = "issue-41";
pub const FEATURE_TITLE: &str = "One-click checkout";

/// The private repository of the same account, where a second feature happens.
pub const PRIVATE_REPO: &str = "acme/billing";
/// Its feature's title.
pub const PRIVATE_FEATURE_TITLE: &str = "Card vault";

/// One webhook delivery, ready to sign and send.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: &'static str,
    pub delivery_id: String,
    pub body: Vec<u8>,
}

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!("../tests/fixtures/github/api.github.com/", $path))
    };
}

const ISSUE_OPENED: &[u8] = fixture!("issues/opened.1.json");
const PR_OPENED: &[u8] = fixture!("pull_request/opened.1.json");
const PR_REVIEW_REQUESTED: &[u8] = fixture!("pull_request/review_requested.1.json");
const PR_SYNCHRONIZE: &[u8] = fixture!("pull_request/synchronize.1.json");
const PR_CLOSED: &[u8] = fixture!("pull_request/closed.1.json");
const REVIEW_SUBMITTED: &[u8] = fixture!("pull_request_review/submitted.1.json");
const REVIEW_DISMISSED: &[u8] = fixture!("pull_request_review/dismissed.1.json");
const REVIEW_COMMENT: &[u8] = fixture!("pull_request_review_comment/created.1.json");
const ISSUE_COMMENT: &[u8] = fixture!("issue_comment/created.1.json");
const CHECK_RUN_COMPLETED: &[u8] = fixture!("check_run/completed.1.json");
const PUSH: &[u8] = fixture!("push/event.1.json");

/// Sets the value at a JSON pointer, creating objects on the way.
fn set(v: &mut Value, pointer: &str, value: Value) {
    let mut cur = v;
    for part in pointer.trim_start_matches('/').split('/') {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert(Value::Null);
    }
    *cur = value;
}

fn t(at: DateTime<Utc>) -> Value {
    json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn user(login: &str) -> Value {
    json!({"login": login, "id": login.len() as i64 * 1000 + 7, "type": "User",
           "html_url": format!("https://github.com/{login}")})
}

/// A short fake commit id that reads like one.
fn sha(tag: &str) -> String {
    let digest = crate::log::entry::body_hash(tag.as_bytes());
    hex::encode(&digest[..20])
}

/// The state of one PR as the story goes.
struct Pr {
    number: i64,
    title: &'static str,
    body: &'static str,
    author: &'static str,
    head: String,
    created: DateTime<Utc>,
}

struct Story {
    run: String,
    deliveries: Vec<Delivery>,
    review_id: i64,
}

impl Story {
    fn base(&self, raw: &[u8], action: &str, sender: &str) -> Value {
        let mut v: Value = serde_json::from_slice(raw).expect("bundled fixture is JSON");
        set(&mut v, "/action", json!(action));
        set(&mut v, "/repository/name", json!("storefront"));
        set(&mut v, "/repository/full_name", json!(REPO));
        set(&mut v, "/repository/private", json!(false));
        set(&mut v, "/repository/owner", user(ACCOUNT));
        set(
            &mut v,
            "/repository/html_url",
            json!(format!("https://github.com/{REPO}")),
        );
        set(&mut v, "/organization/login", json!(ACCOUNT));
        set(
            &mut v,
            "/installation",
            json!({"id": 4242, "account": user(ACCOUNT)}),
        );
        set(&mut v, "/sender", user(sender));
        v
    }

    fn pr_json(&self, pr: &Pr, updated: DateTime<Utc>, merged_by: Option<&str>) -> Value {
        let mut p: Value =
            serde_json::from_slice::<Value>(PR_OPENED).unwrap()["pull_request"].clone();
        set(&mut p, "/number", json!(pr.number));
        set(&mut p, "/title", json!(pr.title));
        set(&mut p, "/body", json!(pr.body));
        set(&mut p, "/user", user(pr.author));
        set(
            &mut p,
            "/state",
            json!(if merged_by.is_some() {
                "closed"
            } else {
                "open"
            }),
        );
        set(&mut p, "/draft", json!(false));
        set(&mut p, "/merged", json!(merged_by.is_some()));
        set(
            &mut p,
            "/merged_by",
            merged_by.map(user).unwrap_or(Value::Null),
        );
        set(
            &mut p,
            "/merged_at",
            if merged_by.is_some() {
                t(updated)
            } else {
                Value::Null
            },
        );
        set(
            &mut p,
            "/closed_at",
            if merged_by.is_some() {
                t(updated)
            } else {
                Value::Null
            },
        );
        set(
            &mut p,
            "/merge_commit_sha",
            merged_by
                .map(|_| json!(sha(&format!("merge-{}", pr.number))))
                .unwrap_or(Value::Null),
        );
        set(&mut p, "/head/sha", json!(pr.head));
        set(&mut p, "/base/ref", json!("main"));
        set(&mut p, "/labels", json!([]));
        set(&mut p, "/milestone", Value::Null);
        set(
            &mut p,
            "/html_url",
            json!(format!("https://github.com/{REPO}/pull/{}", pr.number)),
        );
        set(&mut p, "/created_at", t(pr.created));
        set(&mut p, "/updated_at", t(updated));
        p
    }

    /// A GitHub id no other object of the story has (review, comment and check run ids are
    /// unique on GitHub; decision records are keyed by them).
    fn next_id(&mut self) -> i64 {
        self.review_id += 1;
        self.review_id
    }

    fn push(&mut self, event: &'static str, mut v: Value) {
        for object in ["comment", "check_run"] {
            if v.get(object).is_some_and(Value::is_object) {
                let id = self.next_id();
                set(&mut v, &format!("/{object}/id"), json!(id));
            }
        }
        // A comment's address on GitHub, in the story's repository (not the fixture's).
        if v.pointer("/comment/html_url").is_some() {
            let id = v.pointer("/comment/id").cloned().unwrap_or(json!(0));
            let url = if let Some(n) = v.pointer("/pull_request/number") {
                format!("https://github.com/{REPO}/pull/{n}#discussion_r{id}")
            } else {
                let n = v.pointer("/issue/number").cloned().unwrap_or(json!(0));
                let page = if v.pointer("/issue/pull_request").is_some() {
                    "pull"
                } else {
                    "issues"
                };
                format!("https://github.com/{REPO}/{page}/{n}#issuecomment-{id}")
            };
            set(&mut v, "/comment/html_url", json!(url));
        }
        let n = self.deliveries.len();
        self.deliveries.push(Delivery {
            event,
            delivery_id: format!("story-{}-{n:02}", self.run),
            body: serde_json::to_vec(&v).unwrap(),
        });
    }

    fn pr_event(
        &mut self,
        raw: &[u8],
        action: &str,
        sender: &str,
        pr: &Pr,
        at: DateTime<Utc>,
    ) -> Value {
        let mut v = self.base(raw, action, sender);
        set(&mut v, "/number", json!(pr.number));
        set(&mut v, "/pull_request", self.pr_json(pr, at, None));
        v
    }

    fn review(
        &mut self,
        pr: &Pr,
        reviewer: &str,
        state: &str,
        body: &str,
        at: DateTime<Utc>,
    ) -> i64 {
        self.next_id();
        let mut v = self.base(REVIEW_SUBMITTED, "submitted", reviewer);
        set(&mut v, "/pull_request", self.pr_json(pr, at, None));
        set(&mut v, "/review/id", json!(self.review_id));
        set(&mut v, "/review/user", user(reviewer));
        set(&mut v, "/review/state", json!(state));
        set(&mut v, "/review/body", json!(body));
        set(&mut v, "/review/commit_id", json!(pr.head));
        set(&mut v, "/review/submitted_at", t(at));
        set(
            &mut v,
            "/review/html_url",
            json!(format!(
                "https://github.com/{REPO}/pull/{}#pullrequestreview-{}",
                pr.number, self.review_id
            )),
        );
        self.push("pull_request_review", v);
        self.review_id
    }

    fn synchronize(&mut self, pr: &mut Pr, sender: &str, new_head: String, at: DateTime<Utc>) {
        let before = std::mem::replace(&mut pr.head, new_head);
        let mut v = self.pr_event(PR_SYNCHRONIZE, "synchronize", sender, pr, at);
        set(&mut v, "/before", json!(before));
        set(&mut v, "/after", json!(pr.head));
        self.push("pull_request", v);
    }

    fn merge(&mut self, pr: &Pr, by: &str, at: DateTime<Utc>) {
        let mut v = self.base(PR_CLOSED, "closed", by);
        set(&mut v, "/number", json!(pr.number));
        set(&mut v, "/pull_request", self.pr_json(pr, at, Some(by)));
        self.push("pull_request", v);
    }

    fn comment(&mut self, pr: &Pr, who: &str, body: &str, at: DateTime<Utc>) {
        let mut v = self.base(ISSUE_COMMENT, "created", who);
        set(&mut v, "/issue/number", json!(pr.number));
        set(&mut v, "/issue/title", json!(pr.title));
        set(
            &mut v,
            "/issue/pull_request",
            json!({"url": format!("https://api.github.com/repos/{REPO}/pulls/{}", pr.number)}),
        );
        set(&mut v, "/comment/user", user(who));
        set(&mut v, "/comment/body", json!(body));
        set(&mut v, "/comment/created_at", t(at));
        set(&mut v, "/comment/updated_at", t(at));
        self.push("issue_comment", v);
    }
}

/// The same story in the private repository [`PRIVATE_REPO`], with titles of its own: a
/// feature only people who can read that repository on GitHub may see.
pub fn private_story(run: &str) -> Vec<Delivery> {
    feature_story(run)
        .into_iter()
        .map(|mut d| {
            let mut v: Value = serde_json::from_slice(&d.body).expect("the story is JSON");
            let (_, name) = PRIVATE_REPO.split_once('/').expect("owner/name");
            set(&mut v, "/repository/full_name", json!(PRIVATE_REPO));
            set(&mut v, "/repository/name", json!(name));
            set(&mut v, "/repository/private", json!(true));
            set(
                &mut v,
                "/repository/html_url",
                json!(format!("https://github.com/{PRIVATE_REPO}")),
            );
            for title in ["/issue/title", "/pull_request/title"] {
                if let Some(Value::String(t)) = v.pointer_mut(title) {
                    *t = t
                        .replace(FEATURE_TITLE, PRIVATE_FEATURE_TITLE)
                        .replace("Checkout:", "Vault:");
                }
            }
            for url in [
                "/pull_request/html_url",
                "/issue/html_url",
                "/comment/html_url",
                "/pull_request/body",
            ] {
                if let Some(Value::String(u)) = v.pointer_mut(url) {
                    *u = u.replace(REPO, PRIVATE_REPO);
                }
            }
            d.body = serde_json::to_vec(&v).expect("JSON serializes");
            d.delivery_id = format!("private-{}", d.delivery_id);
            d
        })
        .collect()
}

/// The story's deliveries in the order GitHub sends them. `run` names the delivery ids; the
/// bodies are the same whatever the run, so sending the story again under another run is a
/// replay (answered with the first run's entries), and under the same run a redelivery.
pub fn feature_story(run: &str) -> Vec<Delivery> {
    let t0: DateTime<Utc> = "2026-11-02T09:00:00Z".parse().unwrap();
    let h = Duration::hours;
    let m = Duration::minutes;
    let mut s = Story {
        run: run.to_string(),
        deliveries: Vec::new(),
        review_id: 9_000_000,
    };

    // The feature: an issue the product manager opens.
    let mut issue = s.base(ISSUE_OPENED, "opened", "maria-pm");
    set(&mut issue, "/issue/number", json!(41));
    set(&mut issue, "/issue/title", json!(FEATURE_TITLE));
    set(
        &mut issue,
        "/issue/body",
        json!(
            "Customers with a saved card should pay in one click.\n\n- payment form\n- confirmation email"
        ),
    );
    set(&mut issue, "/issue/user", user("maria-pm"));
    set(&mut issue, "/issue/state", json!("open"));
    set(&mut issue, "/issue/created_at", t(t0));
    set(&mut issue, "/issue/updated_at", t(t0));
    set(&mut issue, "/issue/pull_request", Value::Null);
    issue.as_object_mut().unwrap()["issue"]
        .as_object_mut()
        .unwrap()
        .remove("pull_request");
    s.push("issues", issue.clone());

    // PR #42: payment form.
    let mut a = Pr {
        number: 42,
        title: "Checkout: one-click payment form",
        body: "Adds the saved-card payment form.\n\nCloses #41",
        author: "dev-lena",
        head: sha("a1"),
        created: t0 + h(2),
    };
    let v = s.pr_event(PR_OPENED, "opened", "dev-lena", &a, a.created);
    s.push("pull_request", v);
    let mut v = s.pr_event(
        PR_REVIEW_REQUESTED,
        "review_requested",
        "dev-lena",
        &a,
        a.created + m(1),
    );
    set(&mut v, "/requested_reviewer", user("rev-omar"));
    s.push("pull_request", v);
    s.review(&a, "rev-omar", "changes_requested",
        "Please validate the card number **before** submitting.\n\nA wrong digit today only fails at the payment provider, after the customer has confirmed.",
        a.created + h(3));
    let mut v = s.base(REVIEW_COMMENT, "created", "rev-omar");
    set(
        &mut v,
        "/pull_request",
        s.pr_json(&a, a.created + h(3), None),
    );
    set(&mut v, "/comment/user", user("rev-omar"));
    set(&mut v, "/comment/path", json!("src/checkout/payment.rs"));
    set(
        &mut v,
        "/comment/body",
        json!("This `unwrap()` panics when the card list is empty."),
    );
    set(&mut v, "/comment/commit_id", json!(a.head));
    set(&mut v, "/comment/created_at", t(a.created + h(3) + m(1)));
    set(&mut v, "/comment/updated_at", t(a.created + h(3) + m(1)));
    s.push("pull_request_review_comment", v);
    let at = a.created + h(20);
    s.synchronize(&mut a, "dev-lena", sha("a2"), at);
    s.review(
        &a,
        "rev-omar",
        "approved",
        "Thanks, the validation looks right now.",
        a.created + h(22),
    );
    s.review(
        &a,
        "rev-sam",
        "changes_requested",
        "This needs a feature flag before it reaches customers.",
        a.created + h(23),
    );
    s.comment(
        &a,
        "maria-pm",
        "Can we ship this for the **Friday** release?",
        a.created + h(24),
    );
    s.merge(&a, "dev-lena", a.created + h(25));

    // PR #43: confirmation email.
    let mut b = Pr {
        number: 43,
        title: "Checkout: order confirmation email",
        body: "Sends the receipt after a one-click order.\n\nFixes acme/storefront#41",
        author: "dev-kai",
        head: sha("b1"),
        created: t0 + h(5) + m(30),
    };
    let v = s.pr_event(PR_OPENED, "opened", "dev-kai", &b, b.created);
    s.push("pull_request", v);
    s.review(&b, "rev-omar", "approved", "LGTM", b.created + h(1));
    let at = b.created + h(30);
    s.synchronize(&mut b, "dev-kai", sha("b2"), at);
    let objection = s.review(
        &b,
        "rev-sam",
        "changes_requested",
        "The email shows the internal order id; customers should see the public one.",
        b.created + h(31),
    );
    let mut v = s.base(REVIEW_DISMISSED, "dismissed", "dev-kai");
    set(
        &mut v,
        "/pull_request",
        s.pr_json(&b, b.created + h(32), None),
    );
    set(&mut v, "/review/id", json!(objection));
    set(&mut v, "/review/user", user("rev-sam"));
    set(&mut v, "/review/state", json!("dismissed"));
    set(&mut v, "/review/commit_id", json!(b.head));
    s.push("pull_request_review", v);
    s.merge(&b, "dev-kai", b.created + h(33));

    // Done: the product manager closes the issue.
    set(&mut issue, "/action", json!("closed"));
    set(&mut issue, "/issue/state", json!("closed"));
    set(&mut issue, "/issue/closed_at", t(t0 + h(40)));
    set(&mut issue, "/issue/updated_at", t(t0 + h(40)));
    s.push("issues", issue);
    s.deliveries
}

/// The decision kinds the story yields, in the order they happened (GitHub's times).
pub const STORY_ORDER: &[(&str, Option<i64>)] = &[
    ("issue.opened", None),
    ("pr.opened", Some(42)),
    ("pr.review_requested", Some(42)),
    ("review.changes_requested", Some(42)),
    ("review_comment.created", Some(42)),
    ("pr.opened", Some(43)),
    ("review.approved", Some(43)),
    ("pr.synchronize", Some(42)),
    ("review.approved", Some(42)),
    ("review.changes_requested", Some(42)),
    ("comment.created", Some(42)),
    ("pr.merged", Some(42)),
    ("pr.synchronize", Some(43)),
    ("review.changes_requested", Some(43)),
    ("review.dismissed", Some(43)),
    ("pr.merged", Some(43)),
    ("issue.closed", None),
];

/// One small story per accountability rule the feature story does not show, each built from
/// GitHub's real payloads like the feature story: (rule id, PR number or `None` for a push,
/// deliveries). PR #69 is a clean one that no rule may flag.
pub fn rule_stories(run: &str) -> Vec<(&'static str, Option<i64>, Vec<Delivery>)> {
    let t0: DateTime<Utc> = "2026-11-09T09:00:00Z".parse().unwrap();
    let h = Duration::hours;
    // Each story's ids apart from every other's, as on GitHub.
    let ids = std::cell::Cell::new(9_100_000);
    let story = |tag: &str| {
        ids.set(ids.get() + 10_000);
        Story {
            run: format!("{run}-{tag}"),
            deliveries: Vec::new(),
            review_id: ids.get(),
        }
    };
    let pr = |number: i64, author: &'static str| Pr {
        number,
        title: "Rule story",
        body: "A change.",
        author,
        head: sha(&format!("rule-{number}-head")),
        created: t0,
    };
    let opened = |s: &mut Story, p: &Pr| {
        let v = s.pr_event(PR_OPENED, "opened", p.author, p, p.created);
        s.push("pull_request", v);
    };
    let mut out = Vec::new();

    // Merged with no review at all, by someone else.
    let mut s = story("unreviewed");
    let p = pr(60, "dev-ana");
    opened(&mut s, &p);
    s.merge(&p, "lead-bo", t0 + h(1));
    out.push(("merged-without-approval", Some(60), s.deliveries));

    // The author merges with only their own say-so (a comment, no approval).
    let mut s = story("self");
    let p = pr(61, "dev-ana");
    opened(&mut s, &p);
    s.review(&p, "rev-cy", "commented", "Looks plausible.", t0 + h(1));
    s.merge(&p, "dev-ana", t0 + h(2));
    out.push(("self-merge", Some(61), s.deliveries));

    // Approved, but the merged head's check failed.
    let mut s = story("red");
    let p = pr(62, "dev-ana");
    opened(&mut s, &p);
    s.review(&p, "rev-cy", "approved", "LGTM", t0 + h(1));
    let mut check = s.base(CHECK_RUN_COMPLETED, "completed", "github-actions");
    set(&mut check, "/check_run/head_sha", json!(p.head));
    set(&mut check, "/check_run/status", json!("completed"));
    set(&mut check, "/check_run/conclusion", json!("failure"));
    set(&mut check, "/check_run/name", json!("test"));
    set(&mut check, "/check_run/completed_at", t(t0 + h(2)));
    set(
        &mut check,
        "/check_run/pull_requests",
        json!([{"number": 62, "head": {"sha": p.head, "ref": "rule-62"}}]),
    );
    s.push("check_run", check);
    s.merge(&p, "lead-bo", t0 + h(3));
    out.push(("merged-with-failing-checks", Some(62), s.deliveries));

    // Changes requested after the merge.
    let mut s = story("objection");
    let p = pr(63, "dev-ana");
    opened(&mut s, &p);
    s.review(&p, "rev-cy", "approved", "LGTM", t0 + h(1));
    s.merge(&p, "lead-bo", t0 + h(2));
    s.review(
        &p,
        "sec-dee",
        "changes_requested",
        "This logs card numbers; revert.",
        t0 + h(5),
    );
    out.push(("post-merge-objection", Some(63), s.deliveries));

    // History of the default branch rewritten.
    let mut s = story("force");
    let mut push = s.base(PUSH, "", "dev-ana");
    if let Some(o) = push.as_object_mut() {
        o.remove("action");
    }
    set(&mut push, "/ref", json!("refs/heads/main"));
    set(&mut push, "/forced", json!(true));
    set(&mut push, "/before", json!(sha("main-before")));
    set(&mut push, "/after", json!(sha("main-after")));
    set(&mut push, "/repository/default_branch", json!("main"));
    set(
        &mut push,
        "/pusher",
        json!({"name": "dev-ana", "email": "ana@example.com"}),
    );
    s.push("push", push);
    out.push(("force-push-default-branch", None, s.deliveries));

    // A clean one: reviewed, approved on the merged head, merged by someone else.
    let mut s = story("clean");
    let p = pr(69, "dev-ana");
    opened(&mut s, &p);
    s.review(&p, "rev-cy", "approved", "LGTM", t0 + h(1));
    s.merge(&p, "lead-bo", t0 + h(2));
    out.push(("", Some(69), s.deliveries));
    out
}
