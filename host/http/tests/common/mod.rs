//! Loopback test servers with hand-written (and hostile) HTTP responses.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentkernel_http::{
    CheckedScope, FetchError, FetchRecord, Fetcher, HttpRequest, HttpResponse, HttpScope,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does after reading a request.
pub enum Reply {
    /// Write these bytes, then close.
    Raw(Vec<u8>),
    /// Write `head`, then `chunk` every `every` until `total` bytes of chunks were
    /// written or a write fails.
    Stream {
        head: String,
        chunk: Vec<u8>,
        every: Duration,
        total: u64,
    },
    /// Say nothing for this long, then close.
    Silent(Duration),
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply::Raw(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::Raw(
            format!("HTTP/1.1 {status} Moved\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
                .into_bytes(),
        )
    }
}

#[derive(Default)]
pub struct State {
    /// Each request as received: head and body, lossily decoded.
    pub requests: Mutex<Vec<String>>,
    pub connections: AtomicUsize,
    /// Bytes of streamed chunks written successfully.
    pub bytes_sent: AtomicU64,
    /// A stream wrote all of `total`.
    pub completed: AtomicBool,
}

pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

impl Server {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
    pub fn bytes_sent(&self) -> u64 {
        self.state.bytes_sent.load(Ordering::SeqCst)
    }
}

/// A server on 127.0.0.1 answering each request with `route(request)`.
pub async fn serve(route: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State::default());
    let route = Arc::new(route);
    let st = state.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            st.connections.fetch_add(1, Ordering::SeqCst);
            let (st, route) = (st.clone(), route.clone());
            tokio::spawn(async move { handle(sock, st, route).await });
        }
    });
    Server { addr, state }
}

async fn handle(mut sock: TcpStream, st: Arc<State>, route: Arc<impl Fn(&str) -> Reply>) {
    let Some(request) = read_request(&mut sock).await else {
        return;
    };
    st.requests.lock().unwrap().push(request.clone());
    match route(&request) {
        Reply::Raw(bytes) => {
            let _ = sock.write_all(&bytes).await;
            let _ = sock.shutdown().await;
        }
        Reply::Silent(d) => tokio::time::sleep(d).await,
        Reply::Stream {
            head,
            chunk,
            every,
            total,
        } => {
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut sent = 0u64;
            while sent < total {
                if sock.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len() as u64;
                st.bytes_sent
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
                if !every.is_zero() {
                    tokio::time::sleep(every).await;
                }
            }
            st.completed.store(true, Ordering::SeqCst);
        }
    }
}

async fn read_request(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A fetcher with no trusted roots (the tests speak plain HTTP, or fail TLS on purpose).
pub fn fetcher() -> Fetcher {
    Fetcher::with_roots(rustls::RootCertStore::empty()).unwrap()
}

pub const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1/128"];

pub fn scope(hosts: &[String], allow: &[&str]) -> HttpScope {
    HttpScope {
        hosts: hosts.to_vec(),
        allow_addresses: allow.iter().map(|s| s.to_string()).collect(),
        ..HttpScope::default()
    }
}

pub fn checked(s: HttpScope) -> CheckedScope {
    s.compile().unwrap()
}

/// Fetch with a 10 s deadline, itself bounded so a hang fails the test.
pub async fn fetch(
    scope: &CheckedScope,
    req: HttpRequest,
) -> (Result<HttpResponse, FetchError>, FetchRecord) {
    fetch_by(scope, req, Instant::now() + Duration::from_secs(10)).await
}

pub async fn fetch_by(
    scope: &CheckedScope,
    req: HttpRequest,
    deadline: Instant,
) -> (Result<HttpResponse, FetchError>, FetchRecord) {
    tokio::time::timeout(
        Duration::from_secs(20),
        fetcher().fetch_recorded(scope, req, deadline),
    )
    .await
    .expect("fetch must never hang")
}
