use crate::Backend;
use crate::jobs::{JobState, MAX_JOB_ATTEMPTS, MAX_JOB_PAYLOAD_BYTES, MAX_OPEN_JOBS};

pub(super) const TESTS: &[super::Test] = &[
    ("jobs_are_claimed_once_in_order", jobs_are_claimed_once_in_order),
    ("a_job_result_is_written_only_by_its_claim", a_job_result_is_written_only_by_its_claim),
    ("a_job_whose_host_died_is_retried_then_failed", a_job_whose_host_died_is_retried_then_failed),
    ("job_bounds_hold", job_bounds_hold),
];

fn jobs_are_claimed_once_in_order(store: &dyn Backend) {
    let a = store.job_enqueue("run-a", r#"{"n":1,"nul":"\u0000"}"#, 1_000).unwrap();
    let b = store.job_enqueue("run-b", r#"{"n":2}"#, 1_000).unwrap();
    let c = store.job_enqueue("run-a", r#"{"n":3}"#, 1_000).unwrap();
    assert!(a < b && b < c);
    assert_eq!(store.job_state(a).unwrap(), Some(JobState::Queued));
    // Only run-a's jobs when asked for them; oldest first.
    let first = store.job_claim("owner", Some("run-a"), 60, 1_001).unwrap().unwrap();
    assert_eq!((first.id, first.run.as_str(), first.payload.as_str(), first.attempt), (a, "run-a", r#"{"n":1,"nul":"\u0000"}"#, 1));
    let second = store.job_claim("worker", None, 60, 1_001).unwrap().unwrap();
    assert_eq!(second.id, b, "the oldest free job of any run");
    let third = store.job_claim("worker", None, 60, 1_001).unwrap().unwrap();
    assert_eq!(third.id, c);
    assert_eq!(store.job_claim("worker", None, 60, 1_001).unwrap(), None, "each job is claimed once");
    assert_eq!(store.job_state(b).unwrap(), Some(JobState::Running { host: "worker".into(), lease_until: 1_061 }));
    assert_eq!(store.job_delete_run("run-a").unwrap(), 2);
    assert_eq!(store.job_state(a).unwrap(), None);
    assert!(store.job_state(b).unwrap().is_some(), "another run's job stays");
}

fn a_job_result_is_written_only_by_its_claim(store: &dyn Backend) {
    let id = store.job_enqueue("run", "{}", 1_000).unwrap();
    let claim = store.job_claim("host-1", None, 30, 1_000).unwrap().unwrap();
    assert!(store.job_renew(&claim, "host-1", 30, 1_020).unwrap(), "the holder renews");
    assert!(!store.job_renew(&claim, "host-2", 30, 1_020).unwrap(), "another host does not");
    assert_eq!(store.job_claim("host-2", None, 30, 1_049).unwrap(), None, "renewed until 1050");
    // Its lease runs out: claimed again elsewhere, and the first claim is void.
    let again = store.job_claim("host-2", None, 30, 1_050).unwrap().unwrap();
    assert_eq!((again.id, again.attempt), (id, 2));
    assert!(!store.job_renew(&claim, "host-1", 30, 1_051).unwrap());
    assert!(!store.job_finish(&claim, "host-1", "late", Some(b"stale")).unwrap(), "a void claim writes nothing");
    let component = vec![0u8, 1, 2, 255];
    assert!(store.job_finish(&again, "host-2", r#"{"ok":true}"#, Some(&component)).unwrap());
    assert_eq!(
        store.job_state(id).unwrap(),
        Some(JobState::Done { host: "host-2".into(), result: r#"{"ok":true}"#.into(), component: Some(component) })
    );
    assert!(!store.job_finish(&again, "host-2", "twice", None).unwrap(), "finished once");
    assert_eq!(store.job_claim("host-3", None, 30, 5_000).unwrap(), None, "a finished job is never claimed");
}

fn a_job_whose_host_died_is_retried_then_failed(store: &dyn Backend) {
    let id = store.job_enqueue("run", "{}", 1_000).unwrap();
    let mut now = 1_000;
    for attempt in 1..=MAX_JOB_ATTEMPTS {
        let claim = store.job_claim(&format!("host-{attempt}"), None, 10, now).unwrap().unwrap();
        assert_eq!((claim.id, claim.attempt), (id, attempt));
        now += 10; // the host dies: its lease runs out
    }
    assert_eq!(store.job_claim("host-x", None, 10, now).unwrap(), None, "no attempt is left");
    match store.job_state(id).unwrap() {
        Some(JobState::Failed { error }) => assert!(error.contains("never finished"), "{error}"),
        other => panic!("expected failed, got {other:?}"),
    }
}

fn job_bounds_hold(store: &dyn Backend) {
    let big = "x".repeat(MAX_JOB_PAYLOAD_BYTES + 1);
    assert!(store.job_enqueue("run", &big, 1_000).is_err(), "an oversized payload is refused");
    assert!(store.job_enqueue("", "{}", 1_000).is_err(), "a job belongs to a run");
    for _ in 0..MAX_OPEN_JOBS {
        store.job_enqueue("run", "{}", 1_000).unwrap();
    }
    let refused = store.job_enqueue("run", "{}", 1_000).unwrap_err().to_string();
    assert!(refused.contains("open"), "{refused}");
    // Past retention the old rows go, and the queue takes jobs again.
    let id = store.job_enqueue("run", "{}", 1_000 + crate::jobs::JOB_RETENTION_SECS + 1).unwrap();
    let claim = store.job_claim("h", None, 60, 100_000).unwrap().unwrap();
    assert_eq!(claim.id, id, "only the new job is left");
    let result = "r".repeat(crate::jobs::MAX_JOB_RESULT_BYTES + 1);
    assert!(store.job_finish(&claim, "h", &result, None).is_err(), "an oversized result is refused");
    assert!(store.job_finish(&claim, "h", "{}", None).unwrap(), "and nothing was written by it");
}
