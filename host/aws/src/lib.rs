//! EC2 for agents and operators: the SDK client per region, the policy
//! checks, the price table, the audit log, and the infrastructure genome.
//!
//! [`Ec2Service`] is shared by the `aws-ec2` capability (guests) and the
//! `agentkernel genome`/`audit` commands. Every call it makes on behalf of
//! an agent goes policy check → EC2 (or EC2 dry run) → audit row, and the
//! audit row is written for refusals too.
pub mod capability;
pub mod client;
pub mod genome;
pub mod policy;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;

use agentkernel_runtime::bindings::agentkernel::agent::aws_ec2::{self as wit, ChangeResult, Filter, Image, Instance, RunSpec, SecurityGroup, Subnet, Tag};
use agentkernel_storage::aws::{AuditRecord, AwsStore};
use client::{Ec2, Launch};
use policy::{AwsEc2Scope, Denial, OWNER_TAG, Rule, check_size, check_tag_keys};

/// `[aws]` in `agentkernel.toml`.
///
/// ```toml
/// [aws]
/// region = "us-east-1"                       # default: the standard AWS region chain, else us-east-1
/// endpoint_url = "http://127.0.0.1:5000"     # e.g. moto_server; default: the real AWS endpoint
/// max_attempts = 3                           # SDK retries (throttling, 5xx)
/// timeout_ms = 20000                         # per EC2 operation, retries included
/// [aws.prices]                               # estimated USD per instance-hour
/// "t3.micro" = 0.0104
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub prices: BTreeMap<String, f64>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig { region: None, endpoint_url: None, max_attempts: 3, timeout_ms: 20_000, prices: BTreeMap::new() }
    }
}

impl AwsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("aws.max_attempts must be at least 1".into());
        }
        if let Some((t, p)) = self.prices.iter().find(|(_, p)| !p.is_finite() || **p < 0.0) {
            return Err(format!("aws.prices.\"{t}\" = {p} is not a non-negative price"));
        }
        Ok(())
    }

    /// Estimated USD per hour of one instance of `instance_type`.
    pub fn price(&self, instance_type: &str) -> Option<f64> {
        self.prices.get(instance_type).copied()
    }

    /// Summed hourly price, or the first type without a price.
    pub fn hourly<'a>(&self, types: impl IntoIterator<Item = &'a str>) -> Result<f64, String> {
        types.into_iter().try_fold(0.0, |sum, t| self.price(t).map(|p| sum + p).ok_or_else(|| t.to_string()))
    }
}

/// Why an EC2 call did not happen or failed; becomes the WIT `ec2-error`.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Ec2Failure {
    #[error("denied by policy rule `{}`: {}", .0.rule, .0.message)]
    Denied(Denial),
    #[error("not owned: {0}")]
    NotOwned(String),
    #[error("throttled by EC2: {0}")]
    Throttled(String),
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("EC2 unavailable: {0}")]
    Unavailable(String),
    #[error("EC2 error: {0}")]
    Aws(String),
}

impl From<Denial> for Ec2Failure {
    fn from(d: Denial) -> Self {
        Ec2Failure::Denied(d)
    }
}

impl Ec2Failure {
    /// Stable code for the audit log and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            Ec2Failure::Denied(_) => "denied",
            Ec2Failure::NotOwned(_) => "not-owned",
            Ec2Failure::Throttled(_) => "throttled",
            Ec2Failure::InvalidParameter(_) => "invalid-parameter",
            Ec2Failure::Unavailable(_) => "unavailable",
            Ec2Failure::Aws(_) => "aws",
        }
    }

    /// The same failure with `note` appended to its message (e.g. what a
    /// multi-step apply had already done when this step failed).
    pub fn with_note(self, note: &str) -> Ec2Failure {
        let add = |m: String| format!("{m}; {note}");
        match self {
            Ec2Failure::Denied(d) => Ec2Failure::Denied(Denial { rule: d.rule, message: add(d.message) }),
            Ec2Failure::NotOwned(m) => Ec2Failure::NotOwned(add(m)),
            Ec2Failure::Throttled(m) => Ec2Failure::Throttled(add(m)),
            Ec2Failure::InvalidParameter(m) => Ec2Failure::InvalidParameter(add(m)),
            Ec2Failure::Unavailable(m) => Ec2Failure::Unavailable(add(m)),
            Ec2Failure::Aws(m) => Ec2Failure::Aws(add(m)),
        }
    }

    pub fn to_wit(&self) -> wit::Ec2Error {
        match self.clone() {
            Ec2Failure::Denied(d) => wit::Ec2Error::Denied(wit::Denial { rule: rule_to_wit(d.rule), message: d.message }),
            Ec2Failure::NotOwned(m) => wit::Ec2Error::NotOwned(m),
            Ec2Failure::Throttled(m) => wit::Ec2Error::Throttled(m),
            Ec2Failure::InvalidParameter(m) => wit::Ec2Error::InvalidParameter(m),
            Ec2Failure::Unavailable(m) => wit::Ec2Error::Unavailable(m),
            Ec2Failure::Aws(m) => wit::Ec2Error::Aws(m),
        }
    }
}

fn rule_to_wit(r: Rule) -> wit::PolicyRule {
    match r {
        Rule::Action => wit::PolicyRule::Action,
        Rule::Region => wit::PolicyRule::Region,
        Rule::InstanceType => wit::PolicyRule::InstanceType,
        Rule::Image => wit::PolicyRule::Image,
        Rule::MaxRunningInstances => wit::PolicyRule::MaxRunningInstances,
        Rule::MaxHourlyCost => wit::PolicyRule::MaxHourlyCost,
        Rule::ReservedTag => wit::PolicyRule::ReservedTag,
        Rule::RequestSize => wit::PolicyRule::RequestSize,
        Rule::GenomeOwner => wit::PolicyRule::GenomeOwner,
    }
}

/// Who is asking, under which scope, until when.
#[derive(Clone, Copy)]
pub struct Principal<'a> {
    pub agent: &'a str,
    pub scope: &'a AwsEc2Scope,
    /// The guest call's deadline; EC2 calls past it fail as `unavailable`.
    pub deadline: Option<Instant>,
}

/// Most ids, filters, filter values or tags in one call.
pub const MAX_IDS: usize = 100;
pub const MAX_FILTERS: usize = 50;
pub const MAX_TAGS: usize = 40;
/// Most instances one launch may ask for.
pub const MAX_LAUNCH: u32 = 100;
/// Most security groups one launch (or genome group) may name.
pub const MAX_SECURITY_GROUPS: usize = 16;
/// Most records one describe call returns to a guest (the rest are cut;
/// the audit row says so).
pub const MAX_RESULTS: usize = 1000;
/// Longest tag key and value EC2 accepts.
pub const MAX_TAG_KEY: usize = 128;
pub const MAX_TAG_VALUE: usize = 256;
/// `describe-images` pseudo-filter naming DescribeImages' `Owners`
/// (`self`, `amazon`, account ids); without it, and without an
/// `owner-id`/`owner-alias` filter, only the account's own images are listed.
pub const OWNERS_FILTER: &str = "owners";

const ACTIVE_STATES: [&str; 2] = ["pending", "running"];
/// Largest parameters (JSON) and detail one audit row keeps in full.
const MAX_AUDIT_PARAMS: usize = 16 * 1024;

/// `s` cut to at most `max` bytes on a char boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// How long a process may hold an owner's lease without renewing it (it
/// renews every third of this while it holds it).
pub const OWNER_LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a change waits for another process's hold when it has no deadline.
pub const OWNER_LOCK_WAIT: Duration = Duration::from_secs(60);

/// An owner's launch lock, held while it lives ([`Ec2Service::hold_owner`]).
pub struct OwnerHold {
    _lease: agentkernel_storage::lease::Lease,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

pub struct Ec2Service {
    config: AwsConfig,
    store: Arc<dyn AwsStore>,
    default_region: tokio::sync::OnceCell<String>,
    clients: tokio::sync::Mutex<HashMap<String, aws_sdk_ec2::Client>>,
    /// One launch-or-start at a time per owner, so two concurrent calls
    /// cannot both pass the count and cost checks: first in this process
    /// (fair, no polling), then across processes and hosts (a lease in the
    /// store, see [`Ec2Service::hold_owner`]).
    owner_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Every agent runs as if its scope said `dry_run = true, auto_apply = false`.
    always_dry_run: bool,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect()
}

pub fn tag_value<'a>(instance: &'a Instance, key: &str) -> Option<&'a str> {
    instance.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

fn filters_json(filters: &[Filter]) -> serde_json::Value {
    filters.iter().map(|f| json!({"name": f.name, "values": f.values})).collect()
}

fn tags_json(tags: &[Tag]) -> serde_json::Value {
    tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect()
}

fn check_filters(filters: &[Filter]) -> Result<(), Denial> {
    check_size("filters", filters.len(), MAX_FILTERS)?;
    check_size("filter values", filters.iter().map(|f| f.values.len()).sum(), MAX_IDS * 2)
}

fn check_tags(tags: &[Tag]) -> Result<(), Ec2Failure> {
    check_tag_list(tags.iter().map(|t| (t.key.as_str(), t.value.as_str())))
}

/// Count, reserved keys and lengths of a list of tags (a launch's, a tag
/// call's, a genome group's).
pub fn check_tag_list<'a>(tags: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Result<(), Ec2Failure> {
    check_size("tags", tags.clone().count(), MAX_TAGS)?;
    check_tag_keys(tags.clone().map(|(k, _)| k))?;
    if let Some((k, _)) = tags.into_iter().find(|(k, v)| k.is_empty() || k.len() > MAX_TAG_KEY || v.len() > MAX_TAG_VALUE) {
        return Err(Ec2Failure::InvalidParameter(format!(
            "tag `{}`: keys must be 1-{MAX_TAG_KEY} bytes and values at most {MAX_TAG_VALUE}",
            k.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

/// Splits `describe-images` filters into EC2 filters and the `Owners` to ask for.
fn image_owners(filters: &[Filter]) -> (Vec<Filter>, Vec<String>) {
    let (owners, rest): (Vec<Filter>, Vec<Filter>) = filters.iter().cloned().partition(|f| f.name == OWNERS_FILTER);
    let mut owners: Vec<String> = owners.into_iter().flat_map(|f| f.values).collect();
    if owners.is_empty() && !rest.iter().any(|f| f.name == "owner-id" || f.name == "owner-alias") {
        owners.push("self".into());
    }
    (rest, owners)
}

fn counted(n: usize, what: &str) -> String {
    if n >= MAX_RESULTS { format!("{n} {what} (cut at {MAX_RESULTS})") } else { format!("{n} {what}") }
}

impl Ec2Service {
    pub fn new(config: AwsConfig, store: Arc<dyn AwsStore>) -> Self {
        Ec2Service {
            config,
            store,
            default_region: tokio::sync::OnceCell::new(),
            clients: tokio::sync::Mutex::new(HashMap::new()),
            owner_locks: std::sync::Mutex::new(HashMap::new()),
            always_dry_run: false,
        }
    }

    /// The EC2 backend of the evolution benchmark: every agent's scope is
    /// forced to dry run (nothing auto-applies), and the endpoint is one
    /// nothing listens on (loopback port 9, one attempt), so every call
    /// fails as `unavailable` and is audited in `store` (an in-memory one).
    /// What is benchmarked is how the agent copes with an unreachable EC2;
    /// nothing anywhere changes.
    /// `config` is production's (region, prices, timeouts: what policy
    /// checks read); only the endpoint and the attempts are replaced.
    pub fn unreachable_dry_run(config: AwsConfig, store: Arc<dyn AwsStore>) -> Self {
        let config = AwsConfig { endpoint_url: Some("http://127.0.0.1:9".into()), max_attempts: 1, ..config };
        Ec2Service { always_dry_run: true, ..Ec2Service::new(config, store) }
    }

    /// Whether every scope is forced to dry run ([`Self::unreachable_dry_run`]).
    pub fn always_dry_run(&self) -> bool {
        self.always_dry_run
    }

    pub fn config(&self) -> &AwsConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn AwsStore> {
        &self.store
    }

    /// `[aws] region`, else the standard region chain (`AWS_REGION`,
    /// profile), else `us-east-1`.
    pub async fn default_region(&self) -> String {
        self.default_region
            .get_or_init(|| async {
                if let Some(r) = &self.config.region {
                    return r.clone();
                }
                let chain = aws_config::default_provider::region::DefaultRegionChain::builder().build();
                chain.region().await.map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into())
            })
            .await
            .clone()
    }

    async fn region_or_default(&self, region: Option<String>) -> String {
        match region {
            Some(r) if !r.is_empty() => r,
            _ => self.default_region().await,
        }
    }

    /// The SDK client for `region` (built once; credentials from the standard chain).
    async fn client(&self, region: &str, deadline: Option<Instant>) -> Ec2 {
        let mut clients = self.clients.lock().await;
        let client = match clients.get(region) {
            Some(c) => c.clone(),
            None => {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http)
                    .region(aws_config::Region::new(region.to_string()))
                    .retry_config(RetryConfig::standard().with_max_attempts(self.config.max_attempts))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_timeout(Duration::from_millis(self.config.timeout_ms))
                            .build(),
                    );
                if let Some(url) = &self.config.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                let c = aws_sdk_ec2::Client::new(&loader.load().await);
                clients.insert(region.to_string(), c.clone());
                c
            }
        };
        Ec2 { client, region: region.to_string(), deadline }
    }

    /// An unscoped client for operators (the CLI) and tests' set-up.
    pub async fn admin_client(&self, region: Option<String>) -> aws_sdk_ec2::Client {
        let region = self.region_or_default(region).await;
        self.client(&region, None).await.client
    }

    fn owner_lock(&self, owner: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.owner_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(owner.to_string()).or_default().clone()
    }

    /// Holds `owner`'s launch lock until the returned guard drops: this
    /// process's mutex, then the `ec2-owner/<owner>` lease in the store, so
    /// a CLI `genome apply` and a server (or two hosts) cannot both pass the
    /// count and cost checks. Waits until `deadline` (else
    /// [`OWNER_LOCK_WAIT`]) for a holder elsewhere; a holder that died frees
    /// it when its lease expires ([`OWNER_LEASE_TTL`]).
    pub async fn hold_owner(&self, owner: &str, deadline: Option<Instant>) -> Result<OwnerHold, Ec2Failure> {
        let local = self.owner_lock(owner).lock_owned().await;
        let deadline = deadline.unwrap_or_else(|| Instant::now() + OWNER_LOCK_WAIT);
        let leases: Arc<dyn agentkernel_storage::lease::LeaseStore> = self.store.clone();
        let lease = agentkernel_storage::lease::Lease::acquire(leases, &format!("ec2-owner/{owner}"), OWNER_LEASE_TTL, Some(deadline))
            .await
            .map_err(|e| match e {
                agentkernel_storage::lease::LeaseError::Held { holder, .. } => Ec2Failure::Unavailable(format!(
                    "another process ({holder}) is changing `{owner}`'s instances; try again"
                )),
                agentkernel_storage::lease::LeaseError::Storage(e) => Ec2Failure::Unavailable(format!("the owner lock: {e}")),
            })?;
        Ok(OwnerHold { _lease: lease, _local: local })
    }

    /// Writes one audit row (on the blocking pool; a failure is logged, not
    /// returned, so an audit problem never turns into a guest-visible error
    /// after EC2 already acted).
    pub async fn audit(&self, mut record: AuditRecord) {
        // A guest chooses the parameters: bound what one row may hold.
        let params = record.params.to_string();
        if params.len() > MAX_AUDIT_PARAMS {
            record.params = json!({"truncated": true, "bytes": params.len(), "start": clip(&params, 1024)});
        }
        if record.detail.len() > MAX_AUDIT_PARAMS {
            record.detail = format!("{}... ({} bytes)", clip(&record.detail, 1024), record.detail.len());
        }
        record.region = clip(&record.region, 64).to_string();
        let store = self.store.clone();
        let result = agentkernel_storage::blocking::call(agentkernel_storage::blocking::DEFAULT_TIMEOUT, move || store.audit_append(&record));
        if let Err(e) = result.await {
            tracing::error!("cannot write the EC2 audit log: {e}");
        }
    }

    /// Runs `op` and records its outcome. `ok_detail` says what an Ok did
    /// (and whether it was a dry run).
    async fn audited<T>(
        &self,
        who: &Principal<'_>,
        action: &str,
        region: &str,
        params: serde_json::Value,
        op: impl Future<Output = Result<T, Ec2Failure>>,
        ok_detail: impl FnOnce(&T) -> (bool, String),
    ) -> Result<T, Ec2Failure> {
        let result = op.await;
        let (outcome, rule, detail) = match &result {
            Ok(v) => {
                let (dry, detail) = ok_detail(v);
                (if dry { "dry-run" } else { "ok" }, None, detail)
            }
            Err(Ec2Failure::Denied(d)) => ("denied", Some(d.rule.name().to_string()), d.message.clone()),
            Err(e @ Ec2Failure::NotOwned(_)) => ("denied", Some("not-owned".to_string()), e.to_string()),
            Err(e) => ("error", None, e.to_string()),
        };
        if let Err(e) = &result {
            tracing::info!(agent = who.agent, action, code = e.code(), "EC2 call refused or failed: {e}");
        }
        self.audit(AuditRecord {
            id: 0,
            at: now(),
            agent: who.agent.to_string(),
            action: action.to_string(),
            region: region.to_string(),
            params,
            outcome: outcome.to_string(),
            rule,
            detail,
        })
        .await;
        result
    }

    /// Action and region checks every call starts with.
    async fn admit(&self, who: &Principal<'_>, action: &str, region: &str) -> Result<(), Denial> {
        who.scope.check_action(action)?;
        if region.len() > 64 {
            return Err(Denial { rule: Rule::Region, message: format!("region name of {} bytes is not a region", region.len()) });
        }
        who.scope.check_region(region, &self.default_region().await)
    }

    /// Instances tagged as `owner`'s in `region`, optionally only some states.
    pub async fn owned_instances(&self, owner: &str, region: &str, states: &[&str], deadline: Option<Instant>) -> Result<Vec<Instance>, Ec2Failure> {
        let mut filters = vec![Filter { name: format!("tag:{OWNER_TAG}"), values: vec![owner.to_string()] }];
        if !states.is_empty() {
            filters.push(Filter { name: "instance-state-name".into(), values: states.iter().map(|s| s.to_string()).collect() });
        }
        let ec2 = self.client(region, deadline).await;
        let found = ec2.instances(&filters).await?;
        // The filter is EC2's; ownership is decided here, on the tags returned.
        Ok(found
            .into_iter()
            .filter(|i| tag_value(i, OWNER_TAG) == Some(owner))
            .filter(|i| states.is_empty() || states.contains(&i.state.as_str()))
            .collect())
    }

    /// `owner`'s pending and running instances across the scope's regions.
    async fn active_across(&self, owner: &str, scope: &AwsEc2Scope, deadline: Option<Instant>) -> Result<Vec<Instance>, Ec2Failure> {
        let mut all = Vec::new();
        for region in scope.allowed_regions(&self.default_region().await) {
            all.extend(self.owned_instances(owner, &region, &ACTIVE_STATES, deadline).await?);
        }
        Ok(all)
    }

    /// Checks that every id is an instance tagged as `owner`'s; returns them.
    async fn require_owned(&self, owner: &str, region: &str, ids: &[String], deadline: Option<Instant>) -> Result<Vec<Instance>, Ec2Failure> {
        if ids.is_empty() {
            return Err(Ec2Failure::InvalidParameter("no instance ids given".into()));
        }
        let ec2 = self.client(region, deadline).await;
        let found = ec2.instances(&[Filter { name: "instance-id".into(), values: ids.to_vec() }]).await?;
        let mut owned = Vec::new();
        for id in ids {
            match found.iter().find(|i| &i.instance_id == id) {
                Some(i) if tag_value(i, OWNER_TAG) == Some(owner) => owned.push(i.clone()),
                Some(_) => {
                    return Err(Ec2Failure::NotOwned(format!("instance {id} is not tagged {OWNER_TAG}={owner}")));
                }
                None => return Err(Ec2Failure::NotOwned(format!("instance {id} does not exist in {region} or is not an instance"))),
            }
        }
        Ok(owned)
    }

    /// Count and cost checks for making `adding_types` run on top of what `owner` runs now.
    /// Returns the estimated hourly cost after.
    async fn check_capacity(&self, owner: &str, scope: &AwsEc2Scope, adding_types: &[&str], deadline: Option<Instant>) -> Result<f64, Ec2Failure> {
        let active = self.active_across(owner, scope, deadline).await?;
        scope.check_running(active.len() as u32, adding_types.len() as u32)?;
        let before = self.config.hourly(active.iter().map(|i| i.instance_type.as_str()));
        let after = before.clone().and_then(|b| self.config.hourly(adding_types.iter().copied()).map(|a| b + a));
        scope.check_cost(before.unwrap_or(0.0), after.clone())?;
        Ok(after.unwrap_or(0.0))
    }

    pub async fn describe_instances(&self, who: Principal<'_>, region: Option<String>, filters: Vec<Filter>) -> Result<Vec<Instance>, Ec2Failure> {
        let region = self.region_or_default(region).await;
        let params = json!({"filters": filters_json(&filters)});
        let op = async {
            self.admit(&who, "describe-instances", &region).await?;
            check_filters(&filters)?;
            let mut filters = filters.clone();
            filters.push(Filter { name: format!("tag:{OWNER_TAG}"), values: vec![who.agent.to_string()] });
            let ec2 = self.client(&region, who.deadline).await;
            // Agents see only their own instances.
            Ok(ec2
                .instances(&filters)
                .await?
                .into_iter()
                .filter(|i| tag_value(i, OWNER_TAG) == Some(who.agent))
                .take(MAX_RESULTS)
                .collect())
        };
        self.audited(&who, "describe-instances", &region, params, op, |v: &Vec<Instance>| (false, counted(v.len(), "instances")))
            .await
    }

    pub async fn describe_images(&self, who: Principal<'_>, region: Option<String>, filters: Vec<Filter>) -> Result<Vec<Image>, Ec2Failure> {
        let region = self.region_or_default(region).await;
        let params = json!({"filters": filters_json(&filters)});
        let op = async {
            self.admit(&who, "describe-images", &region).await?;
            check_filters(&filters)?;
            // Unbounded by default on AWS (every public image): the
            // account's own images unless the guest names owners.
            let (filters, owners) = image_owners(&filters);
            self.client(&region, who.deadline).await.images(&filters, &owners, MAX_RESULTS).await
        };
        self.audited(&who, "describe-images", &region, params, op, |v: &Vec<Image>| (false, counted(v.len(), "images"))).await
    }

    pub async fn describe_security_groups(&self, who: Principal<'_>, region: Option<String>, filters: Vec<Filter>) -> Result<Vec<SecurityGroup>, Ec2Failure> {
        let region = self.region_or_default(region).await;
        let params = json!({"filters": filters_json(&filters)});
        let op = async {
            self.admit(&who, "describe-security-groups", &region).await?;
            check_filters(&filters)?;
            self.client(&region, who.deadline).await.security_groups(&filters, MAX_RESULTS).await
        };
        self.audited(&who, "describe-security-groups", &region, params, op, |v: &Vec<SecurityGroup>| {
            (false, counted(v.len(), "security groups"))
        })
        .await
    }

    pub async fn describe_subnets(&self, who: Principal<'_>, region: Option<String>, filters: Vec<Filter>) -> Result<Vec<Subnet>, Ec2Failure> {
        let region = self.region_or_default(region).await;
        let params = json!({"filters": filters_json(&filters)});
        let op = async {
            self.admit(&who, "describe-subnets", &region).await?;
            check_filters(&filters)?;
            self.client(&region, who.deadline).await.subnets(&filters, MAX_RESULTS).await
        };
        self.audited(&who, "describe-subnets", &region, params, op, |v: &Vec<Subnet>| (false, counted(v.len(), "subnets"))).await
    }

    pub async fn run_instances(&self, who: Principal<'_>, region: Option<String>, spec: RunSpec) -> Result<ChangeResult, Ec2Failure> {
        let region = self.region_or_default(region).await;
        let params = json!({
            "image_id": spec.image_id, "instance_type": spec.instance_type, "count": spec.count,
            "subnet_id": spec.subnet_id, "security_group_ids": spec.security_group_ids, "tags": tags_json(&spec.tags),
        });
        let op = async {
            self.admit(&who, "run-instances", &region).await?;
            if spec.count == 0 {
                return Err(Ec2Failure::InvalidParameter("count must be at least 1".into()));
            }
            check_size("instances", spec.count as usize, MAX_LAUNCH as usize)?;
            check_size("security groups", spec.security_group_ids.len(), MAX_SECURITY_GROUPS)?;
            check_tags(&spec.tags)?;
            who.scope.check_instance_type(&spec.instance_type)?;
            who.scope.check_image(&spec.image_id)?;
            let _held = self.hold_owner(who.agent, who.deadline).await?;
            let adding = vec![spec.instance_type.as_str(); spec.count as usize];
            let after = self.check_capacity(who.agent, who.scope, &adding, who.deadline).await?;
            let mut tags = tag_pairs(&spec.tags);
            tags.push((OWNER_TAG.to_string(), who.agent.to_string()));
            let launch = Launch {
                image_id: spec.image_id.clone(),
                instance_type: spec.instance_type.clone(),
                count: spec.count,
                subnet_id: spec.subnet_id.clone(),
                security_group_ids: spec.security_group_ids.clone(),
                tags,
            };
            let ec2 = self.client(&region, who.deadline).await;
            let ids = ec2.run(&launch, who.scope.dry_run).await?;
            let verb = if who.scope.dry_run { "would launch" } else { "launched" };
            Ok(ChangeResult {
                dry_run: who.scope.dry_run,
                summary: format!("{verb} {} x {} ({}) in {region}; est. ${after:.4}/h after", spec.count, spec.instance_type, spec.image_id),
                instance_ids: ids,
                hourly_cost_after: Some(after),
            })
        };
        self.audited(&who, "run-instances", &region, params, op, change_detail).await
    }

    pub async fn start_instances(&self, who: Principal<'_>, region: Option<String>, ids: Vec<String>) -> Result<ChangeResult, Ec2Failure> {
        let region = self.region_or_default(region).await;
        let params = json!({"instance_ids": ids});
        let op = async {
            self.admit(&who, "start-instances", &region).await?;
            check_size("instance ids", ids.len(), MAX_IDS)?;
            let _held = self.hold_owner(who.agent, who.deadline).await?;
            let owned = self.require_owned(who.agent, &region, &ids, who.deadline).await?;
            // Starting adds to what runs: the same type, AMI, count and cost
            // rules as a launch (the policy may have narrowed since it stopped).
            let to_start: Vec<_> = owned.iter().filter(|i| !ACTIVE_STATES.contains(&i.state.as_str())).collect();
            for i in &to_start {
                who.scope.check_instance_type(&i.instance_type)?;
                who.scope.check_image(&i.image_id)?;
            }
            let starting: Vec<&str> = to_start.iter().map(|i| i.instance_type.as_str()).collect();
            let after = self.check_capacity(who.agent, who.scope, &starting, who.deadline).await?;
            self.client(&region, who.deadline).await.start(&ids, who.scope.dry_run).await?;
            Ok(change(who.scope.dry_run, "start", ids.clone(), Some(after)))
        };
        self.audited(&who, "start-instances", &region, params, op, change_detail).await
    }

    pub async fn stop_instances(&self, who: Principal<'_>, region: Option<String>, ids: Vec<String>) -> Result<ChangeResult, Ec2Failure> {
        self.stop_or_terminate(who, region, ids, "stop-instances").await
    }

    pub async fn terminate_instances(&self, who: Principal<'_>, region: Option<String>, ids: Vec<String>) -> Result<ChangeResult, Ec2Failure> {
        self.stop_or_terminate(who, region, ids, "terminate-instances").await
    }

    async fn stop_or_terminate(&self, who: Principal<'_>, region: Option<String>, ids: Vec<String>, action: &str) -> Result<ChangeResult, Ec2Failure> {
        let region = self.region_or_default(region).await;
        let params = json!({"instance_ids": ids});
        let op = async {
            self.admit(&who, action, &region).await?;
            check_size("instance ids", ids.len(), MAX_IDS)?;
            self.require_owned(who.agent, &region, &ids, who.deadline).await?;
            let ec2 = self.client(&region, who.deadline).await;
            if action == "stop-instances" {
                ec2.stop(&ids, who.scope.dry_run).await?;
                Ok(change(who.scope.dry_run, "stop", ids.clone(), None))
            } else {
                ec2.terminate(&ids, who.scope.dry_run).await?;
                Ok(change(who.scope.dry_run, "terminate", ids.clone(), None))
            }
        };
        self.audited(&who, action, &region, params, op, change_detail).await
    }

    pub async fn create_tags(&self, who: Principal<'_>, region: Option<String>, ids: Vec<String>, tags: Vec<Tag>) -> Result<(), Ec2Failure> {
        self.change_tags(who, region, ids, tags, "create-tags").await
    }

    pub async fn delete_tags(&self, who: Principal<'_>, region: Option<String>, ids: Vec<String>, tags: Vec<Tag>) -> Result<(), Ec2Failure> {
        self.change_tags(who, region, ids, tags, "delete-tags").await
    }

    async fn change_tags(&self, who: Principal<'_>, region: Option<String>, ids: Vec<String>, tags: Vec<Tag>, action: &str) -> Result<(), Ec2Failure> {
        let region = self.region_or_default(region).await;
        let params = json!({"resource_ids": ids, "tags": tags_json(&tags)});
        let dry_run = who.scope.dry_run;
        let op = async {
            self.admit(&who, action, &region).await?;
            check_size("resource ids", ids.len(), MAX_IDS)?;
            check_tags(&tags)?;
            // Only instances the agent owns; other resource kinds are not its to tag.
            self.require_owned(who.agent, &region, &ids, who.deadline).await?;
            let ec2 = self.client(&region, who.deadline).await;
            let pairs = tag_pairs(&tags);
            if action == "create-tags" { ec2.create_tags(&ids, &pairs, dry_run).await } else { ec2.delete_tags(&ids, &pairs, dry_run).await }
        };
        self.audited(&who, action, &region, params, op, |_| (dry_run, format!("{} resources", ids.len()))).await
    }
}

fn change(dry_run: bool, verb: &str, ids: Vec<String>, hourly_cost_after: Option<f64>) -> ChangeResult {
    let summary = if dry_run {
        format!("dry run: would {verb} {}", ids.join(", "))
    } else {
        format!("{verb}: {}", ids.join(", "))
    };
    ChangeResult { dry_run, instance_ids: ids, hourly_cost_after, summary }
}

fn change_detail(c: &ChangeResult) -> (bool, String) {
    (c.dry_run, if c.instance_ids.is_empty() { c.summary.clone() } else { c.instance_ids.join(",") })
}
