//! `AwsStore`: the EC2 audit log, genomes per owner, proposals.
use crate::Backend;
use crate::aws::{AuditRecord, StoredProposal};

pub(super) const TESTS: &[super::Test] = &[
    ("aws_audit_lists_newest_first_per_agent_with_a_limit", aws_audit_lists_newest_first_per_agent_with_a_limit),
    ("aws_audit_keeps_every_field", aws_audit_keeps_every_field),
    ("aws_genomes_are_kept_per_owner", aws_genomes_are_kept_per_owner),
    ("aws_proposals_round_trip_and_list_by_status", aws_proposals_round_trip_and_list_by_status),
    ("aws_proposal_transition_is_claimed_once", aws_proposal_transition_is_claimed_once),
    ("aws_audit_keeps_guest_text_with_nul", aws_audit_keeps_guest_text_with_nul),
    ("aws_proposals_keep_text_with_nul", aws_proposals_keep_text_with_nul),
];

/// Whether `got` is `sent` as a backend keeps text a guest or client set:
/// byte for byte (SQLite), or with each NUL replaced with U+FFFD
/// (PostgreSQL, whose TEXT refuses NUL).
pub(super) fn same_text(got: &str, sent: &str) -> bool {
    got == sent || got == sent.replace('\0', "\u{FFFD}")
}

fn record(agent: &str, outcome: &str, at: i64) -> AuditRecord {
    AuditRecord {
        id: 0,
        at,
        agent: agent.into(),
        action: "run-instances".into(),
        region: "us-east-1".into(),
        params: serde_json::json!({"count": 1}),
        outcome: outcome.into(),
        rule: (outcome == "denied").then(|| "instance-type".into()),
        detail: String::new(),
    }
}

fn aws_audit_lists_newest_first_per_agent_with_a_limit(store: &dyn Backend) {
    assert!(store.audit_list(None, 10).unwrap().is_empty());
    store.audit_append(&record("a", "ok", 1)).unwrap();
    store.audit_append(&record("b", "denied", 2)).unwrap();
    store.audit_append(&record("a", "denied", 3)).unwrap();
    store.audit_append(&record("a", "error", 4)).unwrap();
    let all = store.audit_list(None, 10).unwrap();
    assert_eq!(all.iter().map(|r| r.at).collect::<Vec<_>>(), [4, 3, 2, 1], "newest first");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "ids grow with each append");
    let a = store.audit_list(Some("a"), 2).unwrap();
    assert_eq!(a.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["error", "denied"], "the newest two of a");
    assert_eq!(store.audit_list(Some("b"), 10).unwrap().len(), 1);
    assert!(store.audit_list(Some("nobody"), 10).unwrap().is_empty());
    assert_eq!(store.audit_list(None, 0).unwrap().len(), 0, "limit 0 lists nothing");
}

fn aws_audit_keeps_every_field(store: &dyn Backend) {
    let written = AuditRecord {
        params: serde_json::json!({"z": [1, 2], "a": {"nested": "é"}, "count": 3}),
        detail: "i-0123 i-0456".into(),
        ..record("architect", "denied", 42)
    };
    store.audit_append(&written).unwrap();
    let read = store.audit_list(Some("architect"), 1).unwrap().remove(0);
    assert!(read.id > 0, "the stored row has an id");
    assert_eq!(AuditRecord { id: 0, ..read.clone() }, written);
    assert_eq!(read.rule.as_deref(), Some("instance-type"));
    store.audit_append(&record("architect", "ok", 43)).unwrap();
    assert_eq!(store.audit_list(Some("architect"), 1).unwrap()[0].rule, None, "no rule stays none");
}

fn aws_genomes_are_kept_per_owner(store: &dyn Backend) {
    assert_eq!(store.genome_current("architect").unwrap(), None);
    assert!(store.genome_current_all().unwrap().is_empty());
    let v1 = store.genome_record("architect", "id = \"one\"", "admin").unwrap();
    let v2 = store.genome_record("architect", "id = \"two\"", "admin").unwrap();
    assert!(v2 > v1, "versions grow");
    let other = store.genome_record("builder", "id = \"b\"", "builder").unwrap();
    let current = store.genome_current("architect").unwrap().unwrap();
    assert_eq!((current.version, current.toml.as_str()), (v2, "id = \"two\""), "another owner's genome does not replace it");
    assert_eq!((current.owner.as_str(), current.applied_by.as_str()), ("architect", "admin"));
    assert!(current.at > 0, "stamped when recorded");
    let builder = store.genome_current("builder").unwrap().unwrap();
    assert_eq!((builder.version, builder.applied_by.as_str()), (other, "builder"));
    assert_eq!(store.genome_current("nobody").unwrap(), None);
    let all: Vec<_> = store.genome_current_all().unwrap().into_iter().map(|g| (g.owner, g.version)).collect();
    assert_eq!(all, [("builder".to_string(), other), ("architect".to_string(), v2)], "each owner's newest, newest first");
    let v3 = store.genome_record("architect", "id = \"three\"", "architect").unwrap();
    let all: Vec<_> = store.genome_current_all().unwrap().into_iter().map(|g| (g.owner, g.version)).collect();
    assert_eq!(all, [("architect".to_string(), v3), ("builder".to_string(), other)]);
}

fn aws_proposals_round_trip_and_list_by_status(store: &dyn Backend) {
    assert_eq!(store.proposal_get(1).unwrap(), None);
    let p1 = store.proposal_add("architect", "more web", "id = \"one\"").unwrap();
    let p2 = store.proposal_add("builder", "cheaper", "id = \"two\"").unwrap();
    let p3 = store.proposal_add("architect", "bigger", "id = \"three\"").unwrap();
    let got = store.proposal_get(p1).unwrap().unwrap();
    assert_eq!((got.id, got.agent.as_str(), got.reason.as_str(), got.toml.as_str()), (p1, "architect", "more web", "id = \"one\""));
    assert_eq!((got.status.as_str(), got.message.as_str()), ("pending", ""), "a new proposal is pending");
    assert!(got.at > 0);
    let ids = |status: Option<&str>, limit| store.proposal_list(status, limit).unwrap().into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(None, 10), [p3, p2, p1], "newest first");
    assert_eq!(ids(Some("pending"), 2), [p3, p2], "with a limit");
    store.proposal_set_status(p2, "rejected", "too small").unwrap();
    assert_eq!(ids(Some("pending"), 10), [p3, p1]);
    assert_eq!(ids(Some("rejected"), 10), [p2]);
    let rejected = store.proposal_get(p2).unwrap().unwrap();
    assert_eq!((rejected.status.as_str(), rejected.message.as_str()), ("rejected", "too small"));
    assert!(ids(Some("applied"), 10).is_empty());
}

fn aws_proposal_transition_is_claimed_once(store: &dyn Backend) {
    let p = store.proposal_add("architect", "more web", "id = \"three\"").unwrap();
    assert!(store.proposal_transition(p, "pending", "applying", "claimed").unwrap(), "the first claim wins");
    assert!(!store.proposal_transition(p, "pending", "applying", "again").unwrap(), "a second claim loses");
    let claimed = store.proposal_get(p).unwrap().unwrap();
    assert_eq!((claimed.status.as_str(), claimed.message.as_str()), ("applying", "claimed"), "the loser changed nothing");
    assert!(!store.proposal_transition(p, "rejected", "applied", "").unwrap(), "not from a status it is not in");
    assert!(!store.proposal_transition(p + 1_000, "pending", "applying", "").unwrap(), "no such proposal");
    assert!(store.proposal_transition(p, "applying", "applied", "launched 1").unwrap());
    assert!(store.proposal_list(Some("pending"), 10).unwrap().is_empty());
    assert_eq!(store.proposal_get(p).unwrap().unwrap().message, "launched 1");
}

fn aws_audit_keeps_guest_text_with_nul(store: &dyn Backend) {
    // Region and detail are the guest's (a detail quotes ids it sent);
    // params is JSON, which escapes NUL, so it comes back exactly.
    let written = AuditRecord {
        region: "us-east-1\0".into(),
        params: serde_json::json!({"instance_ids": ["i-\0"], "tags": {"k\0": "v\0"}}),
        detail: "instance i-\0 does not exist in us-east-1\0".into(),
        ..record("architect", "denied", 42)
    };
    store.audit_append(&written).unwrap();
    let read = store.audit_list(Some("architect"), 10).unwrap();
    assert_eq!(read.len(), 1, "the row was written");
    let read = read[0].clone();
    assert!(same_text(&read.region, &written.region), "{:?}", read.region);
    assert!(same_text(&read.detail, &written.detail), "{:?}", read.detail);
    let rest = AuditRecord { id: 0, region: written.region.clone(), detail: written.detail.clone(), ..read };
    assert_eq!(rest, written, "every other field as written");
    assert!(store.audit_list(Some("architect\0"), 10).unwrap().is_empty(), "a client's filter with NUL finds nothing");
}

fn aws_proposals_keep_text_with_nul(store: &dyn Backend) {
    let (reason, toml) = ("more web\0please", "id = \"one\"");
    let id = store.proposal_add("architect", reason, toml).unwrap();
    // Everything but the reason and the message is the host's.
    let expect = |got: &StoredProposal, status: &str, message: &str| {
        assert!(same_text(&got.reason, reason), "{:?}", got.reason);
        assert!(same_text(&got.message, message), "{:?}", got.message);
        assert_eq!((got.id, got.agent.as_str(), got.toml.as_str(), got.status.as_str()), (id, "architect", toml, status));
        assert!(got.at > 0);
    };
    expect(&store.proposal_get(id).unwrap().unwrap(), "pending", "");
    let claimed = "being applied (approved by admin:o\0ps)";
    assert!(store.proposal_transition(id, "pending", "applying", claimed).unwrap());
    expect(&store.proposal_get(id).unwrap().unwrap(), "applying", claimed);
    let failed = "approval by admin:o\0ps failed: instance type `t3.\0` is not allowed";
    store.proposal_set_status(id, "failed", failed).unwrap();
    expect(&store.proposal_get(id).unwrap().unwrap(), "failed", failed);
    let listed = store.proposal_list(Some("failed"), 10).unwrap();
    assert_eq!(listed.len(), 1);
    expect(&listed[0], "failed", failed);
    assert!(store.proposal_list(Some("failed\0"), 10).unwrap().is_empty(), "a client's filter with NUL finds nothing");
}
