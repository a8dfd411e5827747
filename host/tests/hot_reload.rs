//! Hot reload through the HTTP API: files dropped, replaced (atomically and
//! in place) and deleted while calls keep succeeding.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sandbox_tests::{TestHost, wasm};
use serde_json::{Value, json};


async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Polls `check` until it holds, for at most ten seconds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn agent_version(addr: SocketAddr, name: &str) -> Option<String> {
    let (s, v) = get(addr, &format!("/v1/agents/{name}")).await;
    (s == 200).then(|| v["version"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_file_under_load_fails_no_call() {
    let h = TestHost::new("");
    h.install("echo", "echo.wasm");
    let addr = h.serve().await;
    let _watch = h.host.registry.watch().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut seen = Vec::new();
                let mut i = 0u32;
                // Bounded: stops when told, and never runs past 5,000 calls.
                while !stop.load(Ordering::Relaxed) && i < 5_000 {
                    let text = format!("c{c}-{i}");
                    let r = client
                        .post(format!("http://{addr}/v1/agents/echo/call"))
                        .json(&json!({"text": text}))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap();
                    seen.push((status, text, body));
                    i += 1;
                }
                seen
            })
        })
        .collect();

    for round in 0..10 {
        let (crate_name, version) = if round % 2 == 0 { ("echo-v2", "0.2.0") } else { ("echo", "0.1.0") };
        h.install(crate_name, "echo.wasm");
        eventually(&format!("echo {version} served"), async || {
            agent_version(addr, "echo").await.as_deref() == Some(version)
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut versions = std::collections::BTreeSet::new();
    let mut total = 0;
    for c in clients {
        for (status, text, body) in c.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "call failed during reload: {body}");
            // Every answer comes from one complete version: its version
            // string and its behaviour agree.
            match body["version"].as_str().unwrap() {
                "0.1.0" => assert_eq!(body["text"], text.as_str()),
                "0.2.0" => assert_eq!(body["text"], format!("v2:{text}")),
                other => panic!("unknown version {other}"),
            }
            versions.insert(body["version"].as_str().unwrap().to_string());
        }
    }
    assert!(total > 20, "load ran ({total} calls)");
    assert_eq!(versions.len(), 2, "both versions served: {versions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_deleted_half_written_and_conflicting_files() {
    let h = TestHost::new("");
    h.install("echo", "echo.wasm");
    let addr = h.serve().await;
    let _watch = h.host.registry.watch().unwrap();
    let dir = h.agents_dir();

    // Dropped in: appears.
    h.install("global-counter", "counter.wasm");
    eventually("counter loaded", async || agent_version(addr, "global-counter").await.is_some()).await;

    // Deleted: disappears, others stay.
    std::fs::remove_file(dir.join("counter.wasm")).unwrap();
    eventually("counter unloaded", async || agent_version(addr, "global-counter").await.is_none()).await;
    assert_eq!(agent_version(addr, "echo").await.as_deref(), Some("0.1.0"));

    // Half-written in place: the old version keeps serving and the status
    // says why the new contents are not loaded.
    let v2 = wasm("echo-v2");
    std::fs::write(dir.join("echo.wasm"), &v2[..v2.len() / 2]).unwrap();
    eventually("half-written file reported", async || {
        let (_, a) = get(addr, "/v1/agents/echo").await;
        a["status"] == "serving-previous-version"
    })
    .await;
    let (s, r) = get(addr, "/v1/agents/echo").await;
    assert_eq!((s, r["version"].as_str()), (200, Some("0.1.0")));
    let call = reqwest::Client::new()
        .post(format!("http://{addr}/v1/agents/echo/call"))
        .json(&json!({"text": "during"}))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status().as_u16(), 200);

    // Finished writing: the new version loads.
    std::fs::write(dir.join("echo.wasm"), &v2).unwrap();
    eventually("completed file loaded", async || agent_version(addr, "echo").await.as_deref() == Some("0.2.0")).await;
    let (_, r) = get(addr, "/v1/agents/echo").await;
    assert_eq!(r["status"], "ready");

    // A second file claiming the same name is refused; the first keeps serving.
    h.install("echo", "zz-another-echo.wasm");
    eventually("conflict reported", async || {
        let (_, list) = get(addr, "/v1/agents").await;
        list["failed_files"].as_array().unwrap().iter().any(|f| {
            f["path"].as_str().unwrap().ends_with("zz-another-echo.wasm")
                && f["error"].as_str().unwrap().contains("already provided by")
        })
    })
    .await;
    assert_eq!(agent_version(addr, "echo").await.as_deref(), Some("0.2.0"));

    // Garbage never takes anything down.
    std::fs::write(dir.join("junk.wasm"), b"junk").unwrap();
    eventually("junk reported", async || {
        let (_, list) = get(addr, "/v1/agents").await;
        list["failed_files"].as_array().unwrap().iter().any(|f| f["path"].as_str().unwrap().ends_with("junk.wasm"))
    })
    .await;
    let (s, health) = get(addr, "/healthz").await;
    assert_eq!((s, health["agents"].as_u64()), (200, Some(1)));
}

/// `bytes` grown to exactly `len` bytes by a trailing custom section, which
/// changes nothing a component does.
fn padded_to(mut bytes: Vec<u8>, len: usize) -> Vec<u8> {
    fn leb(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"pad";
    let need = len.checked_sub(bytes.len()).expect("padding only grows");
    // section = id 0, size (LEB128), name length, name, payload; find the
    // payload length whose encoding makes the whole section `need` bytes.
    let payload = (0..need)
        .rev()
        .find(|&p| {
            let body = 1 + name.len() + p;
            1 + leb(body).len() + body == need
        })
        .expect("a padding length exists");
    let body = 1 + name.len() + payload;
    bytes.push(0);
    bytes.extend(leb(body));
    bytes.push(name.len() as u8);
    bytes.extend(name);
    bytes.extend(std::iter::repeat_n(0u8, payload));
    assert_eq!(bytes.len(), len);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_with_the_same_size_and_mtime_is_reloaded() {
    // What `cp -p`, `rsync -t`, tar or a reproducible build produce: new
    // contents under the old file's size and modification time.
    let (v1, v2) = (wasm("echo"), wasm("echo-v2"));
    let len = v1.len().max(v2.len()) + 64;
    let (v1, v2) = (padded_to(v1, len), padded_to(v2, len));
    let h = TestHost::new("");
    let path = h.agents_dir().join("echo.wasm");
    std::fs::create_dir_all(h.agents_dir()).unwrap();
    std::fs::write(&path, &v1).unwrap();
    let addr = h.serve().await;
    let _watch = h.host.registry.watch().unwrap();
    assert_eq!(agent_version(addr, "echo").await.as_deref(), Some("0.1.0"));
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();

    // Rewritten in place, mtime put back.
    let f = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    use std::io::Write;
    (&f).write_all(&v2).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.len(), meta.modified().unwrap()), (len as u64, mtime), "size and mtime unchanged");
    eventually("echo 0.2.0 served after an in-place rewrite", async || {
        agent_version(addr, "echo").await.as_deref() == Some("0.2.0")
    })
    .await;

    // Replaced by rename (a new inode), mtime put back.
    let staged = h.agents_dir().join(".echo.staged");
    std::fs::write(&staged, &v1).unwrap();
    std::fs::File::options().write(true).open(&staged).unwrap().set_modified(mtime).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    eventually("echo 0.1.0 served after a rename", async || {
        agent_version(addr, "echo").await.as_deref() == Some("0.1.0")
    })
    .await;
}
