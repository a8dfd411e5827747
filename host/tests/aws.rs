//! The `aws-ec2` capability and the infrastructure genome against a real
//! EC2 API on loopback: `moto_server` (one per test), through the real
//! aws-sdk-ec2 client with fake credentials.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use agentkernel::aws::policy::{AwsEc2Scope, Rule};
use agentkernel::aws::{AwsConfig, Ec2Failure, Ec2Service, Principal};
use agentkernel::bindings::agentkernel::agent::aws_ec2::{RunSpec, Tag};
use agentkernel::storage::aws::AwsStore;
use agentkernel::storage::sqlite::SqliteStorage;
use sandbox_tests::moto::{MOTO_AMI, MOTO_AMI_2, Moto, Throttler, fake_aws_env};
use sandbox_tests::{TestHost, request};
use serde_json::{Value, json};

const PRICES: &str = "[aws.prices]\n\"t3.micro\" = 0.0104\n\"t3.small\" = 0.0208\n\"m5.large\" = 0.096\n";

fn aws_config(endpoint: &str) -> AwsConfig {
    let text = format!("[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n{PRICES}");
    agentkernel::config::HostConfig::parse(&text).unwrap().aws
}

fn service(endpoint: &str) -> (Arc<Ec2Service>, Arc<SqliteStorage>) {
    let store = Arc::new(SqliteStorage::in_memory().unwrap());
    (Arc::new(Ec2Service::new(aws_config(endpoint), store.clone())), store)
}

/// A scope that allows launching up to 3 small instances, for real.
fn launcher() -> AwsEc2Scope {
    AwsEc2Scope {
        actions: vec!["*".into()],
        instance_types: vec!["t3.micro".into(), "t3.small".into()],
        amis: vec![MOTO_AMI.into()],
        max_running_instances: 3,
        max_hourly_usd: 0.05,
        dry_run: false,
        ..AwsEc2Scope::default()
    }
}

fn who<'a>(agent: &'a str, scope: &'a AwsEc2Scope) -> Principal<'a> {
    Principal { agent, scope, deadline: None }
}

fn spec(instance_type: &str, count: u32) -> RunSpec {
    RunSpec {
        image_id: MOTO_AMI.into(),
        instance_type: instance_type.into(),
        count,
        subnet_id: None,
        security_group_ids: vec![],
        tags: vec![Tag { key: "role".into(), value: "web".into() }],
    }
}

/// Every instance EC2 has, as (id → (state, tags)), read with an unscoped client.
async fn ec2_instances(svc: &Ec2Service) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let client = svc.admin_client(None).await;
    let out = client.describe_instances().send().await.expect("admin describe");
    let mut all = BTreeMap::new();
    for r in out.reservations() {
        for i in r.instances() {
            let tags = i.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
            let state = i.state().unwrap().name().unwrap().as_str().to_string();
            all.insert(i.instance_id().unwrap().to_string(), (state, tags));
        }
    }
    all
}

fn live(all: &BTreeMap<String, (String, BTreeMap<String, String>)>) -> Vec<String> {
    all.iter().filter(|(_, (s, _))| s == "pending" || s == "running").map(|(id, _)| id.clone()).collect()
}

/// Launches an instance with no agentkernel tags, as someone outside the host would.
async fn launch_untagged(svc: &Ec2Service) -> String {
    let client = svc.admin_client(None).await;
    let out = client
        .run_instances()
        .image_id(MOTO_AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

fn rule_of(e: &Ec2Failure) -> Option<Rule> {
    match e {
        Ec2Failure::Denied(d) => Some(d.rule),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_within_policy_is_tagged_costed_and_audited() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let scope = launcher();
    let r = svc.run_instances(who("builder", &scope), None, spec("t3.micro", 2)).await.expect("launch within policy");
    assert!(!r.dry_run);
    assert_eq!(r.instance_ids.len(), 2);
    assert!((r.hourly_cost_after.unwrap() - 0.0208).abs() < 1e-9, "{r:?}");

    let all = ec2_instances(&svc).await;
    for id in &r.instance_ids {
        let (state, tags) = &all[id];
        assert!(state == "pending" || state == "running", "{state}");
        assert_eq!(tags.get("agentkernel:owner").map(String::as_str), Some("builder"));
        assert_eq!(tags.get("role").map(String::as_str), Some("web"), "the agent's own tags are kept");
    }
    let seen = svc.describe_instances(who("builder", &scope), None, vec![]).await.unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|i| i.instance_type == "t3.micro" && i.region == "us-east-1"));

    let audit = store.audit_list(Some("builder"), 10).unwrap();
    let launch = audit.iter().find(|a| a.action == "run-instances").expect("launch audited");
    assert_eq!((launch.outcome.as_str(), launch.rule.as_deref()), ("ok", None));
    assert_eq!(launch.params["instance_type"], "t3.micro");
    assert_eq!(launch.params["count"], 2);
    for id in &r.instance_ids {
        assert!(launch.detail.contains(id.as_str()), "{}", launch.detail);
    }
    assert!(audit.iter().any(|a| a.action == "describe-instances" && a.outcome == "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_policy_rule_refuses_with_its_name_and_launches_nothing() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let base = launcher();
    let read_only = AwsEc2Scope { dry_run: false, ..AwsEc2Scope::default() };
    let cases: Vec<(&str, AwsEc2Scope, Option<&str>, RunSpec, Rule)> = vec![
        ("action", read_only, None, spec("t3.micro", 1), Rule::Action),
        ("region", base.clone(), Some("eu-west-1"), spec("t3.micro", 1), Rule::Region),
        ("type", base.clone(), None, spec("m5.large", 1), Rule::InstanceType),
        ("ami", base.clone(), None, RunSpec { image_id: MOTO_AMI_2.into(), ..spec("t3.micro", 1) }, Rule::Image),
        ("count", base.clone(), None, spec("t3.micro", 4), Rule::MaxRunningInstances),
        ("cost", AwsEc2Scope { max_hourly_usd: 0.03, ..base.clone() }, None, spec("t3.small", 2), Rule::MaxHourlyCost),
        (
            "unpriced",
            AwsEc2Scope { instance_types: vec!["t3.*".into()], ..base.clone() },
            None,
            spec("t3.nano", 1),
            Rule::MaxHourlyCost,
        ),
        (
            "reserved tag",
            base.clone(),
            None,
            RunSpec { tags: vec![Tag { key: "agentkernel:owner".into(), value: "someone-else".into() }], ..spec("t3.micro", 1) },
            Rule::ReservedTag,
        ),
        ("size", AwsEc2Scope { max_running_instances: 1000, max_hourly_usd: 100.0, ..base.clone() }, None, spec("t3.micro", 101), Rule::RequestSize),
    ];
    for (name, scope, region, run, expected) in cases {
        let e = svc.run_instances(who(name, &scope), region.map(String::from), run).await.unwrap_err();
        assert_eq!(rule_of(&e), Some(expected), "{name}: {e}");
        let rows = store.audit_list(Some(name), 10).unwrap();
        assert_eq!(rows.len(), 1, "{name}: one audit row");
        assert_eq!((rows[0].outcome.as_str(), rows[0].rule.as_deref()), ("denied", Some(expected.name())), "{name}");
        assert!(!rows[0].detail.is_empty(), "{name}: the audit says why");
    }
    // The count rule counts what is already running: 2 now + 2 more > 3.
    svc.run_instances(who("count2", &base), None, spec("t3.micro", 2)).await.unwrap();
    let e = svc.run_instances(who("count2", &base), None, spec("t3.micro", 2)).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::MaxRunningInstances), "{e}");
    assert!(e.to_string().contains("max_running_instances = 3"), "{e}");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2, "only the one allowed launch happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_cannot_touch_instances_they_do_not_own() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let scope = launcher();
    let mine = svc.run_instances(who("alice", &scope), None, spec("t3.micro", 1)).await.unwrap().instance_ids;
    let untagged = launch_untagged(&svc).await;

    for (victim, what) in [(mine[0].clone(), "another agent's"), (untagged.clone(), "an untagged")] {
        let e = svc.terminate_instances(who("mallory", &scope), None, vec![victim.clone()]).await.unwrap_err();
        assert!(matches!(e, Ec2Failure::NotOwned(_)), "terminate {what}: {e}");
        let e = svc.stop_instances(who("mallory", &scope), None, vec![victim.clone()]).await.unwrap_err();
        assert!(matches!(e, Ec2Failure::NotOwned(_)), "stop {what}: {e}");
        let steal = vec![Tag { key: "team".into(), value: "mallory".into() }];
        let e = svc.create_tags(who("mallory", &scope), None, vec![victim.clone()], steal).await.unwrap_err();
        assert!(matches!(e, Ec2Failure::NotOwned(_)), "tag {what}: {e}");
    }
    // Taking ownership by tag is refused even on one's own instance.
    let take = vec![Tag { key: "agentkernel:owner".into(), value: "mallory".into() }];
    let e = svc.create_tags(who("alice", &scope), None, mine.clone(), take).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::ReservedTag), "{e}");
    // A mix of owned and unowned ids changes nothing.
    let e = svc.terminate_instances(who("alice", &scope), None, vec![mine[0].clone(), untagged.clone()]).await.unwrap_err();
    assert!(matches!(e, Ec2Failure::NotOwned(ref m) if m.contains(&untagged)), "{e}");

    let all = ec2_instances(&svc).await;
    assert_eq!(live(&all).len(), 2, "both instances still run");
    assert_eq!(all[&mine[0]].1.get("agentkernel:owner").map(String::as_str), Some("alice"));
    assert!(svc.describe_instances(who("mallory", &scope), None, vec![]).await.unwrap().is_empty(), "others' instances are invisible");

    // The owner can.
    svc.terminate_instances(who("alice", &scope), None, mine.clone()).await.unwrap();
    assert!(!live(&ec2_instances(&svc).await).contains(&mine[0]));
    let denied = store.audit_list(Some("mallory"), 20).unwrap();
    assert!(denied.iter().filter(|r| r.rule.as_deref() == Some("not-owned")).count() >= 6, "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_stop_start_and_retag_their_instances_within_limits() {
    let moto = Moto::start();
    let (svc, _) = service(&moto.endpoint());
    let scope = AwsEc2Scope { max_running_instances: 1, ..launcher() };
    let ops = || who("ops", &scope);
    let ids = svc.run_instances(ops(), None, spec("t3.micro", 1)).await.unwrap().instance_ids;
    svc.stop_instances(ops(), None, ids.clone()).await.unwrap();
    let state = ec2_instances(&svc).await[&ids[0]].0.clone();
    assert!(state == "stopped" || state == "stopping", "{state}");
    // A stopped instance does not count as running, so another fits...
    let other = svc.run_instances(ops(), None, spec("t3.micro", 1)).await.unwrap().instance_ids;
    // ...and starting the stopped one would make two.
    let e = svc.start_instances(ops(), None, ids.clone()).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::MaxRunningInstances), "{e}");
    svc.terminate_instances(ops(), None, other).await.unwrap();
    let r = svc.start_instances(ops(), None, ids.clone()).await.unwrap();
    assert!((r.hourly_cost_after.unwrap() - 0.0104).abs() < 1e-9, "{r:?}");
    assert!(live(&ec2_instances(&svc).await).contains(&ids[0]));

    let env = |v: &str| vec![Tag { key: "env".into(), value: v.into() }];
    svc.create_tags(ops(), None, ids.clone(), env("prod")).await.unwrap();
    assert_eq!(ec2_instances(&svc).await[&ids[0]].1.get("env").map(String::as_str), Some("prod"));
    svc.delete_tags(ops(), None, ids.clone(), env("")).await.unwrap();
    assert_eq!(ec2_instances(&svc).await[&ids[0]].1.get("env"), None);
    let owner_tag = vec![Tag { key: "agentkernel:owner".into(), value: String::new() }];
    let e = svc.delete_tags(ops(), None, ids.clone(), owner_tag).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::ReservedTag), "{e}");
    assert_eq!(ec2_instances(&svc).await[&ids[0]].1["agentkernel:owner"], "ops", "ownership cannot be given away");

    // The policy narrowed while the instance was stopped: starting it is
    // refused like launching its type or AMI would be.
    svc.stop_instances(ops(), None, ids.clone()).await.unwrap();
    let small_only = AwsEc2Scope { instance_types: vec!["t3.small".into()], ..scope.clone() };
    let e = svc.start_instances(who("ops", &small_only), None, ids.clone()).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::InstanceType), "{e}");
    let other_ami = AwsEc2Scope { amis: vec!["ami-0123456789abcdef0".into()], ..scope.clone() };
    let e = svc.start_instances(who("ops", &other_ami), None, ids.clone()).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::Image), "{e}");
    assert!(!live(&ec2_instances(&svc).await).contains(&ids[0]), "still stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_answers_and_changes_nothing() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let real = launcher();
    let dry = AwsEc2Scope { dry_run: true, ..launcher() };
    let r = svc.run_instances(who("planner", &dry), None, spec("t3.micro", 2)).await.expect("dry run within policy");
    assert!(r.dry_run && r.instance_ids.is_empty(), "{r:?}");
    assert!(r.summary.contains("would launch 2"), "{}", r.summary);
    assert!(ec2_instances(&svc).await.is_empty(), "nothing launched");
    // Policy still applies in dry-run mode.
    let e = svc.run_instances(who("planner", &dry), None, spec("m5.large", 1)).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::InstanceType));
    // Dry-run terminate of an owned instance leaves it running.
    let ids = svc.run_instances(who("planner", &real), None, spec("t3.micro", 1)).await.unwrap().instance_ids;
    let r = svc.terminate_instances(who("planner", &dry), None, ids.clone()).await.unwrap();
    assert!(r.dry_run && r.summary.contains("would terminate"), "{r:?}");
    assert_eq!(live(&ec2_instances(&svc).await), ids);
    // Stop, tag and untag in dry-run mode: still running, tags as they were.
    let r = svc.stop_instances(who("planner", &dry), None, ids.clone()).await.unwrap();
    assert!(r.dry_run && r.summary.contains("would stop"), "{r:?}");
    svc.create_tags(who("planner", &dry), None, ids.clone(), vec![Tag { key: "env".into(), value: "prod".into() }]).await.unwrap();
    svc.delete_tags(who("planner", &dry), None, ids.clone(), vec![Tag { key: "role".into(), value: String::new() }]).await.unwrap();
    let all = ec2_instances(&svc).await;
    assert_eq!(live(&all), ids, "a dry-run stop leaves it running");
    assert_eq!(all[&ids[0]].1.get("env"), None, "a dry-run create-tags sets nothing");
    assert_eq!(all[&ids[0]].1.get("role").map(String::as_str), Some("web"), "a dry-run delete-tags deletes nothing");
    // Start in dry-run mode: a stopped instance stays stopped.
    svc.stop_instances(who("planner", &real), None, ids.clone()).await.unwrap();
    let r = svc.start_instances(who("planner", &dry), None, ids.clone()).await.unwrap();
    assert!(r.dry_run && r.summary.contains("would start"), "{r:?}");
    assert!(live(&ec2_instances(&svc).await).is_empty(), "a dry-run start starts nothing");
    let rows = store.audit_list(Some("planner"), 50).unwrap();
    for action in ["run-instances", "terminate-instances", "stop-instances", "start-instances", "create-tags", "delete-tags"] {
        assert!(rows.iter().any(|r| r.action == action && r.outcome == "dry-run"), "{action}: {rows:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_ignores_dry_run_is_an_error_never_a_dry_run() {
    let moto = Moto::start();
    let careless = Throttler::forward_ignoring_dry_run(moto.addr).await;
    let (svc, store) = service(&careless.endpoint());
    let (real_svc, _) = service(&moto.endpoint());
    let dry = AwsEc2Scope { dry_run: true, ..launcher() };
    let e = svc.run_instances(who("planner", &dry), None, spec("t3.micro", 1)).await.unwrap_err();
    let launched = live(&ec2_instances(&real_svc).await);
    assert_eq!(launched.len(), 1, "the endpoint launched for real");
    let msg = e.to_string();
    assert!(msg.contains("dry run") && msg.contains("REAL") && msg.contains(&launched[0]), "the error says so and names the id: {msg}");
    let rows = store.audit_list(Some("planner"), 10).unwrap();
    let row = rows.iter().find(|r| r.action == "run-instances").unwrap();
    assert_eq!(row.outcome, "error", "never recorded as a dry run: {row:?}");
    assert!(row.detail.contains(&launched[0]), "{}", row.detail);

    for (name, result) in [
        ("stop", svc.stop_instances(who("planner", &dry), None, launched.clone()).await.map(|_| ())),
        ("tag", svc.create_tags(who("planner", &dry), None, launched.clone(), vec![Tag { key: "env".into(), value: "x".into() }]).await),
        ("terminate", svc.terminate_instances(who("planner", &dry), None, launched.clone()).await.map(|_| ())),
    ] {
        let e = result.expect_err(name);
        assert!(matches!(e, Ec2Failure::Aws(ref m) if m.contains("REAL")), "{name}: {e}");
    }
    assert!(store.audit_list(Some("planner"), 20).unwrap().iter().all(|r| r.outcome != "dry-run"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_become_typed_errors_and_the_host_keeps_serving() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let scope = AwsEc2Scope { amis: vec!["ami-*".into()], ..launcher() };
    let e = svc
        .run_instances(who("a", &scope), None, RunSpec { image_id: "ami-00000000".into(), ..spec("t3.micro", 1) })
        .await
        .unwrap_err();
    assert!(matches!(e, Ec2Failure::InvalidParameter(ref m) if m.contains("InvalidAMIID")), "{e}");
    let rows = store.audit_list(Some("a"), 1).unwrap();
    assert_eq!(rows[0].outcome, "error");

    // Throttling: every request answered 503 RequestLimitExceeded; the SDK retries, then a typed error.
    let throttler = Throttler::start().await;
    let (throttled, _) = service(&throttler.endpoint());
    let e = throttled.describe_subnets(who("a", &scope), None, vec![]).await.unwrap_err();
    assert!(matches!(e, Ec2Failure::Throttled(ref m) if m.contains("RequestLimitExceeded")), "{e}");
    assert_eq!(throttler.requests.load(std::sync::atomic::Ordering::SeqCst), 3, "max_attempts = 3 (default)");
    let e = throttled.run_instances(who("a", &scope), None, spec("t3.micro", 1)).await.unwrap_err();
    assert!(matches!(e, Ec2Failure::Throttled(_)), "{e}");

    // Throttled twice, then answered: the SDK's retries make the call succeed.
    let flaky = Throttler::start_then_forward(2, Some(moto.addr)).await;
    let (retried, _) = service(&flaky.endpoint());
    let subnets = retried.describe_subnets(who("a", &scope), None, vec![]).await.expect("succeeds on the third attempt");
    assert!(!subnets.is_empty(), "moto's default VPC has subnets");
    assert_eq!(flaky.requests.load(std::sync::atomic::Ordering::SeqCst), 3);

    // Nothing listening: unavailable.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (gone, _) = service(&format!("http://127.0.0.1:{port}"));
    let e = gone.describe_images(who("a", &scope), None, vec![]).await.unwrap_err();
    assert!(matches!(e, Ec2Failure::Unavailable(_)), "{e}");

    // And the working endpoint still works.
    svc.run_instances(who("a", &scope), None, spec("t3.micro", 1)).await.unwrap();
}

fn agentkernel(dir: &Path, args: &[&str]) -> Output {
    fake_aws_env();
    Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .args(args)
        .current_dir(dir)
        .env("AGENTKERNEL_CONFIG", dir.join("agentkernel.toml"))
        .env("AGENTKERNEL_DATA_DIR", dir.join("data"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "stdout: {out}\nstderr: {}", String::from_utf8_lossy(&o.stderr));
    out
}

const GENOME: &str = r#"
id = "shop"
owner = "architect"
region = "us-east-1"

[[group]]
name = "web"
count = 2
instance_type = "t3.micro"
ami = "ami-03cf127a"
tags = { role = "web" }

[[group]]
name = "worker"
count = 1
instance_type = "t3.small"
ami = "ami-03cf127a"
"#;

fn host_config(endpoint: &str, architect_scope: &str) -> String {
    format!("[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n{PRICES}\n[agents.architect]\naws_ec2 = {architect_scope}\n")
}

const ARCHITECT_SCOPE: &str = r#"{ instance_types = ["t3.micro", "t3.small"], amis = ["ami-03cf127a"], max_running_instances = 5, max_hourly_usd = 0.1 }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genome_plan_apply_reapply_and_cleanup_through_the_cli() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agentkernel.toml"), host_config(&moto.endpoint(), ARCHITECT_SCOPE)).unwrap();
    std::fs::write(dir.path().join("genome.toml"), GENOME).unwrap();
    let (svc, _) = service(&moto.endpoint());

    let plan = ok(&agentkernel(dir.path(), &["genome", "plan", "genome.toml"]));
    assert!(plan.contains("+ launch 2 x t3.micro") && plan.contains("+ launch 1 x t3.small"), "{plan}");
    assert!(plan.contains("$0.0000/h -> $0.0416/h"), "cost before and after: {plan}");

    let unapproved = ok(&agentkernel(dir.path(), &["genome", "apply", "genome.toml"]));
    assert!(unapproved.contains("not applied"), "{unapproved}");
    assert!(ec2_instances(&svc).await.is_empty(), "apply without --approve changes nothing");

    let applied = ok(&agentkernel(dir.path(), &["genome", "apply", "genome.toml", "--approve"]));
    assert!(applied.contains("applied: launched 3"), "{applied}");
    let all = ec2_instances(&svc).await;
    assert_eq!(live(&all).len(), 3);
    let web: Vec<_> = all.values().filter(|(_, t)| t.get("agentkernel:group").map(String::as_str) == Some("web")).collect();
    assert_eq!(web.len(), 2);
    for (_, tags) in &web {
        assert_eq!(tags["agentkernel:owner"], "architect");
        assert_eq!(tags["agentkernel:genome"], "shop");
        assert_eq!(tags["role"], "web");
    }

    let again = ok(&agentkernel(dir.path(), &["genome", "apply", "genome.toml", "--approve"]));
    assert!(again.contains("no changes"), "a second apply changes nothing: {again}");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 3);
    let shown = ok(&agentkernel(dir.path(), &["genome", "show"]));
    assert!(shown.contains("id = \"shop\""), "{shown}");

    // Scale web down to 1 and drop the worker group.
    let smaller = GENOME.replace("count = 2", "count = 1");
    let smaller = &smaller[..smaller.find("[[group]]\nname = \"worker\"").unwrap()];
    std::fs::write(dir.path().join("genome.toml"), smaller).unwrap();
    let plan = ok(&agentkernel(dir.path(), &["genome", "plan", "genome.toml"]));
    assert!(plan.contains("- terminate") && plan.contains("more instances than the genome's count"), "{plan}");
    assert!(!plan.contains("worker"), "plan/apply only reconcile named groups: {plan}");
    ok(&agentkernel(dir.path(), &["genome", "apply", "genome.toml", "--approve"]));
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2, "web 1 + the now-unnamed worker");

    let cleanup = ok(&agentkernel(dir.path(), &["genome", "cleanup"]));
    assert!(cleanup.contains("group `worker` is no longer in genome `shop`") && cleanup.contains("not terminated"), "{cleanup}");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2, "cleanup without --approve changes nothing");
    let cleaned = ok(&agentkernel(dir.path(), &["genome", "cleanup", "--approve"]));
    assert!(cleaned.contains("terminated 1"), "{cleaned}");
    let all = ec2_instances(&svc).await;
    let left = live(&all);
    assert_eq!(left.len(), 1);
    assert_eq!(all[&left[0]].1["agentkernel:group"], "web");
    let nothing = ok(&agentkernel(dir.path(), &["genome", "cleanup", "--approve"]));
    assert!(nothing.contains("no changes"), "{nothing}");

    let audit = ok(&agentkernel(dir.path(), &["audit"]));
    assert!(audit.contains("genome-apply") && audit.contains("genome-cleanup"), "{audit}");
    let rows: Vec<Value> = serde_json::from_str(&ok(&agentkernel(dir.path(), &["audit", "--json", "--limit", "2"]))).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["action"], "genome-cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genome_apply_stays_within_the_owner_policy() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let tight = r#"{ instance_types = ["t3.micro", "t3.small"], amis = ["ami-03cf127a"], max_running_instances = 2, max_hourly_usd = 0.1 }"#;
    std::fs::write(dir.path().join("agentkernel.toml"), host_config(&moto.endpoint(), tight)).unwrap();
    std::fs::write(dir.path().join("genome.toml"), GENOME).unwrap();
    let (svc, _) = service(&moto.endpoint());
    let o = agentkernel(dir.path(), &["genome", "apply", "genome.toml"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("+ launch 2 x t3.micro"), "the plan is shown");
    assert!(String::from_utf8_lossy(&o.stderr).contains("would be refused"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = agentkernel(dir.path(), &["genome", "apply", "genome.toml", "--approve"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("max-running-instances"), "the error names the rule: {err}");
    assert!(ec2_instances(&svc).await.is_empty());
    let audit = ok(&agentkernel(dir.path(), &["audit", "--agent", "admin"]));
    assert!(audit.contains("denied") && audit.contains("max-running-instances"), "{audit}");

    // An owner without a grant cannot be the owner of a genome.
    std::fs::write(dir.path().join("genome.toml"), GENOME.replace("owner = \"architect\"", "owner = \"nobody\"")).unwrap();
    let o = agentkernel(dir.path(), &["genome", "apply", "genome.toml", "--approve"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no aws_ec2 grant"), "{}", String::from_utf8_lossy(&o.stderr));
    // A malformed genome is a clear error.
    std::fs::write(dir.path().join("genome.toml"), "id = \"x\"\n[[group]]\nname = 3\n").unwrap();
    let o = agentkernel(dir.path(), &["genome", "plan", "genome.toml"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("genome.toml"));
}

// ---- through a guest: the capability boundary end to end ----

async fn probe(h: &TestHost, ctx: Value) -> Value {
    let agent = h.load("ec2-probe").await.expect("ec2-probe loads");
    let mut req = request("s", "probe");
    req.context = Some(ctx.to_string());
    let out = agent.call(&req).await.expect("the call itself succeeds");
    serde_json::from_str(out.response.data.as_deref().unwrap()).unwrap()
}

fn probe_config(endpoint: &str, scope: &str) -> String {
    format!(
        "[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n{PRICES}\n[agents.ec2-probe]\naws_ec2 = {scope}\nlimits = {{ deadline_ms = 30000 }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_launches_within_policy_and_gets_typed_denials() {
    let moto = Moto::start();
    let scope = r#"{ actions = ["describe-*", "run-instances", "terminate-instances"], instance_types = ["t3.micro"], amis = ["ami-03cf127a"], max_running_instances = 2, max_hourly_usd = 1.0, dry_run = false }"#;
    let h = TestHost::new(&probe_config(&moto.endpoint(), scope));
    let svc = h.host.aws.clone();

    let r = probe(&h, json!({"op": "run", "image": MOTO_AMI, "type": "t3.micro", "count": 1, "tags": {"role": "api"}})).await;
    assert_eq!(r["ok"], true, "{r}");
    let id = r["ids"][0].as_str().unwrap().to_string();
    let all = ec2_instances(&svc).await;
    assert_eq!(all[&id].1["agentkernel:owner"], "ec2-probe");

    let r = probe(&h, json!({"op": "run", "image": MOTO_AMI, "type": "m5.large", "count": 1})).await;
    assert_eq!((r["error"].as_str(), r["rule"].as_str()), (Some("denied:instance-type"), Some("instance-type")), "{r}");
    let r = probe(&h, json!({"op": "run", "image": MOTO_AMI, "type": "t3.micro", "count": 5})).await;
    assert_eq!(r["rule"], "max-running-instances", "{r}");
    let r = probe(&h, json!({"op": "run", "image": MOTO_AMI, "type": "t3.micro", "region": "ap-south-1"})).await;
    assert_eq!(r["rule"], "region", "{r}");
    let r = probe(&h, json!({"op": "stop", "ids": [id]})).await;
    assert_eq!(r["rule"], "action", "stop is not granted: {r}");
    let untagged = launch_untagged(&svc).await;
    let r = probe(&h, json!({"op": "terminate", "ids": [untagged]})).await;
    assert_eq!(r["error"], "not-owned", "{r}");
    let r = probe(&h, json!({"op": "describe"})).await;
    assert_eq!(r["ids"], json!([id]), "the guest sees only its own instance: {r}");
    let r = probe(&h, json!({"op": "terminate", "ids": [id]})).await;
    assert_eq!(r["ok"], true, "{r}");

    let rows = h.host.aws.store().audit_list(Some("ec2-probe"), 50).unwrap();
    assert!(rows.iter().any(|r| r.action == "run-instances" && r.outcome == "ok"));
    for rule in ["instance-type", "max-running-instances", "region", "action", "not-owned"] {
        assert!(rows.iter().any(|r| r.outcome == "denied" && r.rule.as_deref() == Some(rule)), "no denied row for {rule}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_without_the_grant_are_refused_at_load() {
    let h = TestHost::new("");
    let e = h.load("ec2-probe").await.err().expect("refused");
    let msg = e.to_string();
    assert!(msg.contains("`aws-ec2`") && msg.contains("aws_ec2 = true"), "{msg}");
    let e = h.load("infrastructure-architect").await.err().expect("refused");
    assert!(e.to_string().contains("aws-ec2") || e.to_string().contains("llm"), "{e}");
}

fn architect_config(endpoint: &str, scope: &str) -> String {
    format!(
        "[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n{PRICES}\n[agents.infrastructure-architect]\naws_ec2 = {scope}\nllm = true\nlimits = {{ deadline_ms = 30000 }}\n"
    )
}

async fn ask(h: &TestHost, text: &str, ctx: Option<Value>) -> (String, Value) {
    let agent = h.load("infrastructure-architect").await.expect("architect loads");
    let mut req = request("chat", text);
    req.context = ctx.map(|c| c.to_string());
    let out = agent.call(&req).await.expect("the call succeeds");
    let data = out.response.data.as_deref().map(|d| serde_json::from_str(d).unwrap()).unwrap_or(Value::Null);
    (out.response.text, data)
}

const ARCHITECT_GENOME: &str = r#"
id = "shop"
owner = "infrastructure-architect"
region = "us-east-1"
[[group]]
name = "web"
count = 1
instance_type = "t3.micro"
ami = "ami-03cf127a"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_architect_proposes_and_an_admin_approves() {
    let moto = Moto::start();
    let scope = r#"{ actions = ["describe-*", "current-genome", "propose-genome"], instance_types = ["t3.micro"], amis = ["ami-03cf127a"], max_running_instances = 4, max_hourly_usd = 0.1 }"#;
    let h = TestHost::new(&architect_config(&moto.endpoint(), scope));
    let svc = h.host.aws.clone();
    let owner_scope: AwsEc2Scope = toml::from_str(&format!("x = {scope}")).map(|t: toml::Table| t["x"].clone().try_into().unwrap()).unwrap();
    let genome = agentkernel::aws::genome::Genome::parse(ARCHITECT_GENOME).unwrap();
    svc.apply_genome("admin", &genome, &owner_scope, true).await.unwrap();
    assert_eq!(live(&ec2_instances(&svc).await).len(), 1);

    let (text, data) = ask(&h, "We need 3 more t3.micro web servers for the sale", None).await;
    assert_eq!(data["status"], "pending", "{text}");
    assert_eq!(data["method"], "rules", "no model configured: {text}");
    assert!(text.contains("group `web`: 1 -> 4 x t3.micro"), "{text}");
    assert!(text.contains("launch 3 x t3.micro"), "{text}");
    assert!(text.contains("$0.0104/h -> $0.0416/h"), "{text}");
    assert!(text.contains("agentkernel genome approve"), "{text}");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 1, "a proposal changes nothing by itself");

    let id = data["proposal"].as_i64().unwrap();
    let (p, _, report) = svc.approve_proposal(id, "admin", |_| Some(owner_scope.clone())).await.unwrap();
    assert_eq!((p.status.as_str(), report.launched.len()), ("applied", 3));
    assert_eq!(live(&ec2_instances(&svc).await).len(), 4);
    assert_eq!(svc.current_genome("infrastructure-architect").await.unwrap().unwrap().groups[0].count, 4);

    // Beyond policy: the plan is refused when approved, naming the rule.
    let (text, data) = ask(&h, "add 5 more web servers", None).await;
    assert_eq!(data["status"], "pending", "{text}");
    let id = data["proposal"].as_i64().unwrap();
    let e = svc.approve_proposal(id, "admin", |_| Some(owner_scope.clone())).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::MaxRunningInstances), "{e}");
    assert_eq!(svc.store().proposal_get(id).unwrap().unwrap().status, "failed");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_apply_within_limits_applies_and_beyond_limits_waits() {
    let moto = Moto::start();
    let scope = r#"{ actions = ["describe-*", "current-genome", "propose-genome", "run-instances", "terminate-instances"], instance_types = ["t3.micro"], amis = ["ami-03cf127a"], max_running_instances = 3, max_hourly_usd = 0.1, dry_run = false, auto_apply = true }"#;
    let h = TestHost::new(&architect_config(&moto.endpoint(), scope));
    let svc = h.host.aws.clone();

    let (text, data) = ask(&h, "2 web servers please", Some(json!({"ami": MOTO_AMI}))).await;
    assert_eq!(data["status"], "applied", "{text}");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2);
    assert_eq!(svc.current_genome("infrastructure-architect").await.unwrap().unwrap().owner, "infrastructure-architect");

    let (text, data) = ask(&h, "3 more web servers", None).await;
    assert_eq!(data["status"], "pending", "{text}");
    assert!(text.contains("max-running-instances"), "{text}");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_architect_uses_the_model_when_one_answers() {
    use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
    let moto = Moto::start();
    let llm = ScriptedLlm::start(vec![Scripted::reply(r#"{"group": "api", "instance_type": "t3.micro", "add": 2, "remove": null, "set": null}"#)]).await;
    let scope = r#"{ actions = ["describe-*", "current-genome", "propose-genome"], instance_types = ["t3.micro"], amis = ["ami-03cf127a"], max_running_instances = 4, max_hourly_usd = 0.1 }"#;
    let h = TestHost::new(&format!("{}{}", llm.config(), architect_config(&moto.endpoint(), scope)));
    let (text, data) = ask(&h, "the API tier is struggling, double it from nothing to a pair", Some(json!({"ami": MOTO_AMI}))).await;
    assert_eq!(data["method"], "model", "{text}");
    assert!(text.contains("group `api`: 0 -> 2 x t3.micro"), "{text}");
    let pending = h.host.aws.store().proposal_list(Some("pending"), 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].toml.contains("name = \"api\""), "{}", pending[0].toml);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_review_proposals_over_http_and_the_cli() {
    let moto = Moto::start();
    let scope = r#"{ actions = ["describe-*", "current-genome", "propose-genome"], instance_types = ["t3.micro"], amis = ["ami-03cf127a"], max_running_instances = 4, max_hourly_usd = 0.1 }"#;
    let tokens = "[[host.tokens]]\nname = \"alice\"\ntoken = \"alice-secret-0123456789\"\nscopes = [\"chat\"]\n\
                  [[host.tokens]]\nname = \"ops\"\ntoken = \"ops-secret-0123456789ab\"\nscopes = [\"admin\"]\n";
    let config = format!("{tokens}{}", architect_config(&moto.endpoint(), scope));
    let h = TestHost::new(&config);
    let svc = h.host.aws.clone();
    let (text, first) = ask(&h, "2 web servers", Some(json!({"ami": MOTO_AMI}))).await;
    assert_eq!(first["status"], "pending", "{text}");

    // The CLI sees the same database (`agentkernel` points --data-dir at the host's).
    std::fs::write(h.dir.path().join("agentkernel.toml"), &config).unwrap();
    let listed = ok(&agentkernel(h.dir.path(), &["genome", "proposals", "--status", "pending"]));
    assert!(listed.contains("#1 [pending] from infrastructure-architect: 2 web servers"), "{listed}");
    ok(&agentkernel(h.dir.path(), &["genome", "reject", "1", "--reason", "not during the freeze"]));
    assert_eq!(svc.store().proposal_get(1).unwrap().unwrap().status, "rejected");

    let (_, second) = ask(&h, "2 web servers", Some(json!({"ami": MOTO_AMI}))).await;
    let id = second["proposal"].as_i64().unwrap();
    let addr = h.serve().await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/admin/genome/proposals/{id}/approve");
    // Chat-scoped callers cannot review infrastructure.
    let refused = http.post(&url).bearer_auth("alice-secret-0123456789").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let refused = http.get(format!("http://{addr}/v1/admin/audit")).bearer_auth("alice-secret-0123456789").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(http.post(&url).send().await.unwrap().status(), 401, "no token at all");
    assert!(ec2_instances(&svc).await.is_empty());
    let http = reqwest::Client::builder()
        .default_headers(
            [(reqwest::header::AUTHORIZATION, "Bearer ops-secret-0123456789ab".parse().unwrap())].into_iter().collect(),
        )
        .build()
        .unwrap();
    let pending: Value = http
        .get(format!("http://{addr}/v1/admin/genome/proposals?status=pending"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["proposals"].as_array().unwrap().len(), 1, "{pending}");
    let resp = http.post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["proposal"]["status"], "applied", "{body}");
    assert_eq!(body["applied"]["launched"].as_array().unwrap().len(), 2);
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2);
    let again = http.post(&url).send().await.unwrap();
    assert_eq!(again.status(), 422, "a proposal is applied once");
    let genome: Value = http.get(format!("http://{addr}/v1/admin/genome")).send().await.unwrap().json().await.unwrap();
    assert!(genome["genome"]["toml"].as_str().unwrap().contains("name = \"web\""), "{genome}");
    let audit: Value = http
        .get(format!("http://{addr}/v1/admin/audit?agent=infrastructure-architect&limit=5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = audit["audit"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["action"] == "propose-genome" && r["outcome"] == "ok"), "{audit}");
    let approvals = svc.store().audit_list(Some("admin:ops"), 5).unwrap();
    let approvals: Vec<(&str, &str)> = approvals.iter().map(|r| (r.action.as_str(), r.outcome.as_str())).collect();
    assert_eq!(approvals[..2], [("genome-approve", "error"), ("genome-approve", "ok")], "the audit names the admin, for the refused second approval too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_and_audited_in_bounded_rows() {
    fake_aws_env();
    // Refused before any EC2 call, so no endpoint is needed.
    let (svc, store) = service("http://127.0.0.1:9");
    let scope = launcher();
    let filters: Vec<_> = (0..60)
        .map(|i| agentkernel::bindings::agentkernel::agent::aws_ec2::Filter { name: format!("tag:k{i}"), values: vec!["v".repeat(4096)] })
        .collect();
    let e = svc.describe_instances(who("big", &scope), None, filters).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::RequestSize), "{e}");
    let ids: Vec<String> = (0..500).map(|i| format!("i-{i:017}")).collect();
    let e = svc.terminate_instances(who("big", &scope), None, ids).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::RequestSize), "{e}");
    let e = svc.describe_images(who("big", &scope), Some("r".repeat(100_000)), vec![]).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::Region), "{e}");
    let rows = store.audit_list(Some("big"), 10).unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.outcome, "denied");
        let sizes = (r.params.to_string().len(), r.region.len(), r.detail.len());
        assert!(sizes.0 <= 16 * 1024 && sizes.1 <= 64 && sizes.2 <= 2048, "{}: {sizes:?}", r.action);
    }
    // 60 filters of 4 KiB: the row keeps a 1 KiB start and the size.
    assert_eq!(rows[2].params["truncated"], true);
    assert!(rows[2].params.to_string().len() < 2048);
}

// ---- genome races, auto-apply permissions, bounds, plan drift, per-owner genomes, audit ----

fn genome_of(owner: &str, groups: &[(&str, u32, &str)]) -> agentkernel::aws::genome::Genome {
    let mut text = format!("id = \"shop\"\nowner = \"{owner}\"\nregion = \"us-east-1\"\n");
    for (name, count, ami) in groups {
        text.push_str(&format!(
            "[[group]]\nname = \"{name}\"\ncount = {count}\ninstance_type = \"t3.micro\"\nami = \"{ami}\"\ntags = {{ role = \"{name}\" }}\n"
        ));
    }
    agentkernel::aws::genome::Genome::parse(&text).unwrap()
}

/// Room for everything these tests launch, so only the code under test can refuse.
fn roomy() -> AwsEc2Scope {
    AwsEc2Scope { amis: vec!["ami-*".into()], max_running_instances: 20, max_hourly_usd: 10.0, ..launcher() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approvals_and_applies_launch_the_count_once() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let scope = roomy();
    let genome = genome_of("architect", &[("web", 2, MOTO_AMI)]);
    let id = store.proposal_add("architect", "two web servers", &genome.to_toml()).unwrap();
    let (a, b) = tokio::join!(
        svc.approve_proposal(id, "admin:one", |_| Some(scope.clone())),
        svc.approve_proposal(id, "admin:two", |_| Some(scope.clone())),
    );
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("exactly one approval applies: {other:?}"),
    };
    assert_eq!(won.2.launched.len(), 2);
    assert!(matches!(lost, Ec2Failure::InvalidParameter(ref m) if m.contains("not pending")), "{lost}");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2, "the group's count, once");
    assert_eq!(store.proposal_get(id).unwrap().unwrap().status, "applied");
    let approvals = store.audit_list(None, 20).unwrap();
    assert!(approvals.iter().any(|r| r.action == "genome-approve" && r.outcome == "error" && r.detail.contains("not pending")), "{approvals:?}");

    // Two operators applying the same bigger genome at once: each plans under the lock.
    let bigger = genome_of("architect", &[("web", 3, MOTO_AMI), ("worker", 1, MOTO_AMI)]);
    let (a, b) = tokio::join!(svc.apply_genome("admin", &bigger, &scope, true), svc.apply_genome("admin", &bigger, &scope, true));
    let launched = a.unwrap().1.unwrap().launched.len() + b.unwrap().1.unwrap().launched.len();
    assert_eq!(launched, 2, "web +1 and worker +1, not twice");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_apply_needs_the_actions_the_plan_performs() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let proposer = AwsEc2Scope {
        actions: vec!["describe-*".into(), "current-genome".into(), "propose-genome".into()],
        auto_apply: true,
        ..roomy()
    };
    let out = svc.propose_genome(who("architect", &proposer), genome_of("architect", &[("web", 2, MOTO_AMI)]), "web".into()).await.unwrap();
    assert_eq!(out.status, "pending", "{out:?}");
    assert!(out.message.contains("policy rule `action`") && out.message.contains("run-instances"), "the denial names the rule: {}", out.message);
    assert!(ec2_instances(&svc).await.is_empty(), "proposing is not permission to launch");
    let row = store.audit_list(Some("architect"), 10).unwrap().into_iter().find(|r| r.action == "genome-auto-apply").unwrap();
    assert_eq!((row.outcome.as_str(), row.rule.as_deref()), ("denied", Some("action")));

    let launcher_too = AwsEc2Scope { actions: vec!["describe-*".into(), "propose-genome".into(), "run-instances".into()], ..proposer.clone() };
    let out = svc.propose_genome(who("architect", &launcher_too), genome_of("architect", &[("web", 2, MOTO_AMI)]), "web".into()).await.unwrap();
    assert_eq!(out.status, "applied", "{out:?}");
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2);
    // Scaling down terminates, which this grant does not allow.
    let out = svc.propose_genome(who("architect", &launcher_too), genome_of("architect", &[("web", 1, MOTO_AMI)]), "less".into()).await.unwrap();
    assert_eq!(out.status, "pending", "{out:?}");
    assert!(out.message.contains("terminate-instances"), "{}", out.message);
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_oversized_proposals_are_refused_and_nothing_is_stored() {
    fake_aws_env();
    // Refused before any EC2 call, so no endpoint is needed.
    let (svc, store) = service("http://127.0.0.1:9");
    let scope = AwsEc2Scope { auto_apply: true, ..roomy() };
    let base = genome_of("architect", &[("web", 1, MOTO_AMI)]);
    let with = |f: &dyn Fn(&mut agentkernel::aws::genome::Genome)| {
        let mut g = base.clone();
        f(&mut g);
        g
    };
    let group = base.groups[0].clone();
    let cases: Vec<(&str, agentkernel::aws::genome::Genome, &str)> = vec![
        (
            "groups",
            with(&|g| g.groups = (0..51).map(|i| agentkernel::aws::genome::InstanceGroup { name: format!("g{i}"), ..group.clone() }).collect()),
            "51 groups; at most 50",
        ),
        ("count", with(&|g| g.groups[0].count = 101), "count 101 exceeds 100"),
        ("tags", with(&|g| g.groups[0].tags = (0..41).map(|i| (format!("k{i}"), "v".into())).collect()), "41 tags in one call; the limit is 40"),
        ("tag value", with(&|g| { g.groups[0].tags.insert("k".into(), "v".repeat(300)); }), "values at most 256"),
        ("tag key", with(&|g| { g.groups[0].tags.insert("k".repeat(200), "v".into()); }), "keys must be 1-128 bytes"),
        ("reserved", with(&|g| { g.groups[0].tags.insert("agentkernel:owner".into(), "x".into()); }), "reserved"),
        ("security groups", with(&|g| g.groups[0].security_group_ids = (0..17).map(|i| format!("sg-{i}")).collect()), "17 security groups; at most 16"),
        ("ami", with(&|g| g.groups[0].ami = format!("ami-{}", "0".repeat(200))), "longer than 128 bytes"),
        (
            "size",
            with(&|g| {
                g.groups = (0..50)
                    .map(|i| agentkernel::aws::genome::InstanceGroup {
                        name: format!("g{i}"),
                        tags: (0..10).map(|t| (format!("k{t}"), "v".repeat(250))).collect(),
                        ..group.clone()
                    })
                    .collect()
            }),
            "bytes as TOML; at most 65536",
        ),
    ];
    for (name, genome, expected) in cases {
        let e = svc.propose_genome(who("architect", &scope), genome, "r".into()).await.unwrap_err();
        assert!(matches!(e, Ec2Failure::InvalidParameter(_)), "{name}: {e}");
        assert!(e.to_string().contains(expected), "{name}: {e}");
    }
    assert!(store.proposal_list(None, 100).unwrap().is_empty(), "nothing stored");
    let rows = store.audit_list(Some("architect"), 20).unwrap();
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|r| r.action == "propose-genome" && r.outcome == "error"));
    // The same bounds hold for genome files.
    let huge = format!("id = \"x\"\nowner = \"a\"\n# {}\n", "x".repeat(70_000));
    assert!(agentkernel::aws::genome::Genome::parse(&huge).unwrap_err().to_string().contains("at most 65536"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_start_stopped_members_retag_drift_and_replace_other_security_groups() {
    let moto = Moto::start();
    let (svc, _) = service(&moto.endpoint());
    let scope = AwsEc2Scope { max_running_instances: 2, ..roomy() };
    let genome = genome_of("architect", &[("web", 2, MOTO_AMI)]);
    let (_, r) = svc.apply_genome("admin", &genome, &scope, true).await.unwrap();
    let ids = r.unwrap().launched;
    let client = svc.admin_client(None).await;

    // A stopped member still counts toward `count`, and is started rather than replaced.
    client.stop_instances().instance_ids(&ids[0]).send().await.unwrap();
    let plan = svc.plan(&genome, None).await.unwrap();
    let text = plan.render();
    assert!(text.contains(&format!("> start {}", ids[0])) && !text.contains("+ launch"), "{text}");
    assert_eq!((plan.running_before, plan.running_after), (1, 2), "{text}");
    let (_, r) = svc.apply_genome("admin", &genome, &scope, true).await.unwrap();
    let r = r.unwrap();
    assert_eq!((r.started.clone(), r.launched.len()), (vec![ids[0].clone()], 0));
    assert_eq!(live(&ec2_instances(&svc).await).len(), 2);
    // ...under the same running-count rule as a launch.
    client.stop_instances().instance_ids(&ids[0]).send().await.unwrap();
    svc.run_instances(who("architect", &scope), None, spec("t3.micro", 1)).await.unwrap();
    let e = svc.apply_genome("admin", &genome, &scope, true).await.unwrap_err();
    assert_eq!(rule_of(&e), Some(Rule::MaxRunningInstances), "{e}");

    // Tags that drifted are put back, without replacing the instance.
    client
        .create_tags()
        .resources(&ids[1])
        .tags(aws_sdk_ec2::types::Tag::builder().key("role").value("db").build())
        .send()
        .await
        .unwrap();
    let roomier = AwsEc2Scope { max_running_instances: 10, ..scope.clone() };
    let plan = svc.plan(&genome, None).await.unwrap();
    assert!(plan.render().contains(&format!("~ retag {}", ids[1])), "{}", plan.render());
    let (_, r) = svc.apply_genome("admin", &genome, &roomier, true).await.unwrap();
    assert_eq!(r.unwrap().retagged, vec![ids[1].clone()]);
    assert_eq!(ec2_instances(&svc).await[&ids[1]].1["role"], "web");

    // Security groups the genome names are compared: members without them are replaced.
    let sg = client.create_security_group().group_name("web").description("web").send().await.unwrap();
    let sg = sg.group_id().unwrap().to_string();
    let mut with_sg = genome.clone();
    with_sg.groups[0].security_group_ids = vec![sg.clone()];
    let plan = svc.plan(&with_sg, None).await.unwrap();
    let text = plan.render();
    assert!(text.contains("security groups differ from the genome") && text.contains("+ launch 2"), "{text}");
    svc.apply_genome("admin", &with_sg, &roomier, true).await.unwrap();
    let again = svc.plan(&with_sg, None).await.unwrap();
    assert!(again.is_empty(), "the new members match: {}", again.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_owner_has_its_own_current_genome() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let scope = AwsEc2Scope { auto_apply: true, ..roomy() };
    svc.apply_genome("admin", &genome_of("architect", &[("web", 1, MOTO_AMI)]), &scope, true).await.unwrap();
    let out = svc.propose_genome(who("builder", &scope), genome_of("builder", &[("ci", 1, MOTO_AMI)]), "ci".into()).await.unwrap();
    assert_eq!(out.status, "applied", "{out:?}");

    let architects = svc.current_genome("architect").await.unwrap().expect("the operator's genome is still current");
    assert_eq!(architects.groups[0].name, "web", "another agent's auto-apply does not replace it");
    let seen = svc.read_genome(who("builder", &scope)).await.unwrap().unwrap();
    assert_eq!((seen.owner.as_str(), seen.groups[0].name.as_str()), ("builder", "ci"), "an agent reads its own genome");
    assert!(svc.read_genome(who("mallory", &scope)).await.unwrap().is_none(), "and nobody else's");
    let owners: Vec<String> = store.genome_current_all().unwrap().into_iter().map(|g| g.owner).collect();
    assert_eq!(owners, ["builder", "architect"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_apply_audits_what_it_already_did_and_reviews_are_audited() {
    let moto = Moto::start();
    let (svc, store) = service(&moto.endpoint());
    let scope = roomy();
    // The second group's AMI does not exist: its launch fails after the first group's.
    let genome = genome_of("architect", &[("web", 1, MOTO_AMI), ("broken", 1, "ami-00000000")]);
    let e = svc.apply_genome("admin", &genome, &scope, true).await.unwrap_err();
    let launched = live(&ec2_instances(&svc).await);
    assert_eq!(launched.len(), 1);
    assert!(e.to_string().contains("InvalidAMIID") && e.to_string().contains(&launched[0]), "the error says what was done: {e}");
    let row = &store.audit_list(Some("admin"), 1).unwrap()[0];
    assert_eq!((row.action.as_str(), row.outcome.as_str()), ("genome-apply", "error"));
    assert!(row.detail.contains("launched 1") && row.detail.contains(&launched[0]), "{}", row.detail);
    assert_eq!(svc.current_genome("architect").await.unwrap(), None, "a failed apply is not the current genome");

    let id = store.proposal_add("architect", "r", &genome_of("architect", &[("web", 1, MOTO_AMI)]).to_toml()).unwrap();
    svc.reject_proposal(id, "admin:ops", "not now").await.unwrap();
    let e = svc.reject_proposal(id, "admin:ops", "again").await.unwrap_err();
    assert!(e.to_string().contains("rejected, not pending"), "{e}");
    let e = svc.approve_proposal(id, "admin:ops", |_| Some(scope.clone())).await.unwrap_err();
    assert!(e.to_string().contains("not pending"), "{e}");
    let rows = store.audit_list(Some("admin:ops"), 10).unwrap();
    let summary: Vec<(&str, &str)> = rows.iter().rev().map(|r| (r.action.as_str(), r.outcome.as_str())).collect();
    assert_eq!(summary, [("genome-reject", "ok"), ("genome-reject", "error"), ("genome-approve", "error")]);
    assert_eq!(rows[2].params["reason"], "not now");
}

#[test]
fn the_shipped_config_names_explicit_amis() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../agentkernel.toml")).unwrap();
    let config = agentkernel::config::HostConfig::parse(&text).unwrap();
    let scope = agentkernel::aws::policy::granted_scope(&config.policy_for("infrastructure-architect")).expect("the architect has a grant");
    assert!(!scope.amis.is_empty() && scope.amis.iter().all(|a| !a.contains('*')), "an `ami-*` pattern voids the AMI rule: {:?}", scope.amis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_images_lists_the_accounts_own_images_unless_owners_are_named() {
    use agentkernel::bindings::agentkernel::agent::aws_ec2::Filter;
    let moto = Moto::start();
    let (svc, _) = service(&moto.endpoint());
    let scope = launcher();
    let reader = || who("reader", &scope);
    assert!(svc.describe_images(reader(), None, vec![]).await.unwrap().is_empty(), "moto's public AMIs are not the account's");
    let ids = svc.run_instances(reader(), None, spec("t3.micro", 1)).await.unwrap().instance_ids;
    let client = svc.admin_client(None).await;
    let own = client.create_image().instance_id(&ids[0]).name("golden").send().await.unwrap().image_id().unwrap().to_string();
    let images = svc.describe_images(reader(), None, vec![]).await.unwrap();
    assert_eq!(images.iter().map(|i| i.image_id.as_str()).collect::<Vec<_>>(), [own.as_str()]);

    let amazon = |name: &str| vec![Filter { name: name.into(), values: vec!["801119661308".into()] }];
    for named in [amazon("owners"), amazon("owner-id")] {
        let images = svc.describe_images(reader(), None, named.clone()).await.unwrap();
        assert!(images.iter().any(|i| i.image_id == MOTO_AMI), "{}: {images:?}", named[0].name);
        assert!(!images.iter().any(|i| i.image_id == own), "{}", named[0].name);
        assert!(images.len() <= agentkernel::aws::MAX_RESULTS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_architect_picks_only_the_accounts_own_images() {
    let moto = Moto::start();
    let scope = r#"{ actions = ["describe-*", "current-genome", "propose-genome"], instance_types = ["t3.micro"], amis = ["ami-03cf127a"], max_running_instances = 4, max_hourly_usd = 0.1 }"#;
    let h = TestHost::new(&architect_config(&moto.endpoint(), scope));
    let svc = h.host.aws.clone();
    let (text, _) = ask(&h, "2 web servers", None).await;
    assert!(text.contains("no AMI to launch the new group from"), "moto's public images are not candidates: {text}");

    let launcher = launcher();
    let ids = svc.run_instances(who("someone", &launcher), None, spec("t3.micro", 1)).await.unwrap().instance_ids;
    let client = svc.admin_client(None).await;
    let own = client.create_image().instance_id(&ids[0]).name("golden").send().await.unwrap().image_id().unwrap().to_string();
    let (text, data) = ask(&h, "2 web servers", None).await;
    assert_eq!(data["status"], "pending", "{text}");
    assert!(text.contains(&format!("new group, AMI {own}")), "{text}");
}

/// Two `genome apply` processes at once (an operator's CLI racing another,
/// or two hosts) launch the genome's count once: the owner lock is a lease
/// in the shared store, not a lock in one process. On the SQLite file both
/// processes open, and on PostgreSQL when the test cluster is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_genome_applies_from_different_processes_launch_once() {
    let postgres = agentkernel::storage::postgres::testing::fresh_database("concurrent_genome_applies");
    for database in [None, postgres] {
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let storage = database.as_ref().map(|url| format!("[storage]\nurl = \"{url}\"\n")).unwrap_or_default();
        std::fs::write(dir.path().join("agentkernel.toml"), format!("{storage}{}", host_config(&moto.endpoint(), ARCHITECT_SCOPE)))
            .unwrap();
        std::fs::write(dir.path().join("genome.toml"), GENOME).unwrap();
        let (svc, _) = service(&moto.endpoint());
        let applies: Vec<_> = (0..2)
            .map(|_| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || agentkernel(&dir, &["genome", "apply", "genome.toml", "--approve"]))
            })
            .collect();
        let outputs: Vec<String> = applies.into_iter().map(|t| ok(&t.join().unwrap())).collect();
        let backend = if database.is_some() { "postgres" } else { "sqlite" };
        assert_eq!(live(&ec2_instances(&svc).await).len(), 3, "{backend}: the count launched once: {outputs:?}");
        assert_eq!(outputs.iter().filter(|o| o.contains("applied: launched 3")).count(), 1, "{backend}: {outputs:?}");
        assert_eq!(outputs.iter().filter(|o| o.contains("no changes")).count(), 1, "{backend}: {outputs:?}");
    }
}
