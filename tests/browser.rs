//! The demo story's feature page in a real browser (Debian's headless Chromium): the
//! decisions appear in the order they happened, and a screenshot is kept under
//! target/screenshots/ for people to look at.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{TestDb, project_all};
use verdict::story::{self, STORY_ORDER};

fn chromium() -> PathBuf {
    let candidates = [
        std::env::var("VERDICT_CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
    ];
    candidates
        .iter()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "the browser test needs Chromium: install Debian's package (`apt-get install chromium`, \
                 as .ci/run does) or point VERDICT_CHROMIUM at a Chromium binary"
            )
        })
}

/// Runs headless Chromium on `url` with `args`; returns its stdout.
fn run_chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_feature_page_shows_its_decisions_in_order_in_a_real_browser() {
    let db = TestDb::new().await;
    let server = db.server(&[common::SECRET]).await;
    server.deliver_story().await;
    project_all(&db.app_pool().await).await;
    let url = format!(
        "{}/{}/features/{}",
        server.base,
        story::REPO,
        story::FEATURE_KEY
    );

    let dom = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || run_chromium(&url, &["--dump-dom"]))
            .await
            .unwrap()
    };
    // The DOM as the browser built it: every decision, in GitHub's order.
    let kinds: Vec<&str> = dom
        .split("data-kind=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    let expected: Vec<&str> = STORY_ORDER.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, expected);
    assert!(
        dom.contains("<title>#41 One-click checkout · verdict</title>"),
        "{dom}"
    );
    let mut last = 0;
    for who in ["maria-pm", "dev-lena", "rev-omar", "dev-kai", "rev-sam"] {
        let at = dom.find(&format!("<b>{who}</b>")).expect(who);
        assert!(at >= last, "{who} first appears in story order");
        last = at;
    }

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("feature-page.png");
    let _ = std::fs::remove_file(&shot);
    {
        let (url, shot) = (url.clone(), shot.clone());
        tokio::task::spawn_blocking(move || {
            run_chromium(
                &url,
                &[
                    "--window-size=1280,2400",
                    &format!("--screenshot={}", shot.display()),
                ],
            )
        })
        .await
        .unwrap();
    }
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 50_000,
        "a rendered page, not a blank one ({} bytes)",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    server.shutdown().await;
}

/// A chromedriver process on a free port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "the sign-in browser test clicks through pages with WebDriver: install Debian's \
                 chromium-driver package (as .ci/run does)"
            )
        });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    Driver { child, port }
}

/// A headless Chromium session driven over WebDriver (clicks, like a person).
async fn browser(driver: &Driver, profile: &std::path::Path) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--no-first-run",
                     "--disable-dev-shm-usage", "--window-size=1280,1600",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    for _ in 0..100 {
        match fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps.clone())
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        {
            Ok(client) => return client,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("chromedriver did not answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_by_clicking_and_sees_the_private_feature() {
    use fantoccini::Locator;
    use verdict::github::stand_in::{StandIn, demo_people};
    let github = StandIn::start("127.0.0.1:0".parse().unwrap(), demo_people())
        .await
        .unwrap();
    let db = TestDb::new().await;
    let server = db
        .server_with_access(
            false,
            verdict::web::access::AccessConfig {
                sign_in: Some(github.sign_in_config()),
                ..Default::default()
            },
        )
        .await;
    server.deliver_story().await;
    for d in story::private_story("browser") {
        assert!(
            server
                .deliver(d.event, &d.delivery_id, &d.body)
                .await
                .status()
                .is_success()
        );
    }
    project_all(&db.app_pool().await).await;
    let feature = format!(
        "{}/{}/features/{}",
        server.base,
        story::PRIVATE_REPO,
        story::FEATURE_KEY
    );
    let driver = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;

    // Anonymous: the private feature is not there, and signing in is offered.
    c.goto(&feature).await.unwrap();
    let body = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("sign in with GitHub to see private repositories"),
        "{body}"
    );
    // Click "Sign in with GitHub", then, on the stand-in for GitHub, choose maria-pm.
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("as-maria-pm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Back on verdict, on the page where signing in started, now visible.
    c.wait()
        .for_element(Locator::Id("signed-in"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().as_str(), feature);
    let title = c.title().await.unwrap();
    assert!(title.contains(story::PRIVATE_FEATURE_TITLE), "{title}");
    let who = c
        .find(Locator::Id("signed-in"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, "@maria-pm");
    let kinds = c.find_all(Locator::Css("li[data-kind]")).await.unwrap();
    assert_eq!(kinds.len(), STORY_ORDER.len(), "the whole private timeline");
    // The stylesheet applies under the Content-Security-Policy (no inline style is needed).
    let display = c
        .execute(
            "return getComputedStyle(document.querySelector('header.top')).display",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(display, serde_json::json!("flex"));

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let png = c.screenshot().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let shot = shots.join("signed-in-private-feature.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    // Sign out: the feature is gone again.
    c.find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("sign-in")).await.unwrap();
    c.goto(&feature).await.unwrap();
    let body = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("Not found"), "{body}");

    // dev-kai cannot read the private repository on GitHub: signed in, still not found.
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("as-dev-kai"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("signed-in"))
        .await
        .unwrap();
    let body = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("Not found") && !body.contains(story::PRIVATE_FEATURE_TITLE),
        "{body}"
    );
    c.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn product_pages_fit_a_phone_and_a_desktop_without_broken_images() {
    let (db, server) = common::judged_story_server().await;
    project_all(&db.app_pool().await).await;
    let finding: serde_json::Value = server
        .get("/api/findings?rule=stale-approval", None)
        .await
        .json()
        .await
        .unwrap();
    let finding = finding["findings"][0]["record_url"]
        .as_str()
        .unwrap()
        .to_string();
    // One erased delivery, so the redactions page and a redacted record are laid out too.
    verdict::log::redaction::redact(
        &db.app_pool().await,
        &verdict::log::redaction::Request {
            log: "acme".into(),
            seq: 5,
            reason: "a phone number pasted into a comment".into(),
            by: "Priya (privacy officer)".into(),
            fields: Vec::new(),
            keep_records: true,
        },
    )
    .await
    .unwrap();
    let pages = [
        (
            "feature",
            format!("/{}/features/{}", story::REPO, story::FEATURE_KEY),
        ),
        ("pull", format!("/{}/pull/42", story::REPO)),
        ("finding", finding),
        ("home", "/".to_string()),
        ("findings", "/findings".to_string()),
        ("account", "/acme".to_string()),
        ("report", format!("/{}/report", story::REPO)),
        ("rules", "/rules".to_string()),
        ("delivery", "/records/acme/3".to_string()),
        ("repository", format!("/{}", story::REPO)),
        ("outbox", "/outbox".to_string()),
        ("coverage", "/coverage".to_string()),
        ("redactions", "/redactions".to_string()),
        ("redacted", "/records/acme/5".to_string()),
    ];
    let driver = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (width, height) in [(1400u32, 1000u32), (420, 900)] {
        c.set_window_size(width, height).await.unwrap();
        for (name, path) in &pages {
            c.goto(&format!("{}{path}", server.base)).await.unwrap();
            let measured = c
                .execute(
                    "const d = document.documentElement;
                     const broken = Array.from(document.images)
                         .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
                     const wide = Array.from(document.querySelectorAll('main *'))
                         .filter(e => e.getBoundingClientRect().right > d.clientWidth + 1)
                         .slice(0, 5).map(e => e.tagName + '.' + e.className);
                     return [d.scrollWidth, d.clientWidth, broken, wide, document.title];",
                    vec![],
                )
                .await
                .unwrap();
            let (scroll, client) = (measured[0].as_u64().unwrap(), measured[1].as_u64().unwrap());
            assert!(
                client <= width as u64 && client + 40 >= width as u64,
                "{name} at {width}px: the viewport is {client}px"
            );
            assert!(
                scroll <= client,
                "{name} at {width}px scrolls sideways: {scroll}px of content in {client}px; too wide: {}",
                measured[3]
            );
            assert_eq!(
                measured[2],
                serde_json::json!([]),
                "{name} at {width}px has broken images"
            );
            assert!(
                !measured[4].as_str().unwrap().starts_with("Not found"),
                "{name}: {}",
                measured[4]
            );
            let png = c.screenshot().await.unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            std::fs::write(shots.join(format!("{name}-{width}.png")), &png).unwrap();
        }
    }
    eprintln!("screenshots: {}", shots.display());
    server.shutdown().await;
}
