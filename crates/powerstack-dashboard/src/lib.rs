//! powerstack's web dashboard, as files embedded in the binary: no I/O, no server, no build step.
//!
//! The agent serves the [`Page::Node`] page at `/` (its node's live power by domain, each
//! domain's limit, energy so far) and the site service the [`Page::Site`] page (site power
//! against the bound and the reserve, nodes by power with the stale ones marked, running jobs,
//! the policy's recent decisions), with its job list ([`Page::Jobs`]) and job pages
//! ([`Page::Job`]). The pages share one stylesheet and one chart script, served
//! under `/assets/` by [`asset`]. The pages are static: their data comes from the documented API
//! routes of the server that serves them, with the same access rules as any client (a token typed
//! into the page is kept in the tab's `sessionStorage` and sent as a bearer token).
//!
//! Every asset is served by powerstack itself (no external network); [`HEADERS`] are the headers
//! every answer carries, a Content-Security-Policy among them that lets a page load nothing from
//! another origin. docs/dashboard.md shows the pages.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A page: the one served at `/` ([`Page::Node`] by the agent, [`Page::Site`] by the site
/// service), and the site service's job pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The node page, served by the agent at `/`.
    Node,
    /// The site page, served by the site service at `/`.
    Site,
    /// The site's job list, searchable by user and time, at `/jobs`.
    Jobs,
    /// One job of the site (`/job?id=ID`): its power over time per node and per domain kind,
    /// its totals, and downloads of the same data as CSV and JSON.
    Job,
}

/// Every page.
pub const PAGES: [Page; 4] = [Page::Node, Page::Site, Page::Jobs, Page::Job];

/// One embedded file: its media type and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` to answer with.
    pub mime: &'static str,
    /// The file's content.
    pub bytes: &'static [u8],
}

/// The path prefix under which [`asset`] names are served.
pub const ASSETS_PREFIX: &str = "/assets/";

/// Headers every dashboard answer carries (besides `Content-Type`): the page may load only from
/// its own origin, is not cached stale and is not framed by another site.
pub const HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("cache-control", "no-cache"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// A page's HTML.
pub fn page(page: Page) -> Asset {
    let bytes: &'static [u8] = match page {
        Page::Node => include_bytes!("../assets/node.html"),
        Page::Site => include_bytes!("../assets/site.html"),
        Page::Jobs => include_bytes!("../assets/jobs.html"),
        Page::Job => include_bytes!("../assets/job.html"),
    };
    Asset { mime: HTML, bytes }
}

/// The asset named `name` (the path after [`ASSETS_PREFIX`]), or `None` for a name that is not
/// one of them.
pub fn asset(name: &str) -> Option<Asset> {
    let (mime, bytes): (&str, &'static [u8]) = match name {
        "style.css" => (CSS, include_bytes!("../assets/style.css")),
        "common.js" => (JS, include_bytes!("../assets/common.js")),
        "node.js" => (JS, include_bytes!("../assets/node.js")),
        "site.js" => (JS, include_bytes!("../assets/site.js")),
        "jobs.js" => (JS, include_bytes!("../assets/jobs.js")),
        "job.js" => (JS, include_bytes!("../assets/job.js")),
        "favicon.svg" => ("image/svg+xml", include_bytes!("../assets/favicon.svg")),
        _ => return None,
    };
    Some(Asset { mime, bytes })
}

/// The dashboard's routes, for a server's router to merge: `page` at `/` (with the site page,
/// the job pages at `/jobs` and `/job`) and the assets under [`ASSETS_PREFIX`] (404 for any other
/// name). They use no state, and are not API routes: they are not in the OpenAPI documents.
pub fn routes<S: Clone + Send + Sync + 'static>(page_at_root: Page) -> Router<S> {
    let serve = |p: Page| get(move || async move { respond(page(p)) });
    let mut router = Router::new().route("/", serve(page_at_root)).route(
        "/assets/{name}",
        get(|Path(name): Path<String>| async move {
            match asset(&name) {
                Some(a) => respond(a),
                None => (StatusCode::NOT_FOUND, "no such dashboard asset\n").into_response(),
            }
        }),
    );
    if page_at_root == Page::Site {
        router = router.route("/jobs", serve(Page::Jobs)).route("/job", serve(Page::Job));
    }
    router
}

fn respond(a: Asset) -> Response {
    let mut response = ([(header::CONTENT_TYPE, a.mime)], a.bytes).into_response();
    for (name, value) in HEADERS {
        response.headers_mut().insert(name, header::HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_a_page_names_is_served() {
        for p in PAGES {
            let html = std::str::from_utf8(page(p).bytes).unwrap();
            let mut named = 0;
            for part in html.split(ASSETS_PREFIX).skip(1) {
                let name = part.split('"').next().unwrap();
                assert!(asset(name).is_some(), "{p:?} names {name}, which is not served");
                named += 1;
            }
            assert!(named >= 3, "{p:?}: {named}");
            // Nothing from another origin.
            assert!(!html.contains("http://") && !html.contains("https://"), "{p:?}");
        }
        assert_eq!(asset("../Cargo.toml"), None);
        assert_eq!(asset(""), None);
    }

    #[test]
    fn scripts_fetch_only_their_own_origin() {
        for name in ["common.js", "node.js", "site.js", "jobs.js", "job.js"] {
            let js = std::str::from_utf8(asset(name).unwrap().bytes).unwrap();
            // The SVG namespace is a name, not a fetch.
            let js = js.replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(!js.contains("http://") && !js.contains("https://"), "{name}");
        }
    }

    async fn get(page_at_root: Page, path: &str) -> Response {
        use tower::ServiceExt;
        let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        routes::<()>(page_at_root).oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn the_routes_serve_the_page_and_its_assets_with_their_headers() {
        let node = get(Page::Node, "/").await;
        assert_eq!(node.status(), StatusCode::OK);
        assert_eq!(node.headers()[header::CONTENT_TYPE], HTML);
        assert!(node.headers()["content-security-policy"].to_str().unwrap().contains("'self'"));
        let body = axum::body::to_bytes(node.into_body(), 1 << 20).await.unwrap();
        assert_eq!(&body[..], page(Page::Node).bytes);
        let site = axum::body::to_bytes(get(Page::Site, "/").await.into_body(), 1 << 20);
        assert_eq!(&site.await.unwrap()[..], page(Page::Site).bytes);
        let css = get(Page::Site, "/assets/style.css").await;
        assert_eq!(css.status(), StatusCode::OK);
        assert_eq!(css.headers()[header::CONTENT_TYPE], CSS);
        assert_eq!(get(Page::Node, "/assets/nope.js").await.status(), StatusCode::NOT_FOUND);
        // The job pages are the site's.
        let jobs = axum::body::to_bytes(get(Page::Site, "/jobs").await.into_body(), 1 << 20);
        assert_eq!(&jobs.await.unwrap()[..], page(Page::Jobs).bytes);
        let job = axum::body::to_bytes(get(Page::Site, "/job?id=7").await.into_body(), 1 << 20);
        assert_eq!(&job.await.unwrap()[..], page(Page::Job).bytes);
        assert_eq!(get(Page::Node, "/jobs").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get(Page::Node, "/assets/../Cargo.toml").await.status(), StatusCode::NOT_FOUND);
    }
}
