//! Proxy environment variables are ambient configuration a guest must not inherit:
//! they are never consulted. Its own test binary, since it sets process environment.

mod common;

use agentkernel_http::HttpRequest;
use common::{LOOPBACK, Reply, checked, fetch, scope, serve};

#[tokio::test]
async fn proxy_environment_variables_are_ignored() {
    // A "proxy" that counts connections and answers with something the real server never says.
    let proxy = serve(|_| Reply::ok("from the proxy")).await;
    let server = serve(|_| Reply::ok("direct")).await;
    let proxy_url = proxy.url("");
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        // SAFETY: this test binary has a single test, so no other thread reads the environment.
        unsafe { std::env::set_var(var, &proxy_url) };
    }
    // SAFETY: as above.
    unsafe { std::env::remove_var("NO_PROXY") };
    let s = checked(scope(&[server.origin()], LOOPBACK));
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(res.unwrap().body, b"direct");
    assert_eq!(proxy.connections(), 0);
    // A dead proxy address changes nothing either.
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
        // SAFETY: as above.
        unsafe { std::env::set_var(var, "http://127.0.0.1:9") };
    }
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(res.unwrap().body, b"direct");
}
