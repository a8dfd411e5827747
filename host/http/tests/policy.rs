//! Who may be reached: allow-list, address policy, redirects, credentials.

mod common;

use agentkernel_http::{FetchError, Header, HttpRequest};
use common::{LOOPBACK, Reply, checked, fetch, scope, serve};

#[tokio::test]
async fn allowed_host_gets_the_body_and_a_record() {
    let server = serve(|_| Reply::ok("hello")).await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/hi?x=1"))).await;
    let resp = res.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello");
    assert!(
        resp.headers
            .iter()
            .any(|h| h.name == "content-type" && h.value == "text/plain")
    );
    assert_eq!(
        (rec.method.as_str(), rec.scheme.as_str(), rec.host.as_str()),
        ("GET", "http", "127.0.0.1")
    );
    assert_eq!(
        (rec.port, rec.status, rec.bytes_received, rec.outcome),
        (server.port(), Some(200), 5, "ok")
    );
    let reqs = server.requests();
    assert!(
        reqs[0].starts_with("GET /hi?x=1 HTTP/1.1\r\n"),
        "{}",
        reqs[0]
    );
    assert!(reqs[0].contains(&format!("host: 127.0.0.1:{}", server.port())));
    assert!(reqs[0].contains("connection: close"));
}

#[tokio::test]
async fn localhost_by_name_is_resolved_checked_and_reached_when_allowed() {
    let server = serve(|_| Reply::ok("hi")).await;
    let s = checked(scope(
        &[format!("http://localhost:{}", server.port())],
        LOOPBACK,
    ));
    let (res, rec) = fetch(
        &s,
        HttpRequest::get(format!("http://localhost:{}/", server.port())),
    )
    .await;
    assert_eq!(res.unwrap().body, b"hi");
    assert_eq!(rec.host, "localhost");
}

#[tokio::test]
async fn host_not_on_the_list_is_refused_without_connecting() {
    let server = serve(|_| Reply::ok("secret")).await;
    let other = serve(|_| Reply::ok("x")).await;
    // Allowed: only `other`'s port, and https for `server`.
    let s = checked(scope(
        &[
            other.origin(),
            format!("https://127.0.0.1:{}", server.port()),
        ],
        LOOPBACK,
    ));
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(
        res.unwrap_err(),
        FetchError::HostNotAllowed(format!("http://127.0.0.1:{}", server.port()))
    );
    assert_eq!((rec.outcome, rec.status), ("host_not_allowed", None));
    let (res, _) = fetch(
        &s,
        HttpRequest::get(format!("http://localhost:{}/", other.port())),
    )
    .await;
    assert!(matches!(res, Err(FetchError::HostNotAllowed(_))), "{res:?}");
    assert_eq!(server.connections(), 0);
    assert_eq!(other.connections(), 0);
}

#[tokio::test]
async fn loopback_is_refused_without_allow_addresses() {
    let server = serve(|_| Reply::ok("secret")).await;
    let port = server.port();
    let s = checked(scope(
        &[server.origin(), format!("http://localhost:{port}")],
        &[],
    ));
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    match res {
        Err(FetchError::AddressNotAllowed(m)) => {
            assert!(m.contains("127.0.0.1") && m.contains("loopback"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rec.outcome, "address_not_allowed");
    let (res, _) = fetch(&s, HttpRequest::get(format!("http://localhost:{port}/"))).await;
    match res {
        Err(FetchError::AddressNotAllowed(m)) => {
            assert!(m.contains("localhost resolves to"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn metadata_and_mapped_loopback_are_refused() {
    let server = serve(|_| Reply::ok("secret")).await;
    let mapped = format!("http://[::ffff:127.0.0.1]:{}", server.port());
    let s = checked(scope(
        &[
            "http://169.254.169.254".into(),
            mapped.clone(),
            "http://[fd00:ec2::254]".into(),
        ],
        &[],
    ));
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("{mapped}/"),
        "http://[fd00:ec2::254]/".into(),
    ] {
        let (res, _) = fetch(&s, HttpRequest::get(url.clone())).await;
        assert!(
            matches!(res, Err(FetchError::AddressNotAllowed(_))),
            "{url}: {res:?}"
        );
    }
    // Allowing loopback does not allow metadata.
    let s = checked(scope(&["http://169.254.169.254".into()], LOOPBACK));
    let (res, _) = fetch(&s, HttpRequest::get("http://169.254.169.254/")).await;
    assert!(
        matches!(res, Err(FetchError::AddressNotAllowed(_))),
        "{res:?}"
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn redirect_to_a_host_off_the_list_is_refused() {
    let target = serve(|_| Reply::ok("secret")).await;
    let to = target.url("/");
    let server = serve(move |_| Reply::redirect(302, &to)).await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(
        res.unwrap_err(),
        FetchError::HostNotAllowed(target.origin() + "")
    );
    assert_eq!((rec.redirects, rec.port), (1, target.port()));
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn redirect_to_a_forbidden_address_is_refused() {
    let server =
        serve(|_| Reply::redirect(301, "http://169.254.169.254/latest/meta-data/iam")).await;
    let s = checked(scope(
        &[server.origin(), "http://169.254.169.254".into()],
        LOOPBACK,
    ));
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert!(
        matches!(res, Err(FetchError::AddressNotAllowed(_))),
        "{res:?}"
    );
    let server = serve(|_| Reply::redirect(302, "file:///etc/passwd")).await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert!(
        matches!(res, Err(FetchError::Transport(ref m)) if m.contains("scheme")),
        "{res:?}"
    );
}

#[tokio::test]
async fn redirect_loop_stops_after_max_redirects() {
    let server = serve(|_| Reply::redirect(302, "/again")).await;
    let s = checked(agentkernel_http::HttpScope {
        max_redirects: 3,
        ..scope(&[server.origin()], LOOPBACK)
    });
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    match res {
        Err(FetchError::Transport(m)) => assert!(
            m.contains("too many redirects") && m.contains("max_redirects = 3"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (rec.redirects, rec.status, rec.outcome),
        (3, Some(302), "transport")
    );
    assert_eq!(server.requests().len(), 4);
    let s = checked(agentkernel_http::HttpScope {
        max_redirects: 0,
        ..scope(&[server.origin()], LOOPBACK)
    });
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert!(matches!(res, Err(FetchError::Transport(_))), "{res:?}");
}

fn authed(url: String) -> HttpRequest {
    HttpRequest {
        headers: vec![
            Header::new("Authorization", "Bearer guest-secret"),
            Header::new("Cookie", "session=1"),
            Header::new("X-Trace", "t1"),
        ],
        ..HttpRequest::get(url)
    }
}

#[tokio::test]
async fn credentials_are_not_forwarded_across_origins() {
    let landing = serve(|_| Reply::ok("landed")).await;
    let to = landing.url("/landing");
    let start = serve(move |_| Reply::redirect(307, &to)).await;
    let s = checked(scope(&[start.origin(), landing.origin()], LOOPBACK));
    let (res, rec) = fetch(&s, authed(start.url("/start"))).await;
    assert_eq!(res.unwrap().body, b"landed");
    assert_eq!(rec.redirects, 1);
    assert!(start.requests()[0].contains("authorization: Bearer guest-secret"));
    let got = &landing.requests()[0];
    assert!(got.starts_with("GET /landing "), "{got}");
    assert!(
        !got.contains("authorization") && !got.contains("cookie") && !got.contains("guest-secret"),
        "{got}"
    );
    assert!(got.contains("x-trace: t1"), "{got}");
}

#[tokio::test]
async fn credentials_are_kept_on_a_same_origin_redirect() {
    let server = serve(|r| {
        if r.starts_with("GET /start") {
            Reply::redirect(302, "/next")
        } else {
            Reply::ok("done")
        }
    })
    .await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    let (res, _) = fetch(&s, authed(server.url("/start"))).await;
    assert_eq!(res.unwrap().body, b"done");
    let reqs = server.requests();
    assert!(
        reqs[1].starts_with("GET /next ") && reqs[1].contains("authorization: Bearer guest-secret"),
        "{}",
        reqs[1]
    );
}

fn post(url: String) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        headers: vec![Header::new("Content-Type", "application/json")],
        body: Some(b"{\"a\":1}".to_vec()),
        ..HttpRequest::get(url)
    }
}

#[tokio::test]
async fn see_other_turns_post_into_get_and_307_keeps_it() {
    let server = serve(|r| match r.split_whitespace().nth(1) {
        Some("/form") => Reply::redirect(303, "/result"),
        Some("/keep") => Reply::redirect(307, "/kept"),
        _ => Reply::ok("ok"),
    })
    .await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    assert!(fetch(&s, post(server.url("/form"))).await.0.is_ok());
    assert!(fetch(&s, post(server.url("/keep"))).await.0.is_ok());
    let reqs = server.requests();
    assert!(
        reqs[0].starts_with("POST /form ") && reqs[0].ends_with("{\"a\":1}"),
        "{}",
        reqs[0]
    );
    assert!(reqs[1].starts_with("GET /result "), "{}", reqs[1]);
    assert!(
        !reqs[1].contains("content-type") && !reqs[1].contains("{\"a\""),
        "{}",
        reqs[1]
    );
    assert!(
        reqs[3].starts_with("POST /kept ") && reqs[3].ends_with("{\"a\":1}"),
        "{}",
        reqs[3]
    );
    assert!(
        reqs[3].contains("content-type: application/json"),
        "{}",
        reqs[3]
    );
}

#[tokio::test]
async fn invalid_requests_never_connect() {
    let server = serve(|_| Reply::ok("x")).await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    let bad = [
        HttpRequest {
            method: "CONNECT".into(),
            ..HttpRequest::get(server.url("/"))
        },
        HttpRequest::get(format!("ftp://127.0.0.1:{}/", server.port())),
        HttpRequest::get(format!("http://user:pw@127.0.0.1:{}/", server.port())),
        HttpRequest {
            headers: vec![Header::new("Host", "evil.example")],
            ..HttpRequest::get(server.url("/"))
        },
        HttpRequest {
            headers: vec![Header::new("Transfer-Encoding", "chunked")],
            ..HttpRequest::get(server.url("/"))
        },
        HttpRequest {
            headers: vec![Header::new("X-A", "1\r\nX-Injected: 1")],
            ..HttpRequest::get(server.url("/"))
        },
    ];
    for req in bad {
        let (res, rec) = fetch(&s, req.clone()).await;
        assert!(
            matches!(res, Err(FetchError::InvalidRequest(_))),
            "{req:?}: {res:?}"
        );
        assert_eq!(rec.outcome, "invalid_request");
    }
    assert_eq!(server.connections(), 0);
}
