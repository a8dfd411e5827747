//! Components follow the store: an install on one host (a drop-in file, a
//! swap, a rollback) is served by every host sharing the backend, and a
//! host that cannot load a placed version keeps the previous one and says
//! so. End to end with two `serve` processes on one PostgreSQL database;
//! the follower's rules and bounds tick by tick on one shared SQLite file
//! (where the server starts no follower, but the rules are the same).
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentkernel::config::HostConfig;
use agentkernel::follow::{FollowSettings, Follower, TickReport};
use agentkernel::host::Host;
use agentkernel::storage::Backend;
use agentkernel::storage::components::{ComponentStore, content_hash};
use agentkernel::storage::postgres::{PostgresStorage, testing};
use agentkernel::storage::sqlite::SqliteStorage;
use sandbox_tests::served::Served;
use serde_json::{Value, json};

/// How long host B may take to serve what was installed on host A.
const BOUND: Duration = Duration::from_secs(10);

fn wasm(name: &str) -> Vec<u8> {
    sandbox_tests::wasm(name)
}

/// `bytes` into `dir/file` as a careful operator copies: a hidden file, renamed in.
fn drop_in(dir: &Path, file: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

/// A `serve` host on `database` with the workspace-built `agents`.
fn serve(database: &str, agents: &[&str]) -> Served {
    Served::start(Path::new(env!("CARGO_BIN_EXE_agentkernel")), &format!("[storage]\nurl = \"{database}\"\n"), agents)
}

async fn agents(client: &reqwest::Client, host: &Served) -> Value {
    match client.get(format!("{}/v1/agents", host.url)).timeout(Duration::from_secs(5)).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn agent<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["agents"].as_array()?.iter().find(|a| a["name"] == name)
}

/// Polls `host`'s agent list until `done` holds; the time it took.
async fn until(client: &reqwest::Client, host: &Served, what: &str, done: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let list = agents(client, host).await;
        if done(&list) {
            return started.elapsed();
        }
        assert!(started.elapsed() < BOUND, "{} did not get there within {BOUND:?}: {what}\n{list:#}", host.url);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn call(client: &reqwest::Client, host: &Served, agent: &str, text: &str) -> (u16, Value) {
    let r = client
        .post(format!("{}/v1/agents/{agent}/call", host.url))
        .json(&json!({"text": text, "session_id": "follow"}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn an_install_on_one_host_is_served_by_the_other_and_a_bad_one_is_reported() {
    let Some(database) = testing::fresh_database("components_follow") else { return };
    let (v1, v2, notes) = (wasm("echo"), wasm("echo-v2"), wasm("notes"));
    let (h1, h2, hn) = (content_hash(&v1), content_hash(&v2), content_hash(&notes));
    let a = serve(&database, &["echo"]);
    let b = serve(&database, &["echo"]);
    runtime().block_on(async {
        let client = reqwest::Client::new();
        // Both report v1, and each shows both hosts.
        until(&client, &b, "both hosts report echo v1", |l| {
            agent(l, "echo").and_then(|e| e["hosts"].as_array()).is_some_and(|h| h.len() == 2 && h.iter().all(|r| r["hash"] == h1))
        })
        .await;

        // A swap by a file dropped into A's directory.
        let started = Instant::now();
        drop_in(&a.agents, "echo.wasm", &v2);
        until(&client, &b, "B serves echo v2", |l| agent(l, "echo").is_some_and(|e| e["hash"] == h2)).await;
        let swap_to_served = started.elapsed();
        println!("swap on host A to served on host B: {} ms", swap_to_served.as_millis());
        let (status, body) = call(&client, &b, "echo", "hello").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.to_string().contains("v2"), "B answers with v2: {body}");
        assert_eq!(std::fs::read(b.agents.join("echo.wasm")).unwrap(), v2, "written into B's directory");

        // A new agent dropped into A's directory.
        let started = Instant::now();
        drop_in(&a.agents, "notes.wasm", &notes);
        until(&client, &b, "B serves notes", |l| agent(l, "notes").is_some_and(|n| n["hash"] == hn)).await;
        println!("new agent on host A to served on host B: {} ms", started.elapsed().as_millis());
        let (status, body) = call(&client, &b, "notes", "remember followed").await;
        assert_eq!(status, 200, "{body}");

        // Every host's version, from either host.
        for host in [&a, &b] {
            let list = until(&client, host, "both hosts report echo v2", |l| {
                agent(l, "echo").and_then(|e| e["hosts"].as_array()).is_some_and(|h| h.len() == 2 && h.iter().all(|r| r["hash"] == h2))
            });
            list.await;
        }
        let list = agents(&client, &a).await;
        let hosts: Vec<&str> = agent(&list, "echo").unwrap()["hosts"].as_array().unwrap().iter().map(|r| r["host"].as_str().unwrap()).collect();
        assert!(hosts.iter().any(|h| h.ends_with(&format!(":{}", a.port()))) && hosts.iter().any(|h| h.ends_with(&format!(":{}", b.port()))), "{hosts:?}");

        // Bytes with their right hash that are no component.
        let garbage = b"\0asm but not a component at all".to_vec();
        let bad = content_hash(&garbage);
        let store = PostgresStorage::connect(&database, 1).unwrap();
        store.publish_component("echo", &bad, "echo.wasm", &garbage, "test", 1).unwrap();
        until(&client, &b, "B reports the bad version", |l| {
            agent(l, "echo").and_then(|e| e["hosts"].as_array()).is_some_and(|h| {
                h.iter().any(|r| r["host"].as_str().unwrap().ends_with(&format!(":{}", b.port())) && r["error"].as_str().is_some_and(|e| e.contains(&bad[..12])))
            })
        })
        .await;
        let list = agents(&client, &b).await;
        let echo = agent(&list, "echo").unwrap();
        assert_eq!(echo["hash"], h2, "B keeps serving v2");
        let report = echo["hosts"].as_array().unwrap().iter().find(|r| r["host"].as_str().unwrap().ends_with(&format!(":{}", b.port()))).unwrap();
        assert_eq!(report["hash"], h2, "{report}");
        println!("B's report of the bad version: {}", report["error"]);
        assert_eq!(std::fs::read(b.agents.join("echo.wasm")).unwrap(), v2, "the previous file is back");
        let (status, body) = call(&client, &b, "echo", "still there").await;
        assert_eq!(status, 200, "{body}");

        // A later placement (a rollback to v1) is taken, and the error is gone.
        store.publish_component("echo", &h1, "echo.wasm", &v1, "test", 2).unwrap();
        for host in [&a, &b] {
            until(&client, host, "both hosts serve v1 without errors", |l| {
                agent(l, "echo").is_some_and(|e| {
                    e["hash"] == h1
                        && e["hosts"].as_array().is_some_and(|h| h.len() == 2 && h.iter().all(|r| r["hash"] == h1 && r["error"].is_null()))
                })
            })
            .await;
        }
    });
}

#[test]
fn a_publish_notifies_listeners_with_its_seq() {
    let Some(database) = testing::fresh_database("components_notify") else { return };
    let store = PostgresStorage::connect(&database, 2).unwrap();
    let mut rx = store.placement_notifications().expect("PostgreSQL notifies");
    let next = |rx: &mut tokio::sync::mpsc::Receiver<String>| {
        let started = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(payload) => return payload,
                Err(_) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("no notification: {e}"),
            }
        }
    };
    assert_eq!(next(&mut rx), "", "listening");
    let bytes = wasm("echo");
    let seq = store.publish_component("echo", &content_hash(&bytes), "echo.wasm", &bytes, "test", 1).unwrap();
    assert_eq!(next(&mut rx), seq.to_string());
}

/// Hosts on one shared SQLite file, their followers ticked by hand.
struct Pair {
    store: Arc<SqliteStorage>,
    hosts: Vec<Host>,
    _dir: tempfile::TempDir,
}

fn pair(agents: &[&str]) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStorage::open(&dir.path().join("shared.sqlite")).unwrap());
    let hosts = ["a", "b"]
        .iter()
        .map(|name| {
            let mut config = HostConfig::parse("").unwrap();
            config.host.data_dir = dir.path().join(name).join("data");
            config.host.agents_dir = dir.path().join(name).join("agents.d");
            config.host.max_instances = 32;
            std::fs::create_dir_all(&config.host.agents_dir).unwrap();
            for agent in agents {
                std::fs::write(config.host.agents_dir.join(format!("{agent}.wasm")), wasm(agent)).unwrap();
            }
            Host::with_backend(config, store.clone()).unwrap()
        })
        .collect();
    Pair { store, hosts, _dir: dir }
}

fn follower(host: &Host, name: &str, settings: FollowSettings) -> Follower {
    let store: Arc<dyn Backend> = host.backend.clone();
    Follower::new(store, host.registry.clone(), host.config.host.agents_dir.clone(), name.into(), settings)
}

fn serves(host: &Host, agent: &str) -> Option<String> {
    host.registry.get(agent).map(|a| a.hash.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_on_one_host_is_the_latest_placement_and_is_not_undone() {
    let p = pair(&["echo"]);
    let (a, b) = (&p.hosts[0], &p.hosts[1]);
    a.registry.scan().await;
    b.registry.scan().await;
    let (mut fa, mut fb) = (follower(a, "a", FollowSettings::default()), follower(b, "b", FollowSettings::default()));
    let (v1, v2) = (wasm("echo"), wasm("echo-v2"));
    let (h1, h2) = (content_hash(&v1), content_hash(&v2));
    // A shares what it serves; B already serves it.
    assert_eq!(fa.tick().await.unwrap().published, ["echo"]);
    assert_eq!(fb.tick().await.unwrap(), TickReport { read: 1, caught_up: true, ..Default::default() });

    // An install on A (as an evolution's swap does) is published and followed.
    let data = &a.config.host.data_dir;
    agentkernel::evolution::swap::keep_component(data, &h2, &v2).unwrap();
    let store: &dyn Backend = &*p.store;
    agentkernel::evolution::swap::install(data, &a.config.host.agents_dir, "echo", &h2, "test swap", store, Some(&a.registry))
        .await
        .unwrap();
    assert_eq!(fb.tick().await.unwrap().installed, ["echo"]);
    assert_eq!(serves(b, "echo").as_deref(), Some(h2.as_str()));

    // A rollback on A to v1, placed long ago: A's follower leaves it, B takes it.
    agentkernel::evolution::swap::keep_component(data, &h1, &v1).unwrap();
    agentkernel::evolution::swap::install(data, &a.config.host.agents_dir, "echo", &h1, "rollback", store, Some(&a.registry))
        .await
        .unwrap();
    let on_a = fa.tick().await.unwrap();
    assert!(on_a.installed.is_empty() && on_a.published.is_empty(), "{on_a:?}");
    assert_eq!(serves(a, "echo").as_deref(), Some(h1.as_str()), "the rollback stands");
    assert_eq!(fb.tick().await.unwrap().installed, ["echo"]);
    assert_eq!(serves(b, "echo").as_deref(), Some(h1.as_str()));
    let latest = p.store.latest_placements(10).unwrap();
    assert_eq!((latest.len(), latest[0].hash.as_str()), (1, h1.as_str()));

    // A version B's store knows but B never kept is fetched for a rollback there.
    let b_data = &b.config.host.data_dir;
    assert!(!agentkernel::evolution::swap::components_dir(b_data).join(format!("{h2}.wasm")).exists());
    agentkernel::evolution::swap::install(b_data, &b.config.host.agents_dir, "echo", &h2, "rollback", store, Some(&b.registry))
        .await
        .unwrap();
    assert_eq!(fa.tick().await.unwrap().installed, ["echo"]);
    assert_eq!(serves(a, "echo").as_deref(), Some(h2.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_reads_a_bounded_page_per_tick_and_installs_only_when_caught_up() {
    let p = pair(&[]);
    let b = &p.hosts[1];
    let (v1, v2) = (wasm("echo"), wasm("echo-v2"));
    for (i, bytes) in [&v1, &v2, &v1, &v2, &v1].into_iter().enumerate() {
        p.store.publish_component("echo", &content_hash(bytes), "echo.wasm", bytes, "a", i as i64).unwrap();
    }
    let settings = FollowSettings { placements_per_tick: 2, ..Default::default() };
    let mut fb = follower(b, "b", settings);
    for read in [2, 2] {
        let tick = fb.tick().await.unwrap();
        assert_eq!((tick.read, tick.caught_up, tick.installed.len()), (read, false, 0), "{tick:?}");
    }
    let tick = fb.tick().await.unwrap();
    assert_eq!((tick.read, tick.caught_up, tick.installed), (1, true, vec!["echo".to_string()]));
    assert_eq!(serves(b, "echo"), Some(content_hash(&v1)), "the latest, once");
    assert_eq!(fb.tick().await.unwrap(), TickReport { caught_up: true, ..Default::default() });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tick_starts_no_install_once_its_time_is_up() {
    let p = pair(&[]);
    let b = &p.hosts[1];
    for agent in ["echo", "notes"] {
        let bytes = wasm(agent);
        p.store.publish_component(agent, &content_hash(&bytes), &format!("{agent}.wasm"), &bytes, "a", 1).unwrap();
    }
    let mut spent = follower(b, "b", FollowSettings { tick_budget: Duration::ZERO, ..Default::default() });
    let tick = spent.tick().await.unwrap();
    assert_eq!((tick.deferred, tick.installed.len()), (2, 0), "{tick:?}");
    assert!(b.registry.list().is_empty());
    let tick = follower(b, "b", FollowSettings::default()).tick().await.unwrap();
    assert_eq!(tick.installed, ["echo", "notes"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_does_not_load_is_reported_and_not_retried() {
    let p = pair(&["echo"]);
    let b = &p.hosts[1];
    b.registry.scan().await;
    let mut fb = follower(b, "b", FollowSettings::default());
    fb.tick().await.unwrap();
    let v1 = wasm("echo");
    let garbage = b"not a component".to_vec();
    let bad = content_hash(&garbage);
    p.store.publish_component("echo", &bad, "echo.wasm", &garbage, "a", 2).unwrap();
    let tick = fb.tick().await.unwrap();
    assert_eq!(tick.failed.len(), 1, "{tick:?}");
    assert!(tick.failed[0].1.contains("the previous file was restored"), "{tick:?}");
    assert_eq!(serves(b, "echo"), Some(content_hash(&v1)));
    assert_eq!(std::fs::read(b.config.host.agents_dir.join("echo.wasm")).unwrap(), v1);
    let report = p.store.host_reports(10).unwrap().into_iter().find(|r| r.host == "b").unwrap();
    assert_eq!(report.hash, content_hash(&v1));
    assert!(report.error.as_deref().is_some_and(|e| e.contains(&bad[..12])), "{report:?}");
    // Not retried every tick; still reported.
    assert_eq!(fb.tick().await.unwrap(), TickReport { caught_up: true, ..Default::default() });
    assert!(p.store.host_reports(10).unwrap().iter().any(|r| r.host == "b" && r.error.is_some()));
}

/// On SQLite a host is alone: `GET /v1/agents` has no `hosts`.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_on_sqlite_lists_no_hosts() {
    let t = sandbox_tests::TestHost::new("");
    t.install("echo", "echo.wasm");
    let addr = t.serve().await;
    let list: Value = reqwest::get(format!("http://{addr}/v1/agents")).await.unwrap().json().await.unwrap();
    let echo = agent(&list, "echo").expect("echo is listed");
    assert!(echo.get("hosts").is_none(), "{echo}");
}
