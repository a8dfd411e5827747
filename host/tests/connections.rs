//! The network edge with real sockets on loopback: header, idle and write
//! timeouts, connection caps, per-address request rates, and errors that
//! are JSON whatever refused the request.
use std::net::SocketAddr;
use std::time::Duration;

use sandbox_tests::TestHost;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

/// Generous: every wait below is for something configured in milliseconds.
const PATIENCE: Duration = Duration::from_secs(15);

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.head, String::from_utf8_lossy(&self.body)))
    }

    /// The error code, after checking the body is the one error shape.
    fn error_code(&self) -> String {
        let v = self.json();
        assert!(self.head.to_ascii_lowercase().contains("content-type: application/json"), "{}", self.head);
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v["error"]["code"].as_str().unwrap_or_else(|| panic!("no code: {v}")).to_string()
    }
}

/// Reads one response (headers, then `content-length` bytes or to EOF).
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = timeout(PATIENCE, stream.read(&mut chunk)).await.expect("answer in time").expect("read");
        assert!(n > 0, "connection closed before a full head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()));
    let mut body = buf[head_end..].to_vec();
    loop {
        if length.is_some_and(|len| body.len() >= len) {
            break;
        }
        let n = timeout(PATIENCE, stream.read(&mut chunk)).await.expect("body in time").unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Answer { status, head, body }
}

/// Sends raw bytes on a fresh connection and reads the answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_answer(&mut stream).await
}

async fn healthz(addr: SocketAddr) -> Answer {
    raw(addr, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await
}

/// Waits until the server closes `stream` (EOF or reset), returning how long it took.
async fn closed_by_server(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut chunk = [0u8; 65536];
    loop {
        match timeout(PATIENCE, stream.read(&mut chunk)).await.expect("the server closes the connection in time") {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let h = TestHost::new("[server]\nheader_timeout_ms = 300\nidle_timeout_ms = 20000");
    let addr = h.serve().await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
    // Closed after the header timeout, long before the idle timeout.
    assert!(closed_by_server(&mut slow).await < Duration::from_secs(10));
    assert_eq!(healthz(addr).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let h = TestHost::new("[server]\nidle_timeout_ms = 300\nheader_timeout_ms = 20000");
    let addr = h.serve().await;
    // A keep-alive connection after its answer.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    assert_eq!(read_answer(&mut kept).await.status, 200);
    // And one that never sends anything.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_server(&mut kept).await < Duration::from_secs(10));
    assert!(closed_by_server(&mut silent).await < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_new_clients_get_json_503_until_a_slot_frees() {
    let h = TestHost::new("[server]\nmax_connections = 2\nmax_connections_per_ip = 2\nidle_timeout_ms = 30000");
    let addr = h.serve().await;
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = healthz(addr).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (503, "capacity"));
    drop(first);
    // The slot is given back once the server sees the close.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = healthz(addr).await;
        if answer.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let h = TestHost::new("[server]\nmax_connections = 8\nmax_connections_per_ip = 1\nidle_timeout_ms = 30000");
    let addr = h.serve().await;
    let _held = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = healthz(addr).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (429, "too-many-connections"));
}

/// A client that asks for a large streamed answer and never reads it:
/// the write stalls, the write timeout closes the connection, and its
/// slot (and the answer it held) is released. The idle timeout is far
/// away, so only the write timeout can free the slot in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_by_the_write_timeout() {
    let h = TestHost::new(
        "[server]\nmax_connections = 1\nmax_connections_per_ip = 1\nwrite_timeout_ms = 300\nidle_timeout_ms = 60000\n\
         [agents.huge-response]\nlimits = { max_response_bytes = 33554432 }",
    );
    h.load("huge-response").await.expect("huge-response loads");
    let addr = h.serve().await;

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut reader = socket.connect(addr).await.unwrap();
    let body = r#"{"message": "8000000", "agents": ["huge-response"], "stream": true}"#;
    let request = format!(
        "POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    reader.write_all(request.as_bytes()).await.unwrap();

    // While it is held, the one slot is taken...
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = healthz(addr).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (503, "capacity"));
    // ...until the stalled write gives it back.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = healthz(addr).await;
        if answer.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the never-reading client still holds its slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client that finally reads finds far less than the answer, then the end.
    let mut got = 0usize;
    let mut chunk = [0u8; 65536];
    while let Ok(Ok(n)) = timeout(PATIENCE, reader.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert!(got < 8_000_000, "read {got} bytes: the whole answer was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_are_rate_limited_per_address() {
    let token = "0123456789abcdef-secret";
    let h = TestHost::new(&format!(
        "[server]\nunauthenticated_requests_per_minute = 3\n\
         [[host.tokens]]\nname = \"web\"\ntoken = \"{token}\"\nscopes = [\"chat\"]"
    ));
    let addr = h.serve().await;
    // Public endpoints and wrong tokens draw on the same per-address bucket.
    assert_eq!(healthz(addr).await.status, 200);
    let bad = b"GET /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong-guess-000000\r\nConnection: close\r\n\r\n";
    let refused = raw(addr, bad).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (401, "unauthorized"));
    assert_eq!(raw(addr, b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.status, 404);
    for answer in [raw(addr, bad).await, healthz(addr).await] {
        assert_eq!((answer.status, answer.error_code().as_str()), (429, "rate-limited"));
        assert!(answer.head.to_ascii_lowercase().contains("retry-after:"), "{}", answer.head);
    }
    // A valid token is not charged to the address.
    let good = format!("GET /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(addr, good.as_bytes()).await.status, 200);
}

/// Every error the server emits is `{"error": {"code", "message"}}`,
/// including those axum and the head limits produce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_outside_the_handlers_are_json_too() {
    let h = TestHost::new("");
    h.install("echo", "echo.wasm");
    let addr = h.serve().await;
    let request = |line: &str, extra: &str| format!("{line} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n");

    let wrong_method = raw(addr, request("DELETE /healthz", "").as_bytes()).await;
    assert_eq!((wrong_method.status, wrong_method.error_code().as_str()), (405, "method-not-allowed"));
    assert!(wrong_method.head.to_ascii_lowercase().contains("allow:"), "{}", wrong_method.head);
    let wrong_method = raw(addr, request("GET /v1/chat", "").as_bytes()).await;
    assert_eq!((wrong_method.status, wrong_method.error_code().as_str()), (405, "method-not-allowed"));

    let bad_utf8 = raw(addr, request("GET /v1/agents/%FF%FE", "").as_bytes()).await;
    assert_eq!((bad_utf8.status, bad_utf8.error_code().as_str()), (400, "invalid-request"));
    let bad_query = raw(addr, request("GET /v1/sessions/s1?limit=many", "").as_bytes()).await;
    assert_eq!((bad_query.status, bad_query.error_code().as_str()), (400, "invalid-request"));

    let long_uri = format!("GET /v1/agents/{}", "x".repeat(agentkernel::server::edge::MAX_URI_BYTES + 1));
    let answer = raw(addr, request(&long_uri, "").as_bytes()).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (414, "uri-too-long"));

    let many: String = (0..agentkernel::server::edge::MAX_HEADERS + 1).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw(addr, request("GET /healthz", &many).as_bytes()).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (431, "headers-too-large"));
    let big = format!("X-Big: {}\r\n", "v".repeat(agentkernel::server::edge::MAX_HEADER_BYTES));
    let answer = raw(addr, request("GET /healthz", &big).as_bytes()).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (431, "headers-too-large"));

    // Beyond the head buffer hyper refuses by itself; the connection still ends, bounded.
    let huge = format!("X-Huge: {}\r\n", "v".repeat(256 * 1024));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request("GET /healthz", &huge).as_bytes()).await;
    closed_by_server(&mut stream).await;
    assert_eq!(healthz(addr).await.status, 200);
}

/// `server::serve` (what `agentkernel serve` runs) stops on its shutdown
/// signal: idle keep-alive connections are closed and it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_returns() {
    let h = TestHost::new("[server]\nidle_timeout_ms = 60000");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = agentkernel::server::serve(listener, &h.host, async {
        let _ = stopped.await;
    });
    let client = async move {
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        assert_eq!(read_answer(&mut kept).await.status, 200);
        stop.send(()).unwrap();
        closed_by_server(&mut kept).await
    };
    let (served, _) = tokio::join!(timeout(PATIENCE, server), client);
    served.expect("serve returns after its shutdown signal").expect("serve ends cleanly");
}

/// A client that announces a body and stops sending it gets a JSON error
/// once the body stalls for the header timeout, instead of holding the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stops_coming_is_refused() {
    let h = TestHost::new("[server]\nheader_timeout_ms = 300\nidle_timeout_ms = 20000");
    h.install("echo", "echo.wasm");
    let addr = h.serve().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = "POST /v1/agents/echo/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(format!("{head}{{\"text\": ").as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (400, "invalid-request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_sent_a_byte_at_a_time_is_cut_off() {
    // Each byte arrives well inside the stall timeout; the whole body may
    // take three of them.
    let h = TestHost::new("[server]\nheader_timeout_ms = 300\nidle_timeout_ms = 20000");
    h.install("echo", "echo.wasm");
    let addr = h.serve().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = "POST /v1/agents/echo/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    // A byte every 100 ms (the whole would take 10 s), until the server answers.
    for _ in 0..100 {
        if tokio::time::timeout(std::time::Duration::from_millis(100), stream.readable()).await.is_ok() {
            break;
        }
        if stream.write_all(b" ").await.is_err() {
            break;
        }
    }
    let answer = read_answer(&mut stream).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (400, "invalid-request"));
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "cut off after {:?}", started.elapsed());
}
