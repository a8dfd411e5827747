//! The `http` capability end to end: a guest (`wants-http`) fetching from
//! loopback servers under policy. The fetcher's own bounds are tested in
//! depth in `host/http/tests`; these check what reaches the guest, the
//! per-call and per-day budgets, the request log, and policy at load.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agentkernel::runtime::CallError;
use sandbox_tests::{TestHost, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a loopback server does with each connection.
#[derive(Clone)]
enum Server {
    Body(&'static str),
    /// Answers with the request head it received.
    EchoHead,
    Redirect(String),
    /// Redirects to itself, forever.
    RedirectLoop,
    Huge(usize),
    Endless,
    Trickle,
    Garbage,
}

async fn serve(kind: Server) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let kind = kind.clone();
            tokio::spawn(async move {
                if let Server::Garbage = kind {
                    // Before reading anything (a TLS client waits for the
                    // server's hello), then hang up.
                    let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 not http at all\r\n\r\n").await;
                    return;
                }
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let ok = |body: &[u8]| [format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes(), body].concat();
                let _ = match kind {
                    Server::Body(b) => conn.write_all(&ok(b.as_bytes())).await,
                    Server::EchoHead => conn.write_all(&ok(&head)).await,
                    Server::RedirectLoop => {
                        conn.write_all(format!("HTTP/1.1 302 Found\r\nLocation: http://{addr}/again\r\nContent-Length: 0\r\n\r\n").as_bytes()).await
                    }
                    Server::Redirect(to) => {
                        conn.write_all(format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await
                    }
                    Server::Huge(n) => {
                        let _ = conn.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes()).await;
                        let chunk = vec![b'x'; 65536];
                        let mut sent = 0;
                        while sent < n && conn.write_all(&chunk).await.is_ok() {
                            sent += chunk.len();
                        }
                        Ok(())
                    }
                    Server::Endless => {
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await;
                        let chunk = [b"4000\r\n".as_slice(), &[b'y'; 0x4000], b"\r\n"].concat();
                        while conn.write_all(&chunk).await.is_ok() {}
                        Ok(())
                    }
                    Server::Trickle => {
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n").await;
                        while conn.write_all(b"z").await.is_ok() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok(())
                    }
                    Server::Garbage => Ok(()),
                };
            });
        }
    });
    addr
}

/// A host whose `wants-http` may reach `hosts`, with loopback allowed.
fn host_allowing(hosts: &[SocketAddr], extra: &str) -> TestHost {
    let list: Vec<String> = hosts.iter().map(|a| format!("\"http://{a}\"")).collect();
    TestHost::new(&format!(
        "[agents.wants-http]\nhttp = {{ hosts = [{}], allow_addresses = [\"127.0.0.0/8\"]{extra} }}\n",
        list.join(", ")
    ))
}

async fn call(h: &TestHost, text: &str) -> Result<String, CallError> {
    let agent = h.load("wants-http").await.expect("wants-http loads");
    agent.call(&request("s", text)).await.map(|o| o.response.text)
}

fn refused(result: Result<String, CallError>, code: &str) -> String {
    match result {
        Err(CallError::Agent { message, .. }) if message.contains(code) => message,
        other => panic!("expected an agent error with {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_allowed_host_is_fetched_and_every_request_is_recorded() {
    let ok = serve(Server::Body("hello")).await;
    let h = host_allowing(&[ok], "");
    assert_eq!(call(&h, &format!("get http://{ok}/x")).await.unwrap(), "200 5\nhello");
    refused(call(&h, "get http://127.0.0.1:9/elsewhere").await, "host-not-allowed");
    let log = h.host.backend.http_log(Some("wants-http"), 10).unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!((log[0].outcome.as_str(), log[0].status, log[0].bytes), ("ok", Some(200), 5));
    assert_eq!((log[0].host.as_str(), log[0].port, log[0].method.as_str()), ("127.0.0.1", ok.port(), "GET"));
    assert_eq!(log[1].outcome, "host-not-allowed");
}

#[tokio::test]
async fn http_is_not_granted_by_default_and_its_scope_is_checked_at_config_load() {
    let h = TestHost::new("");
    let err = h.load("wants-http").await.err().expect("refused").to_string();
    assert!(err.contains("`http`") && err.contains("[agents.wants-http]"), "{err}");
    let bad = agentkernel::config::HostConfig::parse("[agents.x]\nhttp = { hosts = [\"ftp://example.org\"] }\n");
    let e = bad.unwrap_err().to_string();
    assert!(e.contains("[agents.x] http") && e.contains("ftp"), "{e}");
}

#[tokio::test]
async fn loopback_and_metadata_addresses_need_an_explicit_range() {
    let ok = serve(Server::Body("secret")).await;
    // The host is on the list, but loopback is not allowed.
    let h = TestHost::new(&format!("[agents.wants-http]\nhttp = {{ hosts = [\"http://localhost:{p}\", \"http://127.0.0.1:{p}\"] }}\n", p = ok.port()));
    refused(call(&h, &format!("get http://localhost:{}/", ok.port())).await, "address-not-allowed");
    refused(call(&h, &format!("get http://127.0.0.1:{}/", ok.port())).await, "address-not-allowed");
    let h = TestHost::new(
        "[agents.wants-http]\nhttp = { hosts = [\"http://169.254.169.254\", \"http://[::ffff:169.254.169.254]\"], allow_addresses = [\"127.0.0.0/8\"] }\n",
    );
    refused(call(&h, "get http://169.254.169.254/latest/meta-data/").await, "address-not-allowed");
    refused(call(&h, "get http://[::ffff:169.254.169.254]/latest/meta-data/").await, "address-not-allowed");
}

#[tokio::test]
async fn redirects_are_rechecked_and_bounded() {
    let forbidden = serve(Server::Body("you should not see this")).await;
    let to_forbidden = serve(Server::Redirect(format!("http://{forbidden}/"))).await;
    let h = host_allowing(&[to_forbidden], "");
    refused(call(&h, &format!("get http://{to_forbidden}/")).await, "host-not-allowed");
    // A server redirecting to itself: the loop ends after max_redirects.
    let looping = serve(Server::RedirectLoop).await;
    let h = host_allowing(&[looping], ", max_redirects = 3");
    let msg = refused(call(&h, &format!("get http://{looping}/")).await, "transport");
    assert!(msg.contains("redirect"), "{msg}");
    let log = h.host.backend.http_log(Some("wants-http"), 10).unwrap();
    assert_eq!(log.last().map(|r| r.outcome.as_str()), Some("transport"), "{log:?}");
}

#[tokio::test]
async fn huge_and_endless_bodies_stop_at_the_cap() {
    let huge = serve(Server::Huge(64 << 20)).await;
    let endless = serve(Server::Endless).await;
    let h = host_allowing(&[huge, endless], ", max_response_bytes = 65536");
    let started = Instant::now();
    let msg = refused(call(&h, &format!("get http://{huge}/")).await, "too-large");
    assert!(msg.contains("65536"), "{msg}");
    refused(call(&h, &format!("get http://{endless}/")).await, "too-large");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped early, not after reading it all: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_trickling_body_times_out_within_the_call() {
    let slow = serve(Server::Trickle).await;
    let h = host_allowing(&[slow], ", timeout_ms = 600");
    let started = Instant::now();
    refused(call(&h, &format!("get http://{slow}/")).await, "timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // With a long scope timeout, the call's own deadline bounds the request.
    let h = TestHost::new(&format!(
        "[agents.wants-http]\nhttp = {{ hosts = [\"http://{slow}\"], allow_addresses = [\"127.0.0.0/8\"], timeout_ms = 60000 }}\nlimits = {{ deadline_ms = 800 }}\n"
    ));
    let started = Instant::now();
    let result = call(&h, &format!("get http://{slow}/")).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(matches!(&result, Err(CallError::Deadline { .. })) || result.as_ref().is_err_and(|e| e.to_string().contains("timeout")), "{result:?}");
}

#[tokio::test]
async fn garbage_instead_of_http_is_a_transport_error() {
    let garbage = serve(Server::Garbage).await;
    let h = host_allowing(&[garbage], "");
    refused(call(&h, &format!("get http://{garbage}/")).await, "transport");
    // https to a server that does not speak TLS.
    let h = TestHost::new(&format!(
        "[agents.wants-http]\nhttp = {{ hosts = [\"https://{garbage}\"], allow_addresses = [\"127.0.0.0/8\"] }}\n"
    ));
    refused(call(&h, &format!("get https://{garbage}/")).await, "transport");
}

#[tokio::test]
async fn requests_per_call_and_per_day_are_budgets() {
    let ok = serve(Server::Body("ok")).await;
    let h = host_allowing(&[ok], ", requests_per_call = 3, requests_per_day = 5");
    let url = format!("http://{ok}/");
    let msg = refused(call(&h, &format!("repeat 4 {url}")).await, "budget-exceeded");
    assert!(msg.contains("after 3") && msg.contains("requests_per_call"), "{msg}");
    // A request policy refuses is logged but uses none of the day's allowance.
    refused(call(&h, "get http://127.0.0.1:9/").await, "host-not-allowed");
    // Two of the day's five are left.
    assert_eq!(call(&h, &format!("repeat 2 {url}")).await.unwrap(), "ok 2");
    let msg = refused(call(&h, &format!("get {url}")).await, "budget-exceeded");
    assert!(msg.contains("requests_per_day"), "{msg}");
    let log = h.host.backend.http_log(Some("wants-http"), 100).unwrap();
    let outcomes: Vec<&str> = log.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "ok").count(), 5, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "budget-exceeded").count(), 2, "refusals are logged too: {outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "host-not-allowed").count(), 1, "{outcomes:?}");
}

#[tokio::test]
async fn a_guest_hammering_forbidden_hosts_is_bounded_per_call_and_in_the_log() {
    let ok = serve(Server::Body("ok")).await;
    let h = host_allowing(&[ok], ", requests_per_call = 10, requests_per_day = 15");
    let tally = call(&h, "hammer 20000 http://169.254.169.254/latest/meta-data/").await.unwrap();
    assert_eq!(tally, "budget-exceeded=19990 host-not-allowed=10", "every attempt takes one of the call's allowance");
    let log = h.host.backend.http_log(Some("wants-http"), 1000).unwrap();
    assert_eq!(log.len(), 11, "ten refusals and the first over-budget attempt: {log:?}");
    // A second call: ten more refusals, and the day's log cap (15) holds.
    call(&h, "hammer 100 http://169.254.169.254/").await.unwrap();
    let log = h.host.backend.http_log(Some("wants-http"), 1000).unwrap();
    assert_eq!(log.len(), 15, "{}", log.len());
    // The day's request budget is untouched by refusals.
    assert_eq!(call(&h, &format!("repeat 10 http://{ok}/")).await.unwrap(), "ok 10");
}

#[tokio::test]
async fn requests_carry_no_ambient_credentials() {
    let echo = serve(Server::EchoHead).await;
    let h = host_allowing(&[echo], "");
    let text = call(&h, &format!("get http://{echo}/")).await.unwrap();
    let head = text.to_ascii_lowercase();
    for leak in ["cookie", "authorization", "proxy"] {
        assert!(!head.contains(leak), "{leak} in {head}");
    }
    assert!(head.contains("user-agent: agentkernel"), "{head}");
    // A guest may not set hop-by-hop or framing headers.
    refused(call(&h, &format!("header Host:evil.example http://{echo}/")).await, "invalid-request");
}
