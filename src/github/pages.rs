//! GitHub's pagination: a list answers with at most `per_page` items and a `Link` header whose
//! `rel="next"` URL fetches the rest (cursor or page number; verdict just follows it).

/// The `rel="next"` URL of a `Link` header, if there is one.
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn finds_the_next_page_in_githubs_link_header() {
        let link = r#"<https://api.github.com/user/installations?per_page=100&page=2>; rel="next", <https://api.github.com/user/installations?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(Some(link)).as_deref(),
            Some("https://api.github.com/user/installations?per_page=100&page=2")
        );
        let last = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
        assert_eq!(next_link(Some(last)), None);
        assert_eq!(next_link(None), None);
        let cursor = r#"<https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_123>; rel="next""#;
        assert!(next_link(Some(cursor)).unwrap().ends_with("cursor=v1_123"));
    }
}
