use super::aws::same_text;
use crate::Backend;
use crate::components::{HostReport, KEEP_PLACEMENTS, MAX_COMPONENT_BYTES, REPORT_RETENTION_SECS, content_hash};

pub(super) const TESTS: &[super::Test] = &[
    ("components_publish_and_follow_placements", components_publish_and_follow_placements),
    ("components_refuse_a_wrong_hash_a_bad_name_and_too_many_bytes", components_refuse_a_wrong_hash_a_bad_name_and_too_many_bytes),
    ("components_keep_the_bytes_of_each_agents_last_placements", components_keep_the_bytes_of_each_agents_last_placements),
    ("components_host_reports_are_one_per_host_and_agent_and_expire", components_host_reports_are_one_per_host_and_agent_and_expire),
    ("components_host_reports_keep_an_error_with_nul", components_host_reports_keep_an_error_with_nul),
];

fn blob(tag: &str) -> (Vec<u8>, String) {
    let bytes = format!("\0asm component {tag}").into_bytes();
    let hash = content_hash(&bytes);
    (bytes, hash)
}

fn components_publish_and_follow_placements(store: &dyn Backend) {
    assert_eq!(store.placements_after(0, 10).unwrap(), vec![]);
    assert_eq!(store.latest_placements(10).unwrap(), vec![]);
    let (v1, h1) = blob("echo 1");
    let (v2, h2) = blob("echo 2");
    let (n1, hn) = blob("notes 1");
    let s1 = store.publish_component("echo", &h1, "echo.wasm", &v1, "host-a:8080", 100).unwrap();
    let s2 = store.publish_component("notes", &hn, "notes.wasm", &n1, "host-a:8080", 101).unwrap();
    let s3 = store.publish_component("echo", &h2, "echo-v2.wasm", &v2, "host-b:8080", 102).unwrap();
    assert!(s1 < s2 && s2 < s3, "seqs increase: {s1} {s2} {s3}");
    // Republishing the same bytes (a rollback to them) is a new placement.
    let s4 = store.publish_component("echo", &h1, "echo.wasm", &v1, "host-b:8080", 103).unwrap();
    assert!(s4 > s3);

    let all = store.placements_after(0, 10).unwrap();
    assert_eq!(all.iter().map(|p| p.seq).collect::<Vec<_>>(), [s1, s2, s3, s4]);
    assert_eq!(
        (all[2].agent.as_str(), all[2].hash.as_str(), all[2].file_name.as_str(), all[2].host.as_str(), all[2].at),
        ("echo", h2.as_str(), "echo-v2.wasm", "host-b:8080", 102)
    );
    assert_eq!(store.placements_after(s1, 2).unwrap().iter().map(|p| p.seq).collect::<Vec<_>>(), [s2, s3], "paged");
    assert_eq!(store.placements_after(s4, 10).unwrap(), vec![]);

    let latest = store.latest_placements(10).unwrap();
    assert_eq!(latest.iter().map(|p| (p.agent.as_str(), p.seq)).collect::<Vec<_>>(), [("echo", s4), ("notes", s2)]);
    assert_eq!(latest[0].hash, h1, "the rollback is the latest");
    assert_eq!(store.latest_placements(1).unwrap().len(), 1, "bounded");

    assert!(store.was_placed("echo", &h2).unwrap());
    assert!(!store.was_placed("notes", &h2).unwrap(), "per agent");
    assert!(!store.was_placed("echo", &content_hash(b"never")).unwrap());

    assert_eq!(store.component_bytes(&h2).unwrap().as_deref(), Some(&v2[..]));
    assert_eq!(store.component_bytes(&content_hash(b"never")).unwrap(), None);
}

fn components_refuse_a_wrong_hash_a_bad_name_and_too_many_bytes(store: &dyn Backend) {
    let (bytes, hash) = blob("echo");
    let (_, other) = blob("something else");
    let wrong = store.publish_component("echo", &other, "echo.wasm", &bytes, "h", 1).unwrap_err();
    assert!(wrong.to_string().contains("hash to"), "{wrong}");
    let upper = store.publish_component("echo", &hash.to_uppercase(), "echo.wasm", &bytes, "h", 1);
    assert!(upper.is_err(), "the hash is lowercase hex");
    for name in ["../echo.wasm", ".echo.wasm", "echo.so", "dir/echo.wasm"] {
        assert!(store.publish_component("echo", &hash, name, &bytes, "h", 1).is_err(), "{name} is refused");
    }
    assert!(store.publish_component("", &hash, "echo.wasm", &bytes, "h", 1).is_err(), "an agent has a name");
    let huge = vec![0u8; MAX_COMPONENT_BYTES + 1];
    let too_big = store.publish_component("echo", &content_hash(&huge), "echo.wasm", &huge, "h", 1).unwrap_err();
    assert!(too_big.to_string().contains("bytes is more than"), "{too_big}");
    assert_eq!(store.placements_after(0, 10).unwrap(), vec![], "nothing refused was placed");
    assert_eq!(store.component_bytes(&hash).unwrap(), None, "nor stored");
}

fn components_keep_the_bytes_of_each_agents_last_placements(store: &dyn Backend) {
    let keep = KEEP_PLACEMENTS as usize;
    let versions: Vec<(Vec<u8>, String)> = (0..keep + 3).map(|i| blob(&format!("echo {i}"))).collect();
    // Another agent placed version 0 too, and keeps it among its last.
    store.publish_component("echo-twin", &versions[0].1, "echo-twin.wasm", &versions[0].0, "h", 1).unwrap();
    for (i, (bytes, hash)) in versions.iter().enumerate() {
        store.publish_component("echo", hash, "echo.wasm", bytes, "h", 10 + i as i64).unwrap();
    }
    let kept: Vec<bool> = versions.iter().map(|(_, h)| store.component_bytes(h).unwrap().is_some()).collect();
    let mut expected = vec![false; 3];
    expected.extend(vec![true; keep]);
    expected[0] = true; // still among echo-twin's last placements
    assert_eq!(kept, expected, "echo's last {keep} placements keep their bytes");
    // Rolling back to a version whose bytes were deleted needs them again.
    let (bytes, hash) = &versions[1];
    store.publish_component("echo", hash, "echo.wasm", bytes, "h", 100).unwrap();
    assert!(store.component_bytes(hash).unwrap().is_some());
    assert!(store.component_bytes(&versions[3].1).unwrap().is_none(), "the oldest of the last placements is out now");
    assert_eq!(store.placements_after(0, 100).unwrap().len(), 1 + keep + 3 + 1, "placements themselves are all kept");
}

fn components_host_reports_are_one_per_host_and_agent_and_expire(store: &dyn Backend) {
    let report = |host: &str, agent: &str, hash: &str, error: Option<&str>, at: i64| HostReport {
        host: host.into(),
        agent: agent.into(),
        hash: hash.into(),
        error: error.map(str::to_string),
        at,
    };
    store.host_report(&report("b", "echo", "h1", None, 1_000)).unwrap();
    store.host_report(&report("a", "echo", "h1", None, 1_001)).unwrap();
    store.host_report(&report("a", "notes", "n1", None, 1_002)).unwrap();
    store.host_report(&report("b", "echo", "h1", Some("cannot load h2: not a component"), 1_003)).unwrap();
    let reports = store.host_reports(10).unwrap();
    assert_eq!(
        reports,
        vec![
            report("a", "echo", "h1", None, 1_001),
            report("b", "echo", "h1", Some("cannot load h2: not a component"), 1_003),
            report("a", "notes", "n1", None, 1_002),
        ],
        "one per host and agent, by agent then host"
    );
    assert_eq!(store.host_reports(2).unwrap().len(), 2, "bounded");
    // A long error is clipped.
    store.host_report(&report("a", "echo", "h1", Some(&"e".repeat(5_000)), 1_004)).unwrap();
    let clipped = store.host_reports(10).unwrap().into_iter().find(|r| r.host == "a" && r.agent == "echo").unwrap();
    assert!(clipped.error.unwrap().chars().count() <= crate::components::MAX_ERROR_CHARS + 1);
    // Reports not renewed within the retention are dropped.
    store.host_report(&report("c", "echo", "h1", None, 1_003 + REPORT_RETENTION_SECS)).unwrap();
    let left: Vec<(String, String)> = store.host_reports(10).unwrap().into_iter().map(|r| (r.host, r.agent)).collect();
    assert_eq!(left, [("a".to_string(), "echo".to_string()), ("b".into(), "echo".into()), ("c".into(), "echo".into())]);
}

fn components_host_reports_keep_an_error_with_nul(store: &dyn Backend) {
    // A load error may quote what an untrusted component holds.
    let sent = HostReport {
        host: "host-a:8080".into(),
        agent: "echo".into(),
        hash: "h1".into(),
        error: Some("cannot load version h1: manifest name `ec\0ho` is not an agent name".into()),
        at: 1_000,
    };
    store.host_report(&sent).unwrap();
    let got = store.host_reports(10).unwrap();
    assert_eq!(got.len(), 1, "the report was written");
    assert!(same_text(got[0].error.as_deref().unwrap_or_default(), sent.error.as_deref().unwrap()), "{:?}", got[0].error);
    assert_eq!(HostReport { error: sent.error.clone(), ..got[0].clone() }, sent, "every other field as written");
}
