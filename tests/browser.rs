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
