//! Hostile servers: every resource bound holds.

mod common;

use std::time::{Duration, Instant};

use agentkernel_http::{FetchError, HttpRequest, HttpScope};
use common::{LOOPBACK, Reply, checked, fetch, fetch_by, scope, serve};

const CAP: u64 = 64 * 1024;
const GIB: u64 = 1 << 30;

fn capped(origin: String, cap: u64) -> HttpScope {
    HttpScope {
        max_response_bytes: cap,
        ..scope(&[origin], LOOPBACK)
    }
}

fn stream(head: &str, chunk: Vec<u8>, every: Duration, total: u64) -> Reply {
    Reply::Stream {
        head: head.into(),
        chunk,
        every,
        total,
    }
}

fn chunked_piece(n: usize) -> Vec<u8> {
    let mut v = format!("{n:x}\r\n").into_bytes();
    v.extend(std::iter::repeat_n(b'x', n));
    v.extend_from_slice(b"\r\n");
    v
}

/// The server stopped far short of its 1 GiB and did not finish.
async fn assert_cut_short(server: &common::Server) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = server.bytes_sent();
    assert!(sent < 64 << 20, "server sent {sent} bytes");
    assert!(
        !server
            .state
            .completed
            .load(std::sync::atomic::Ordering::SeqCst)
    );
}

#[tokio::test]
async fn announced_huge_body_is_refused_before_reading_it() {
    let head = "HTTP/1.1 200 OK\r\ncontent-length: 10737418240\r\n\r\n";
    let server = serve(move |_| stream(head, vec![b'x'; 64 * 1024], Duration::ZERO, GIB)).await;
    let s = checked(capped(server.origin(), CAP));
    let started = Instant::now();
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(res.unwrap_err(), FetchError::TooLarge(CAP));
    assert_eq!(
        (rec.outcome, rec.bytes_received, rec.status),
        ("too_large", 0, Some(200))
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_cut_short(&server).await;
}

#[tokio::test]
async fn endless_chunked_body_is_cut_at_the_cap() {
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let server = serve(move |_| stream(head, chunked_piece(16 * 1024), Duration::ZERO, GIB)).await;
    let s = checked(capped(server.origin(), CAP));
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(res.unwrap_err(), FetchError::TooLarge(CAP));
    assert!(
        rec.bytes_received > CAP && rec.bytes_received <= CAP + 128 * 1024,
        "{}",
        rec.bytes_received
    );
    assert_cut_short(&server).await;
}

#[tokio::test]
async fn endless_close_delimited_body_is_cut_at_the_cap() {
    let head = "HTTP/1.1 200 OK\r\n\r\n";
    let server = serve(move |_| stream(head, vec![b'y'; 32 * 1024], Duration::ZERO, GIB)).await;
    let s = checked(capped(server.origin(), CAP));
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(res.unwrap_err(), FetchError::TooLarge(CAP));
    assert_cut_short(&server).await;
}

#[tokio::test]
async fn body_exactly_at_the_cap_is_accepted_one_more_byte_is_not() {
    let exact = "z".repeat(CAP as usize);
    let server = serve(move |r| {
        if r.starts_with("GET /exact") {
            Reply::ok(&exact)
        } else {
            let mut raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            raw.extend(chunked_piece(CAP as usize));
            raw.extend(chunked_piece(1));
            raw.extend(b"0\r\n\r\n");
            Reply::Raw(raw)
        }
    })
    .await;
    let s = checked(capped(server.origin(), CAP));
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/exact"))).await;
    assert_eq!(res.unwrap().body.len() as u64, CAP);
    assert_eq!(rec.bytes_received, CAP);
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/over"))).await;
    assert_eq!(res.unwrap_err(), FetchError::TooLarge(CAP));
}

#[tokio::test]
async fn head_response_may_announce_any_length() {
    let server =
        serve(|_| Reply::Raw(b"HTTP/1.1 200 OK\r\ncontent-length: 10737418240\r\n\r\n".to_vec()))
            .await;
    let s = checked(capped(server.origin(), CAP));
    let req = HttpRequest {
        method: "HEAD".into(),
        ..HttpRequest::get(server.url("/"))
    };
    let resp = fetch(&s, req).await.0.unwrap();
    assert!(resp.body.is_empty());
}

fn trickle() -> Reply {
    stream(
        "HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n",
        b"x".to_vec(),
        Duration::from_millis(50),
        100_000,
    )
}

fn assert_near(elapsed: Duration, target: Duration) {
    assert!(
        elapsed >= target - Duration::from_millis(50),
        "{elapsed:?} < {target:?}"
    );
    assert!(
        elapsed < target + Duration::from_millis(1500),
        "{elapsed:?} >> {target:?}"
    );
}

#[tokio::test]
async fn trickling_body_times_out_at_the_scope_timeout() {
    let server = serve(|_| trickle()).await;
    let s = checked(HttpScope {
        timeout_ms: 700,
        ..scope(&[server.origin()], LOOPBACK)
    });
    let started = Instant::now();
    let (res, rec) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(res.unwrap_err(), FetchError::Timeout);
    assert_eq!(rec.outcome, "timeout");
    assert_near(started.elapsed(), Duration::from_millis(700));
    assert!(rec.elapsed >= Duration::from_millis(650));
}

#[tokio::test]
async fn trickling_body_times_out_at_the_callers_deadline_and_the_request_timeout() {
    let server = serve(|_| trickle()).await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    let started = Instant::now();
    let (res, _) = fetch_by(
        &s,
        HttpRequest::get(server.url("/")),
        started + Duration::from_millis(600),
    )
    .await;
    assert_eq!(res.unwrap_err(), FetchError::Timeout);
    assert_near(started.elapsed(), Duration::from_millis(600));

    let started = Instant::now();
    let req = HttpRequest {
        timeout_ms: Some(400),
        ..HttpRequest::get(server.url("/"))
    };
    let (res, _) = fetch(&s, req).await;
    assert_eq!(res.unwrap_err(), FetchError::Timeout);
    assert_near(started.elapsed(), Duration::from_millis(400));

    let (res, _) = fetch_by(&s, HttpRequest::get(server.url("/")), Instant::now()).await;
    assert_eq!(
        res.unwrap_err(),
        FetchError::Timeout,
        "a spent deadline fails at once"
    );
}

#[tokio::test]
async fn silent_server_times_out() {
    let server = serve(|_| Reply::Silent(Duration::from_secs(30))).await;
    let s = checked(HttpScope {
        timeout_ms: 500,
        ..scope(&[server.origin()], LOOPBACK)
    });
    let started = Instant::now();
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    assert_eq!(res.unwrap_err(), FetchError::Timeout);
    assert_near(started.elapsed(), Duration::from_millis(500));
}

#[tokio::test]
async fn endless_body_never_hangs() {
    // Fast and endless with the largest cap: too large or timeout, within the timeout.
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let server =
        serve(move |_| stream(head, chunked_piece(64 * 1024), Duration::ZERO, 64 * GIB)).await;
    let s = checked(HttpScope {
        timeout_ms: 2000,
        ..capped(server.origin(), HttpScope::MAX_RESPONSE_BYTES_LIMIT)
    });
    let started = Instant::now();
    let (res, _) = fetch(&s, HttpRequest::get(server.url("/"))).await;
    let err = res.unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge(_) | FetchError::Timeout),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(3000));
    // Slow and endless: timeout.
    let slow =
        serve(move |_| stream(head, chunked_piece(10), Duration::from_millis(20), 64 * GIB)).await;
    let s = checked(HttpScope {
        timeout_ms: 600,
        ..scope(&[slow.origin()], LOOPBACK)
    });
    assert_eq!(
        fetch(&s, HttpRequest::get(slow.url("/")))
            .await
            .0
            .unwrap_err(),
        FetchError::Timeout
    );
}

async fn transport_error(reply: impl Fn() -> Reply + Send + Sync + 'static) -> String {
    let server = serve(move |_| reply()).await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    match fetch(&s, HttpRequest::get(server.url("/"))).await {
        (Err(FetchError::Transport(m)), rec) => {
            assert_eq!(rec.outcome, "transport");
            m
        }
        (other, _) => panic!("expected Transport, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_protocol_is_a_transport_error() {
    transport_error(|| Reply::Raw(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n".to_vec()))
        .await;
    transport_error(|| Reply::Raw(vec![0, 1, 2, 3, 0xff, 0xfe])).await;
    transport_error(|| Reply::Raw(Vec::new())).await;
    // Body shorter than announced.
    transport_error(|| Reply::Raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort".to_vec()))
        .await;
    // Bad chunk framing.
    transport_error(|| {
        Reply::Raw(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nx\r\n".to_vec())
    })
    .await;
}

#[tokio::test]
async fn oversized_response_heads_are_transport_errors() {
    let m = transport_error(|| {
        Reply::Raw(
            format!(
                "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
                "a".repeat(100 * 1024)
            )
            .into_bytes(),
        )
    })
    .await;
    assert!(m.contains("too large"), "{m}");
    transport_error(|| {
        let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
        Reply::Raw(format!("HTTP/1.1 200 OK\r\n{many}content-length: 0\r\n\r\n").into_bytes())
    })
    .await;
    // A head that never ends: the read buffer cap stops it.
    let head = "HTTP/1.1 200 OK\r\n";
    let piece = b"x-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec();
    transport_error(move || stream(head, piece.clone(), Duration::ZERO, GIB)).await;
}

#[tokio::test]
async fn returned_headers_are_capped() {
    let server = serve(|_| {
        let many: String = (0..100).map(|i| format!("x-h{i}: v{i}\r\n")).collect();
        let big = format!("x-big: {}\r\n", "b".repeat(40 * 1024));
        Reply::Raw(
            format!("HTTP/1.1 200 OK\r\n{big}{many}content-length: 2\r\n\r\nok").into_bytes(),
        )
    })
    .await;
    let s = checked(scope(&[server.origin()], LOOPBACK));
    let resp = fetch(&s, HttpRequest::get(server.url("/")))
        .await
        .0
        .unwrap();
    assert_eq!(resp.body, b"ok");
    assert_eq!(
        resp.headers.len(),
        agentkernel_http::limits::MAX_RESPONSE_HEADERS
    );
    assert!(
        resp.headers.iter().all(|h| h.name != "x-big"),
        "an oversized header is skipped"
    );
    assert_eq!(resp.headers[0].name, "x-h0");
}

#[tokio::test]
async fn https_to_a_plain_tcp_server_is_a_transport_error() {
    let server = serve(|_| Reply::ok("plain")).await;
    // The server never sees a request head: the TLS ClientHello is not one, so it
    // keeps reading; it must reply with something non-TLS to end the handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let origin = format!("https://127.0.0.1:{port}");
    let plain = format!("https://127.0.0.1:{}", server.port());
    let hosts = vec![origin.clone(), plain.clone()];
    let s = checked(HttpScope {
        timeout_ms: 2000,
        ..scope(&hosts, LOOPBACK)
    });
    let (res, _) = fetch(&s, HttpRequest::get(format!("{origin}/"))).await;
    assert!(
        matches!(res, Err(FetchError::Transport(ref m)) if m.contains("TLS")),
        "{res:?}"
    );
    // A plain HTTP server reads the ClientHello as a malformed request head and gives up
    // or waits: a transport error or the timeout, never a response.
    let (res, _) = fetch(&s, HttpRequest::get(format!("{plain}/"))).await;
    assert!(
        matches!(res, Err(FetchError::Transport(_) | FetchError::Timeout)),
        "{res:?}"
    );
}
