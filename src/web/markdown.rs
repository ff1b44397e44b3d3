//! Review and comment bodies are Markdown written by anyone who can comment on a PR: render
//! them with pulldown-cmark, then let ammonia keep only harmless HTML, so no script from a
//! comment ever runs in a reader's browser.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};

/// Markdown to sanitized HTML, safe to embed in a page as is.
pub fn to_safe_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(
        &mut unsafe_html,
        Parser::new_ext(markdown, options).flat_map(image_as_link),
    );
    ammonia::Builder::default()
        // Links from comments leave verdict without passing on who was reading.
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        // No image loads from a comment: a remote image tells its owner who read the page
        // and when (a tracking pixel). Markdown images become links; HTML ones go.
        .rm_tags(["img"])
        .clean(&unsafe_html)
        .to_string()
}

/// A Markdown image, as a link to it labelled "image: ALT".
fn image_as_link(event: Event<'_>) -> Vec<Event<'_>> {
    match event {
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => vec![
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }),
            Event::Text(CowStr::Borrowed("image: ")),
        ],
        Event::End(TagEnd::Image) => vec![Event::End(TagEnd::Link)],
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::to_safe_html;

    #[test]
    fn keeps_formatting() {
        let html = to_safe_html(
            "**LGTM** with `one` nit:\n\n- [x] tests\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        );
        assert!(html.contains("<strong>LGTM</strong>"), "{html}");
        assert!(html.contains("<code>one</code>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }

    #[test]
    fn strips_every_way_to_run_script() {
        let attacks = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[click](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<svg onload=alert(1)>",
            "<div style=\"background:url(javascript:alert(1))\">x</div>",
            "<object data=\"data:text/html,<script>alert(1)</script>\"></object>",
            "![x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "<form action=\"https://evil.example\"><button>go</button></form>",
        ];
        for attack in attacks {
            let html = to_safe_html(attack).to_lowercase();
            for bad in [
                "<script",
                "onerror",
                "onload",
                "javascript:",
                "<iframe",
                "<svg",
                "style=",
                "<object",
                "data:",
                "<form",
            ] {
                assert!(!html.contains(bad), "{attack:?} rendered as {html:?}");
            }
        }
    }

    #[test]
    fn images_become_links_and_load_nothing() {
        let html = to_safe_html(
            "See ![the new form](https://tracker.example/pixel.png \"form\") and \
             <img src=\"https://tracker.example/p.gif\">",
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(
                "<a href=\"https://tracker.example/pixel.png\" title=\"form\" rel=\"noopener noreferrer nofollow\">image: the new form</a>"
            ),
            "{html}"
        );
    }

    #[test]
    fn external_links_do_not_leak_the_reader() {
        let html = to_safe_html("[docs](https://example.com/x)");
        assert!(
            html.contains("rel=\"noopener noreferrer nofollow\""),
            "{html}"
        );
    }
}
