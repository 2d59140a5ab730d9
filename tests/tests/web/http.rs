//! The web door's plain HTTP: the page with its security headers, health,
//! the stations for the picker.

use super::harness::{Quartet, http_get};

#[tokio::test]
async fn healthz_answers_ok() {
    let quartet = Quartet::start().await;
    let (head, body) = http_get(quartet.web(), "/healthz").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "ok\n");
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_security_headers() {
    let quartet = Quartet::start().await;
    for (path, kind, needle) in [
        ("/", "text/html", "<script type=\"module\" src=\"/app.js\">"),
        ("/app.js", "text/javascript", "new WebSocket"),
        ("/style.css", "text/css", "body"),
    ] {
        let (head, body) = http_get(quartet.web(), path).await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-type: {kind}")),
            "{path}: {head}"
        );
        assert!(
            head.contains("content-security-policy: default-src 'self'"),
            "{path}: {head}"
        );
        assert!(head.contains("frame-ancestors 'none'"), "{path}: {head}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
        assert!(body.contains(needle), "{path} lacks {needle:?}");
    }
    let (index, _) = http_get(quartet.web(), "/").await;
    assert!(
        !index.contains("unsafe-inline"),
        "no inline script: {index}"
    );
}

#[tokio::test]
async fn stations_are_listed_as_json_for_the_picker() {
    let quartet = Quartet::start().await;
    let (head, body) = http_get(quartet.web(), "/stations").await;
    assert!(head.contains("content-type: application/json"), "{head}");
    let stations: serde_json::Value = serde_json::from_str(&body).unwrap();
    let madrid = stations
        .as_array()
        .unwrap()
        .iter()
        .find(|station| station["id"] == "madrid")
        .expect("madrid is a station");
    assert!(madrid["name"].as_str().is_some_and(|name| !name.is_empty()));
}

#[tokio::test]
async fn an_unknown_path_is_not_found() {
    let quartet = Quartet::start().await;
    let (head, _) = http_get(quartet.web(), "/nope").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
}
