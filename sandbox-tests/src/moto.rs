//! A real EC2 API on loopback for tests: `moto_server` (PyPI `moto[server]`,
//! installed by `scripts/deps/moto.sh`, which exports
//! `AGENTKERNEL_MOTO_SERVER`), one server per test so tests never see each
//! other's instances. Plus a loopback endpoint that always throttles, and
//! one that drops EC2's `DryRun` flag on its way to moto (an endpoint that
//! does what a dry run only asks).
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use crate::child::{ChildServer, free_loopback_addr};
use std::sync::Once;
use std::time::{Duration, Instant};

/// An AMI that moto ships in every region.
pub const MOTO_AMI: &str = "ami-03cf127a";
/// Another of moto's built-in AMIs.
pub const MOTO_AMI_2: &str = "ami-12c6146b";

/// Fake credentials and no instance-metadata lookups, for the standard
/// AWS chain in this process (and child processes inherit them). Set once,
/// before any test starts an AWS client.
pub fn fake_aws_env() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: called through a Once before any test in this binary
        // creates an AWS client or reads these variables.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::remove_var("AWS_SESSION_TOKEN");
            std::env::remove_var("AWS_PROFILE");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/agentkernel-test-aws-config");
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/agentkernel-test-aws-credentials");
        }
    });
}

/// A running `moto_server`, killed on drop.
pub struct Moto {
    _server: ChildServer,
    pub addr: SocketAddr,
}

impl Moto {
    /// Starts `moto_server` on a free loopback port (AMI ids validated, so
    /// an unknown AMI is an error as on AWS) and waits until it accepts.
    pub fn start() -> Moto {
        fake_aws_env();
        let exe = std::env::var("AGENTKERNEL_MOTO_SERVER").unwrap_or_else(|_| {
            panic!("AGENTKERNEL_MOTO_SERVER is not set: run ./scripts/test (scripts/deps/moto.sh installs moto_server)")
        });
        let addr = free_loopback_addr();
        let server = ChildServer::spawn(
            Command::new(&exe)
                .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
                .env("MOTO_ENABLE_AMI_VALIDATION", "true")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
        let moto = Moto { _server: server, addr };
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(60), "moto_server did not listen on {addr} within 60s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}


/// A loopback "EC2 endpoint" that answers requests with 503
/// `RequestLimitExceeded`, as EC2 does when throttling, and (optionally)
/// forwards the requests after the first `throttled` ones to moto.
/// Counts requests.
pub struct Throttler {
    pub addr: SocketAddr,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Throttler {
    /// Throttles every request.
    pub async fn start() -> Throttler {
        Self::start_then_forward(usize::MAX, None).await
    }

    /// Throttles the first `throttled` requests, then passes requests to `upstream`.
    pub async fn start_then_forward(throttled: usize, upstream: Option<SocketAddr>) -> Throttler {
        Self::serve(throttled, upstream, |body| body.to_vec()).await
    }

    /// Passes every request to `upstream` with `DryRun=true` removed, so
    /// EC2 makes the change and answers success: what the host must never
    /// report as a dry run.
    pub async fn forward_ignoring_dry_run(upstream: SocketAddr) -> Throttler {
        Self::serve(0, Some(upstream), |body| {
            let text = String::from_utf8_lossy(body);
            let kept: Vec<&str> = text.split('&').filter(|p| *p != "DryRun=true").collect();
            kept.join("&").into_bytes()
        })
        .await
    }

    async fn serve(throttled: usize, upstream: Option<SocketAddr>, rewrite: fn(&[u8]) -> Vec<u8>) -> Throttler {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // Read one request (headers, then Content-Length bytes of body).
                        let Some(end) = find(&buf, b"\r\n\r\n") else {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + len {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let request: Vec<u8> = buf.drain(..end + 4 + len).collect();
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if let (true, Some(up)) = (n >= throttled, upstream) {
                            // One request per upstream connection: ask it to close, relay until EOF.
                            let head = String::from_utf8_lossy(&request[..end]).to_string();
                            let body = rewrite(&request[end + 4..]);
                            let length = format!("content-length: {}", body.len());
                            let mut head: Vec<&str> = head
                                .split("\r\n")
                                .filter(|l| !l.to_lowercase().starts_with("connection:") && !l.to_lowercase().starts_with("content-length:"))
                                .collect();
                            head.push("connection: close");
                            head.push(&length);
                            let mut out = head.join("\r\n").into_bytes();
                            out.extend_from_slice(b"\r\n\r\n");
                            out.extend_from_slice(&body);
                            let Ok(mut upstream) = tokio::net::TcpStream::connect(up).await else { return };
                            let mut reply = Vec::new();
                            if upstream.write_all(&out).await.is_err() || upstream.read_to_end(&mut reply).await.is_err() {
                                return;
                            }
                            let _ = sock.write_all(&reply).await;
                            return;
                        }
                        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>throttler</RequestID></Response>";
                        let resp = format!(
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Throttler { addr, requests }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
