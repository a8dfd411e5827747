//! The infrastructure genome: a TOML file naming the EC2 instance groups a
//! deployment should have. Planning compares it with what EC2 reports
//! (instances tagged with the genome's owner); applying launches and
//! terminates to match, within the owner's `aws_ec2` policy; cleanup
//! terminates the owner's genome instances that no group names any more.
//!
//! ```toml
//! id = "shop"                        # tagged agentkernel:genome=shop
//! owner = "infrastructure-architect" # its policy bounds the genome; tagged agentkernel:owner=...
//! region = "us-east-1"               # default: the host's [aws] region
//!
//! [[group]]
//! name = "web"
//! count = 2
//! instance_type = "t3.micro"
//! ami = "ami-12345678"
//! subnet_id = "subnet-..."           # optional
//! security_group_ids = ["sg-..."]    # optional
//! tags = { role = "web" }            # optional; `agentkernel:` keys are reserved
//! ```
//!
//! A group's members are the owner's instances tagged with the genome id
//! and group name. A member matches when its type, AMI, subnet (if the
//! group names one) and security groups (if it names any) are the group's;
//! other members are replaced (terminated, and new ones launched). A
//! matching member whose group tags drifted is retagged. Stopped members
//! count toward `count` and are started (under the same running-count and
//! cost checks as a launch), so a genome always means "this many running".
//!
//! The applied genomes and agents' proposals are kept in SQLite
//! ([`agentkernel_storage::aws::AwsStore`]): `genome_versions` (one current
//! genome per owner agent: its newest row) and `genome_proposals`.
use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::policy::{AwsEc2Scope, Denial, GENOME_TAG, GROUP_TAG, OWNER_TAG, Rule};
use super::{Ec2Failure, Ec2Service, MAX_SECURITY_GROUPS, Principal, check_tag_list, client::Launch, now, tag_value};
use agentkernel_runtime::bindings::agentkernel::agent::aws_ec2 as wit;
use agentkernel_storage::blocking;
use agentkernel_storage::aws::{AuditRecord, AwsStore, StoredGenome, StoredProposal};

/// Instance states that count as a group member (still exists, may run again).
const MEMBER_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];
const ACTIVE_STATES: [&str; 2] = ["pending", "running"];
/// Most groups and instances per group one genome may name.
pub const MAX_GROUPS: usize = 50;
pub const MAX_GROUP_COUNT: u32 = 100;
/// Largest genome, as TOML (files, stored versions and agents' proposals).
pub const MAX_GENOME_BYTES: usize = 64 * 1024;
/// Longest instance type, AMI, subnet and security group id a genome may name.
const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Genome {
    pub id: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, rename = "group")]
    pub groups: Vec<InstanceGroup>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceGroup {
    pub name: String,
    pub count: u32,
    pub instance_type: String,
    pub ami: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GenomeError {
    #[error("invalid genome: {0}")]
    Invalid(String),
}

fn simple_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Genome {
    pub fn parse(text: &str) -> Result<Genome, GenomeError> {
        if text.len() > MAX_GENOME_BYTES {
            return Err(GenomeError::Invalid(format!("{} bytes of TOML; at most {MAX_GENOME_BYTES}", text.len())));
        }
        let g: Genome = toml::from_str(text).map_err(|e| GenomeError::Invalid(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a genome always serializes")
    }

    pub fn validate(&self) -> Result<(), GenomeError> {
        let bad = |m: String| Err(GenomeError::Invalid(m));
        if !simple_name(&self.id) {
            return bad(format!("id `{}` must be 1-64 of a-z A-Z 0-9 - _ .", self.id));
        }
        if !simple_name(&self.owner) {
            return bad(format!("owner `{}` must be an agent name", self.owner));
        }
        if self.groups.len() > MAX_GROUPS {
            return bad(format!("{} groups; at most {MAX_GROUPS}", self.groups.len()));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if !simple_name(&g.name) {
                return bad(format!("group name `{}` must be 1-64 of a-z A-Z 0-9 - _ .", g.name));
            }
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return bad(format!("group `{}` is named twice", g.name));
            }
            if g.count > MAX_GROUP_COUNT {
                return bad(format!("group `{}`: count {} exceeds {MAX_GROUP_COUNT}", g.name, g.count));
            }
            if g.instance_type.is_empty() || g.ami.is_empty() {
                return bad(format!("group `{}` needs instance_type and ami", g.name));
            }
            let ids = [&g.instance_type, &g.ami].into_iter().chain(&g.subnet_id).chain(&g.security_group_ids);
            if let Some(id) = ids.into_iter().find(|id| id.len() > MAX_ID_LEN) {
                return bad(format!("group `{}`: `{}...` is longer than {MAX_ID_LEN} bytes", g.name, super::clip(id, 40)));
            }
            if g.security_group_ids.len() > MAX_SECURITY_GROUPS {
                return bad(format!(
                    "group `{}`: {} security groups; at most {MAX_SECURITY_GROUPS}",
                    g.name,
                    g.security_group_ids.len()
                ));
            }
            if let Err(e) = check_tag_list(g.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                let why = match e {
                    Ec2Failure::Denied(d) => d.message,
                    other => other.to_string(),
                };
                return bad(format!("group `{}`: {why}", g.name));
            }
        }
        if let Some(r) = self.region.as_deref().filter(|r| r.is_empty() || r.len() > 64) {
            return bad(format!("region `{}` is not a region name", super::clip(r, 40)));
        }
        let size = self.to_toml().len();
        if size > MAX_GENOME_BYTES {
            return bad(format!("{size} bytes as TOML; at most {MAX_GENOME_BYTES}"));
        }
        Ok(())
    }

    pub fn to_wit(&self, default_region: &str) -> wit::Genome {
        wit::Genome {
            id: self.id.clone(),
            owner: self.owner.clone(),
            region: self.region.clone().unwrap_or_else(|| default_region.to_string()),
            groups: self
                .groups
                .iter()
                .map(|g| wit::InstanceGroup {
                    name: g.name.clone(),
                    count: g.count,
                    instance_type: g.instance_type.clone(),
                    image_id: g.ami.clone(),
                    subnet_id: g.subnet_id.clone(),
                    security_group_ids: g.security_group_ids.clone(),
                    tags: g.tags.iter().map(|(k, v)| wit::Tag { key: k.clone(), value: v.clone() }).collect(),
                })
                .collect(),
        }
    }

    pub fn from_wit(g: wit::Genome) -> Genome {
        Genome {
            id: g.id,
            owner: g.owner,
            region: (!g.region.is_empty()).then_some(g.region),
            groups: g
                .groups
                .into_iter()
                .map(|g| InstanceGroup {
                    name: g.name,
                    count: g.count,
                    instance_type: g.instance_type,
                    ami: g.image_id,
                    subnet_id: g.subnet_id,
                    security_group_ids: g.security_group_ids,
                    tags: g.tags.into_iter().map(|t| (t.key, t.value)).collect(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Launch,
    Terminate,
    /// Start stopped members (they count toward the group's `count`).
    Start,
    /// Set the group's tags on members whose tags drifted.
    Retag,
}

impl ChangeKind {
    /// The `aws-ec2` action this change is made with: what an auto-applied
    /// plan needs its owner's policy to allow.
    pub fn action(self) -> &'static str {
        match self {
            ChangeKind::Launch => "run-instances",
            ChangeKind::Terminate => "terminate-instances",
            ChangeKind::Start => "start-instances",
            ChangeKind::Retag => "create-tags",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanChange {
    pub group: String,
    pub kind: ChangeKind,
    pub count: u32,
    pub instance_type: String,
    pub image_id: String,
    /// Terminations, starts and retags: which instances.
    pub instance_ids: Vec<String>,
    pub reason: String,
}

/// How EC2 would change to match a genome (or, for cleanup, to drop what it no longer names).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub genome_id: String,
    pub owner: String,
    pub region: String,
    pub changes: Vec<PlanChange>,
    /// Groups already matching: (group, instances).
    pub unchanged: Vec<(String, u32)>,
    /// Estimated USD/h of the owner's pending and running instances in the region, now and after.
    pub hourly_cost_before: f64,
    pub hourly_cost_after: f64,
    /// Instance types with no price in `[aws.prices]` (counted as 0 above).
    pub unpriced: Vec<String>,
    /// Pending + running instances the owner has in the region, now and after.
    pub running_before: u32,
    pub running_after: u32,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn launches(&self) -> impl Iterator<Item = &PlanChange> {
        self.changes.iter().filter(|c| c.kind == ChangeKind::Launch)
    }

    fn of_kind(&self, kind: ChangeKind) -> impl Iterator<Item = &PlanChange> {
        self.changes.iter().filter(move |c| c.kind == kind)
    }

    /// For guests. WIT knows launches and terminations: a start is shown as
    /// a launch that names the (stopped) instances it brings back; retags
    /// change no capacity or cost and are left out.
    pub fn to_wit(&self) -> wit::Plan {
        wit::Plan {
            changes: self
                .changes
                .iter()
                .filter_map(|c| {
                    let kind = match c.kind {
                        ChangeKind::Launch | ChangeKind::Start => wit::ChangeKind::Launch,
                        ChangeKind::Terminate => wit::ChangeKind::Terminate,
                        ChangeKind::Retag => return None,
                    };
                    Some(wit::PlanChange {
                        group: c.group.clone(),
                        kind,
                        count: c.count,
                        instance_type: c.instance_type.clone(),
                        instance_ids: c.instance_ids.clone(),
                    })
                })
                .collect(),
            hourly_cost_before: self.hourly_cost_before,
            hourly_cost_after: self.hourly_cost_after,
        }
    }

    /// For people: one line per change and the cost before and after.
    pub fn render(&self) -> String {
        let mut out = format!("genome `{}` (owner {}, region {}):\n", self.genome_id, self.owner, self.region);
        if self.changes.is_empty() {
            out.push_str("  no changes: EC2 matches the genome\n");
        }
        for c in &self.changes {
            let ids = c.instance_ids.join(", ");
            out.push_str(&match c.kind {
                ChangeKind::Launch => format!(
                    "  + launch {} x {} ({}) for group `{}`: {}\n",
                    c.count, c.instance_type, c.image_id, c.group, c.reason
                ),
                ChangeKind::Terminate => format!("  - terminate {ids} ({}) of group `{}`: {}\n", c.instance_type, c.group, c.reason),
                ChangeKind::Start => format!("  > start {ids} ({}) of group `{}`: {}\n", c.instance_type, c.group, c.reason),
                ChangeKind::Retag => format!("  ~ retag {ids} of group `{}`: {}\n", c.group, c.reason),
            });
        }
        for (g, n) in &self.unchanged {
            out.push_str(&format!("  = group `{g}`: {n} instances, unchanged\n"));
        }
        out.push_str(&format!(
            "  running instances: {} -> {}; estimated cost: ${:.4}/h -> ${:.4}/h\n",
            self.running_before, self.running_after, self.hourly_cost_before, self.hourly_cost_after
        ));
        if !self.unpriced.is_empty() {
            out.push_str(&format!("  (no price in [aws.prices] for: {}; counted as $0)\n", self.unpriced.join(", ")));
        }
        out
    }
}

/// What applying did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    pub launched: Vec<String>,
    pub terminated: Vec<String>,
    pub started: Vec<String>,
    pub retagged: Vec<String>,
}

impl ApplyReport {
    pub fn is_empty(&self) -> bool {
        self.launched.is_empty() && self.terminated.is_empty() && self.started.is_empty() && self.retagged.is_empty()
    }

    pub fn summary(&self) -> String {
        let mut out = format!(
            "launched {} ({}), terminated {} ({})",
            self.launched.len(),
            self.launched.join(", "),
            self.terminated.len(),
            self.terminated.join(", ")
        );
        for (verb, ids) in [("started", &self.started), ("retagged", &self.retagged)] {
            if !ids.is_empty() {
                out.push_str(&format!(", {verb} {} ({})", ids.len(), ids.join(", ")));
            }
        }
        out
    }
}

/// Result of an agent's proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalOutcome {
    pub id: i64,
    pub status: String,
    pub plan: Plan,
    pub message: String,
}

/// Which plan [`Ec2Service::apply_plan`] makes (under the owner's lock) and carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanMode {
    /// Match the genome's groups ([`Ec2Service::plan`]); on success the
    /// genome becomes its owner's current one.
    Apply,
    /// Drop what the genome no longer names ([`Ec2Service::cleanup_plan`]).
    Cleanup,
}

/// Who decided that a plan may be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// An operator (CLI or admin API): the owner's limits apply, its `actions` do not.
    Admin,
    /// The owner's own `auto_apply`: its `actions` must also allow every change the plan makes.
    Auto,
}

fn storage_failure(e: impl std::fmt::Display) -> Ec2Failure {
    Ec2Failure::Unavailable(format!("genome storage: {e}"))
}

/// How a member differs from its group (empty: it matches).
fn differences(i: &wit::Instance, g: &InstanceGroup) -> Vec<&'static str> {
    let mut diff = Vec::new();
    if i.instance_type != g.instance_type {
        diff.push("instance type");
    }
    if i.image_id != g.ami {
        diff.push("AMI");
    }
    if g.subnet_id.as_ref().is_some_and(|s| i.subnet_id.as_deref() != Some(s)) {
        diff.push("subnet");
    }
    // No security groups in the genome means EC2's default: not compared.
    if !g.security_group_ids.is_empty() {
        let mut want = g.security_group_ids.clone();
        let mut have = i.security_group_ids.clone();
        want.sort();
        want.dedup();
        have.sort();
        have.dedup();
        if want != have {
            diff.push("security groups");
        }
    }
    diff
}

/// The group's tags a member lacks or carries with another value.
fn drifted_tags<'a>(i: &wit::Instance, g: &'a InstanceGroup) -> Vec<(&'a String, &'a String)> {
    g.tags.iter().filter(|(k, v)| tag_value(i, k) != Some(v.as_str())).collect()
}

/// `(outcome, rule, detail)` of an audit row for `result`.
fn audit_fields<T>(result: &Result<T, Ec2Failure>, ok_detail: impl FnOnce(&T) -> String) -> (&'static str, Option<String>, String) {
    match result {
        Ok(v) => ("ok", None, ok_detail(v)),
        Err(Ec2Failure::Denied(d)) => ("denied", Some(d.rule.name().to_string()), d.message.clone()),
        Err(e) => ("error", None, e.to_string()),
    }
}

impl Ec2Service {
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn AwsStore) -> Result<T, agentkernel_storage::StorageError> + Send + 'static,
    ) -> Result<T, Ec2Failure> {
        let store = self.store.clone();
        blocking::call(blocking::DEFAULT_TIMEOUT, move || op(&*store)).await.map_err(storage_failure)
    }

    pub async fn genome_region(&self, genome: &Genome) -> String {
        match &genome.region {
            Some(r) => r.clone(),
            None => self.default_region().await,
        }
    }

    fn price_of(&self, t: &str, unpriced: &mut Vec<String>) -> f64 {
        self.config.price(t).unwrap_or_else(|| {
            if !unpriced.iter().any(|u| u == t) {
                unpriced.push(t.to_string());
            }
            0.0
        })
    }

    /// Compares `genome` with the owner's instances in its region.
    pub async fn plan(&self, genome: &Genome, deadline: Option<Instant>) -> Result<Plan, Ec2Failure> {
        let region = self.genome_region(genome).await;
        let owned = self.owned_instances(&genome.owner, &region, &MEMBER_STATES, deadline).await?;
        let is_active = |i: &wit::Instance| ACTIVE_STATES.contains(&i.state.as_str());
        let mut unpriced = Vec::new();
        let active: Vec<_> = owned.iter().filter(|i| is_active(i)).collect();
        let before: f64 = active.iter().fold(0.0, |sum, i| sum + self.price_of(&i.instance_type, &mut unpriced));
        let mut after = before;
        let mut running_after = active.len() as i64;
        let mut changes = Vec::new();
        let mut unchanged = Vec::new();
        for g in &genome.groups {
            let mut members: Vec<_> = owned
                .iter()
                .filter(|i| tag_value(i, GENOME_TAG) == Some(&genome.id) && tag_value(i, GROUP_TAG) == Some(&g.name))
                .collect();
            // Running members first, so those kept are those already
            // serving (surplus stopped ones go first); then by id, for a stable plan.
            members.sort_by(|a, b| (!is_active(a), &a.instance_id).cmp(&(!is_active(b), &b.instance_id)));
            let (matching, stale): (Vec<_>, Vec<_>) = members.into_iter().partition(|i| differences(i, g).is_empty());
            let keep = matching.len().min(g.count as usize);
            let (kept, excess) = matching.split_at(keep);
            let mut differing: Vec<&str> = stale.iter().flat_map(|i| differences(i, g)).collect();
            differing.sort();
            differing.dedup();
            let stale_reason = format!("{} differ from the genome (replaced)", differing.join(", "));
            let reasons = [(&stale[..], stale_reason.as_str()), (excess, "more instances than the genome's count")];
            for (instances, reason) in reasons {
                let Some(first) = instances.first() else { continue };
                for i in instances.iter().filter(|i| is_active(i)) {
                    after -= self.price_of(&i.instance_type, &mut unpriced);
                    running_after -= 1;
                }
                changes.push(PlanChange {
                    group: g.name.clone(),
                    kind: ChangeKind::Terminate,
                    count: instances.len() as u32,
                    instance_type: first.instance_type.clone(),
                    image_id: first.image_id.clone(),
                    instance_ids: instances.iter().map(|i| i.instance_id.clone()).collect(),
                    reason: reason.to_string(),
                });
            }
            // A genome's count means running: stopped members are started.
            let stopped: Vec<_> = kept.iter().filter(|i| !is_active(i)).collect();
            if !stopped.is_empty() {
                after += self.price_of(&g.instance_type, &mut unpriced) * stopped.len() as f64;
                running_after += stopped.len() as i64;
                changes.push(PlanChange {
                    group: g.name.clone(),
                    kind: ChangeKind::Start,
                    count: stopped.len() as u32,
                    instance_type: g.instance_type.clone(),
                    image_id: g.ami.clone(),
                    instance_ids: stopped.iter().map(|i| i.instance_id.clone()).collect(),
                    reason: "stopped; the genome counts it as running".into(),
                });
            }
            let drifted: Vec<_> = kept.iter().filter(|i| !drifted_tags(i, g).is_empty()).collect();
            if let Some(first) = drifted.first() {
                let tags: Vec<String> = drifted_tags(first, g).iter().map(|(k, v)| format!("{k}={v}")).collect();
                changes.push(PlanChange {
                    group: g.name.clone(),
                    kind: ChangeKind::Retag,
                    count: drifted.len() as u32,
                    instance_type: g.instance_type.clone(),
                    image_id: g.ami.clone(),
                    instance_ids: drifted.iter().map(|i| i.instance_id.clone()).collect(),
                    reason: format!("group tags missing or changed (e.g. {})", tags.join(", ")),
                });
            }
            let missing = g.count.saturating_sub(keep as u32);
            if missing > 0 {
                after += self.price_of(&g.instance_type, &mut unpriced) * f64::from(missing);
                running_after += i64::from(missing);
                changes.push(PlanChange {
                    group: g.name.clone(),
                    kind: ChangeKind::Launch,
                    count: missing,
                    instance_type: g.instance_type.clone(),
                    image_id: g.ami.clone(),
                    instance_ids: vec![],
                    reason: format!("{keep} of {} exist", g.count),
                });
            }
            if stale.is_empty() && excess.is_empty() && stopped.is_empty() && drifted.is_empty() && missing == 0 {
                unchanged.push((g.name.clone(), g.count));
            }
        }
        Ok(Plan {
            genome_id: genome.id.clone(),
            owner: genome.owner.clone(),
            region,
            changes,
            unchanged,
            hourly_cost_before: before,
            hourly_cost_after: after.max(0.0),
            unpriced,
            running_before: active.len() as u32,
            running_after: running_after.max(0) as u32,
        })
    }

    /// The owner's instances launched for a genome that `genome` no longer
    /// names (another genome id, or a group it dropped). Instances the owner
    /// launched outside any genome are left alone.
    pub async fn cleanup_plan(&self, genome: &Genome, deadline: Option<Instant>) -> Result<Plan, Ec2Failure> {
        let region = self.genome_region(genome).await;
        let owned = self.owned_instances(&genome.owner, &region, &MEMBER_STATES, deadline).await?;
        let mut unpriced = Vec::new();
        let active: Vec<_> = owned.iter().filter(|i| ACTIVE_STATES.contains(&i.state.as_str())).collect();
        let before: f64 = active.iter().fold(0.0, |sum, i| sum + self.price_of(&i.instance_type, &mut unpriced));
        let mut after = before;
        let mut running_after = active.len() as u32;
        let mut by_label: BTreeMap<(String, String), Vec<&wit::Instance>> = BTreeMap::new();
        for i in &owned {
            let Some(gid) = tag_value(i, GENOME_TAG) else { continue };
            let group = tag_value(i, GROUP_TAG).unwrap_or("");
            let named = gid == genome.id && genome.groups.iter().any(|g| g.name == group);
            if !named {
                by_label.entry((gid.to_string(), group.to_string())).or_default().push(i);
            }
        }
        let mut changes = Vec::new();
        for ((gid, group), instances) in by_label {
            for i in &instances {
                if ACTIVE_STATES.contains(&i.state.as_str()) {
                    after -= self.price_of(&i.instance_type, &mut unpriced);
                    running_after -= 1;
                }
            }
            changes.push(PlanChange {
                group: group.clone(),
                kind: ChangeKind::Terminate,
                count: instances.len() as u32,
                instance_type: instances[0].instance_type.clone(),
                image_id: instances[0].image_id.clone(),
                instance_ids: instances.iter().map(|i| i.instance_id.clone()).collect(),
                reason: if gid == genome.id {
                    format!("group `{group}` is no longer in genome `{gid}`")
                } else {
                    format!("launched for genome `{gid}`, which is not the current genome")
                },
            });
        }
        Ok(Plan {
            genome_id: genome.id.clone(),
            owner: genome.owner.clone(),
            region,
            changes,
            unchanged: vec![],
            hourly_cost_before: before,
            hourly_cost_after: after.max(0.0),
            unpriced,
            running_before: active.len() as u32,
            running_after,
        })
    }

    /// The owner's policy limits, applied to a plan: region, types, AMIs,
    /// running count and hourly cost across the owner's regions. (Who
    /// approved it, an admin or the owner's `auto_apply`, decides whether
    /// `actions` matter: [`check_plan_actions`].)
    pub async fn check_plan(&self, plan: &Plan, owner_scope: &AwsEc2Scope, deadline: Option<Instant>) -> Result<(), Ec2Failure> {
        owner_scope.check_region(&plan.region, &self.default_region().await)?;
        // A start brings back an instance as much as a launch makes one:
        // a policy narrowed since it stopped must refuse it too.
        for c in plan.changes.iter().filter(|c| matches!(c.kind, ChangeKind::Launch | ChangeKind::Start)) {
            owner_scope.check_instance_type(&c.instance_type)?;
            owner_scope.check_image(&c.image_id)?;
        }
        // Launches and starts add to what runs; terminations and retags never do.
        let adding: Vec<&str> = plan
            .changes
            .iter()
            .filter(|c| matches!(c.kind, ChangeKind::Launch | ChangeKind::Start))
            .flat_map(|c| std::iter::repeat_n(c.instance_type.as_str(), c.count as usize))
            .collect();
        if adding.is_empty() {
            return Ok(());
        }
        let active = self.active_across(&plan.owner, owner_scope, deadline).await?;
        let terminating: Vec<&str> = plan.of_kind(ChangeKind::Terminate).flat_map(|c| c.instance_ids.iter().map(String::as_str)).collect();
        let staying: Vec<_> = active.iter().filter(|i| !terminating.contains(&i.instance_id.as_str())).collect();
        owner_scope.check_running(staying.len() as u32, adding.len() as u32)?;
        let before = self.config.hourly(active.iter().map(|i| i.instance_type.as_str()));
        let after = self
            .config
            .hourly(staying.iter().map(|i| i.instance_type.as_str()))
            .and_then(|s| self.config.hourly(adding.iter().copied()).map(|a| s + a));
        owner_scope.check_cost(before.unwrap_or(0.0), after)?;
        Ok(())
    }

    /// Makes the plan's changes (never in dry-run mode: approval happened).
    /// On a failure, also returns what had already been done.
    async fn execute(&self, genome: &Genome, plan: &Plan, deadline: Option<Instant>) -> Result<ApplyReport, (ApplyReport, Ec2Failure)> {
        let ec2 = self.client(&plan.region, deadline).await;
        let mut report = ApplyReport::default();
        let ids_of = |kind| plan.of_kind(kind).flat_map(|c| c.instance_ids.clone()).collect::<Vec<_>>();
        let terminate = ids_of(ChangeKind::Terminate);
        if !terminate.is_empty() {
            if let Err(e) = ec2.terminate(&terminate, false).await {
                return Err((report, e));
            }
            report.terminated = terminate;
        }
        let start = ids_of(ChangeKind::Start);
        if !start.is_empty() {
            if let Err(e) = ec2.start(&start, false).await {
                return Err((report, e));
            }
            report.started = start;
        }
        for c in plan.of_kind(ChangeKind::Retag) {
            let Some(g) = genome.groups.iter().find(|g| g.name == c.group) else { continue };
            let tags: Vec<(String, String)> = g.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if let Err(e) = ec2.create_tags(&c.instance_ids, &tags, false).await {
                return Err((report, e));
            }
            report.retagged.extend(c.instance_ids.iter().cloned());
        }
        for c in plan.launches() {
            let Some(g) = genome.groups.iter().find(|g| g.name == c.group) else { continue };
            let mut tags: Vec<(String, String)> = g.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            tags.push((OWNER_TAG.into(), genome.owner.clone()));
            tags.push((GENOME_TAG.into(), genome.id.clone()));
            tags.push((GROUP_TAG.into(), g.name.clone()));
            tags.push(("Name".into(), format!("{}-{}", genome.id, g.name)));
            let launch = Launch {
                image_id: g.ami.clone(),
                instance_type: g.instance_type.clone(),
                count: c.count,
                subnet_id: g.subnet_id.clone(),
                security_group_ids: g.security_group_ids.clone(),
                tags,
            };
            match ec2.run(&launch, false).await {
                Ok(ids) => report.launched.extend(ids),
                Err(e) => return Err((report, e)),
            }
        }
        Ok(report)
    }

    /// Plans (`mode`), checks the plan against the owner's policy and makes
    /// it, all under the owner's lock: a plan made before the lock could be
    /// stale (a concurrent apply may have launched since) and would then
    /// launch twice. With [`PlanMode::Apply`] the genome then becomes its
    /// owner's current one. `by` (`admin`, `admin:<token>` or the agent) is
    /// what the audit log shows; the audit row keeps what was done even when
    /// a later step fails. `deadline` is the calling guest's, for
    /// auto-apply: past it the remaining changes are not made (a later
    /// apply finishes the job).
    #[allow(clippy::too_many_arguments)]
    pub async fn apply_plan(
        &self,
        by: &str,
        action: &str,
        genome: &Genome,
        mode: PlanMode,
        approval: Approval,
        owner_scope: &AwsEc2Scope,
        deadline: Option<Instant>,
    ) -> Result<(Plan, ApplyReport), Ec2Failure> {
        // Across processes too: a CLI apply racing a server's launch.
        let _held = self.hold_owner(&genome.owner, deadline).await?;
        let planned = match mode {
            PlanMode::Apply => self.plan(genome, deadline).await,
            PlanMode::Cleanup => self.cleanup_plan(genome, deadline).await,
        };
        let (region, changes) = match &planned {
            Ok(p) => (p.region.clone(), json!(p.changes)),
            Err(_) => (self.genome_region(genome).await, json!([])),
        };
        let result = async {
            let plan = planned?;
            if approval == Approval::Auto {
                check_plan_actions(&plan, owner_scope)?;
            }
            self.check_plan(&plan, owner_scope, deadline).await?;
            let report = self.execute(genome, &plan, deadline).await.map_err(|(done, e)| {
                if done.is_empty() { e } else { e.with_note(&format!("already done before the failure: {}", done.summary())) }
            })?;
            if mode == PlanMode::Apply {
                let (owner, text, by) = (genome.owner.clone(), genome.to_toml(), by.to_string());
                self.blocking(move |s| s.genome_record(&owner, &text, &by)).await?;
            }
            Ok((plan, report))
        }
        .await;
        let (outcome, rule, detail) = audit_fields(&result, |(_, r)| r.summary());
        self.audit(AuditRecord {
            id: 0,
            at: now(),
            agent: by.to_string(),
            action: action.to_string(),
            region,
            params: json!({"genome": genome.id, "owner": genome.owner, "changes": changes}),
            outcome: outcome.into(),
            rule,
            detail,
        })
        .await;
        result
    }

    /// Plans, then (with `approve`) applies and records the genome as its owner's current one.
    pub async fn apply_genome(&self, by: &str, genome: &Genome, owner_scope: &AwsEc2Scope, approve: bool) -> Result<(Plan, Option<ApplyReport>), Ec2Failure> {
        if !approve {
            let plan = self.plan(genome, None).await?;
            // Still say whether policy would refuse it.
            self.check_plan(&plan, owner_scope, None).await?;
            return Ok((plan, None));
        }
        let (plan, report) = self.apply_plan(by, "genome-apply", genome, PlanMode::Apply, Approval::Admin, owner_scope, None).await?;
        Ok((plan, Some(report)))
    }

    /// Terminates the owner's genome instances `genome` no longer names.
    pub async fn cleanup(&self, by: &str, genome: &Genome, owner_scope: &AwsEc2Scope, approve: bool) -> Result<(Plan, Option<ApplyReport>), Ec2Failure> {
        if !approve {
            return Ok((self.cleanup_plan(genome, None).await?, None));
        }
        let (plan, report) = self.apply_plan(by, "genome-cleanup", genome, PlanMode::Cleanup, Approval::Admin, owner_scope, None).await?;
        Ok((plan, Some(report)))
    }

    /// `owner`'s current genome (the one last applied for it).
    pub async fn current_genome(&self, owner: &str) -> Result<Option<Genome>, Ec2Failure> {
        let owner = owner.to_string();
        let stored = self.blocking(move |s| s.genome_current(&owner)).await?;
        match stored {
            None => Ok(None),
            Some(g) => Genome::parse(&g.toml).map(Some).map_err(|e| Ec2Failure::Aws(format!("stored genome: {e}"))),
        }
    }

    /// Every owner's current genome, newest first.
    pub async fn current_genomes(&self) -> Result<Vec<StoredGenome>, Ec2Failure> {
        self.blocking(|s| s.genome_current_all()).await
    }

    /// The capability's `current-genome`: the calling agent's own genome
    /// (others' are not its business), audited like every call.
    pub async fn read_genome(&self, who: Principal<'_>) -> Result<Option<wit::Genome>, Ec2Failure> {
        let region = self.default_region().await;
        let op = async {
            who.scope.check_action("current-genome")?;
            let g = self.current_genome(who.agent).await?;
            Ok(g.map(|g| g.to_wit(&region)))
        };
        self.audited(&who, "current-genome", &region, json!({}), op, |g| {
            (false, g.as_ref().map_or("no genome".into(), |g| format!("genome {}", g.id)))
        })
        .await
    }

    /// An agent's proposal: validated, planned and stored; applied at once
    /// when its scope allows auto-apply (and is not dry-run), its actions
    /// allow every change the plan makes, and the plan is within its limits.
    pub async fn propose_genome(&self, who: Principal<'_>, genome: Genome, reason: String) -> Result<ProposalOutcome, Ec2Failure> {
        let region = match &genome.region {
            Some(r) => super::clip(r, 64).to_string(),
            None => self.default_region().await,
        };
        let params = json!({"genome": genome.id, "reason": reason, "groups": genome.groups.len()});
        let op = async {
            self.admit(&who, "propose-genome", &region).await?;
            if genome.owner != who.agent {
                return Err(Ec2Failure::Denied(Denial {
                    rule: Rule::GenomeOwner,
                    message: format!("the genome names owner `{}`; an agent may only propose genomes it owns", genome.owner),
                }));
            }
            // Before anything is planned or stored: a malformed or oversized
            // proposal leaves no trace but its audit row.
            genome.validate().map_err(|e| Ec2Failure::InvalidParameter(e.to_string()))?;
            if reason.len() > 4096 {
                return Err(Ec2Failure::InvalidParameter("reason is longer than 4096 bytes".into()));
            }
            let mut plan = self.plan(&genome, who.deadline).await?;
            let (agent, text, why) = (who.agent.to_string(), genome.to_toml(), reason.clone());
            let id = self.blocking(move |s| s.proposal_add(&agent, &why, &text)).await?;
            let (status, message) = if !who.scope.auto_apply {
                ("pending".to_string(), format!("waiting for an admin: agentkernel genome approve {id}"))
            } else if who.scope.dry_run {
                ("pending".to_string(), format!("dry-run mode: not applied; an admin can run agentkernel genome approve {id}"))
            } else if !self.blocking(move |s| s.proposal_transition(id, "pending", "applying", "auto-applying")).await? {
                // An admin acted on it between the insert and here.
                let now = self.blocking(move |s| s.proposal_get(id)).await?;
                let p = now.ok_or_else(|| storage_failure(format!("proposal {id} vanished")))?;
                return Ok(ProposalOutcome { id, status: p.status, plan, message: p.message });
            } else {
                let applied = self
                    .apply_plan(who.agent, "genome-auto-apply", &genome, PlanMode::Apply, Approval::Auto, who.scope, who.deadline)
                    .await;
                match applied {
                    Ok((fresh, report)) => {
                        plan = fresh;
                        ("applied".to_string(), format!("auto-applied: {}", report.summary()))
                    }
                    Err(Ec2Failure::Denied(d)) => (
                        "pending".to_string(),
                        format!("not auto-applied (policy rule `{}`: {}); waiting for an admin", d.rule, d.message),
                    ),
                    Err(e) => ("failed".to_string(), format!("auto-apply failed: {e}")),
                }
            };
            let (st, msg) = (status.clone(), message.clone());
            self.blocking(move |s| s.proposal_set_status(id, &st, &msg)).await?;
            Ok(ProposalOutcome { id, status, plan, message })
        };
        self.audited(&who, "propose-genome", &region, params, op, |p| (false, format!("proposal {} {}", p.id, p.status)))
            .await
    }

    /// Writes an admin's decision on a proposal to the audit log.
    async fn audit_review(&self, by: &str, action: &str, region: String, params: serde_json::Value, result: Result<(), &Ec2Failure>, ok: &str) {
        let (outcome, rule, detail) = match result {
            Ok(()) => ("ok", None, ok.to_string()),
            Err(Ec2Failure::Denied(d)) => ("denied", Some(d.rule.name().to_string()), d.message.clone()),
            Err(e) => ("error", None, e.to_string()),
        };
        if let Err(e) = result {
            tracing::info!(by, action, code = e.code(), "proposal review refused or failed: {e}");
        }
        self.audit(AuditRecord { id: 0, at: now(), agent: by.to_string(), action: action.to_string(), region, params, outcome: outcome.into(), rule, detail })
            .await;
    }

    /// The proposal's genome region (for audit rows), else the host's.
    async fn proposal_region(&self, p: Option<&StoredProposal>) -> String {
        match p.and_then(|p| Genome::parse(&p.toml).ok()) {
            Some(g) => self.genome_region(&g).await,
            None => self.default_region().await,
        }
    }

    /// Admin: applies a pending proposal within its owner's policy. `by`
    /// names the admin in the audit log and the proposal's message. The
    /// proposal is claimed (`pending` → `applying`) in one statement
    /// first, so of two concurrent approvals exactly one applies it.
    pub async fn approve_proposal(
        &self,
        id: i64,
        by: &str,
        owner_scope: impl FnOnce(&str) -> Option<AwsEc2Scope>,
    ) -> Result<(StoredProposal, Plan, ApplyReport), Ec2Failure> {
        let found = self.blocking(move |s| s.proposal_get(id)).await;
        let region = self.proposal_region(found.as_ref().ok().and_then(Option::as_ref)).await;
        let claimed = async {
            let p = found?.ok_or_else(|| Ec2Failure::InvalidParameter(format!("no proposal {id}")))?;
            if p.status != "pending" {
                return Err(Ec2Failure::InvalidParameter(format!("proposal {id} is {}, not pending", p.status)));
            }
            let genome = Genome::parse(&p.toml).map_err(|e| Ec2Failure::InvalidParameter(e.to_string()))?;
            let scope = owner_scope(&genome.owner).ok_or_else(|| {
                Ec2Failure::Denied(Denial { rule: Rule::Action, message: format!("genome owner `{}` has no aws_ec2 grant", genome.owner) })
            })?;
            let msg = format!("being applied (approved by {by})");
            if !self.blocking(move |s| s.proposal_transition(id, "pending", "applying", &msg)).await? {
                let status = self.blocking(move |s| s.proposal_get(id)).await?.map_or("gone".to_string(), |p| p.status);
                return Err(Ec2Failure::InvalidParameter(format!("proposal {id} is {status}, not pending")));
            }
            Ok((p, genome, scope))
        }
        .await;
        let (p, genome, scope) = match claimed {
            Ok(v) => v,
            Err(e) => {
                // apply_plan writes the row of an approval that got that far; this one did not.
                self.audit_review(by, "genome-approve", region, json!({"proposal": id}), Err(&e), "").await;
                return Err(e);
            }
        };
        let result = self.apply_plan(by, "genome-approve", &genome, PlanMode::Apply, Approval::Admin, &scope, None).await;
        let (status, message) = match &result {
            Ok((_, r)) => ("applied", format!("approved by {by}: {}", r.summary())),
            Err(e) => ("failed", format!("approval by {by} failed: {e}")),
        };
        let (st, msg) = (status.to_string(), message);
        self.blocking(move |s| s.proposal_set_status(id, &st, &msg)).await?;
        let (plan, report) = result?;
        let p = self.blocking(move |s| s.proposal_get(id)).await?.unwrap_or(p);
        Ok((p, plan, report))
    }

    /// Admin: marks a pending proposal rejected (atomically, like approval).
    pub async fn reject_proposal(&self, id: i64, by: &str, why: &str) -> Result<(), Ec2Failure> {
        let found = self.blocking(move |s| s.proposal_get(id)).await;
        let region = self.proposal_region(found.as_ref().ok().and_then(Option::as_ref)).await;
        let why = super::clip(why, 4096).to_string();
        let msg = format!("rejected by {by}: {why}");
        let result = async {
            let p = found?.ok_or_else(|| Ec2Failure::InvalidParameter(format!("no proposal {id}")))?;
            if !self.blocking(move |s| s.proposal_transition(id, "pending", "rejected", &msg)).await? {
                let status = self.blocking(move |s| s.proposal_get(id)).await?.map_or(p.status, |p| p.status);
                return Err(Ec2Failure::InvalidParameter(format!("proposal {id} is {status}, not pending")));
            }
            Ok(())
        }
        .await;
        self.audit_review(by, "genome-reject", region, json!({"proposal": id, "reason": why}), result.as_ref().copied(), &format!("proposal {id} rejected")).await;
        result
    }
}

/// For auto-apply: every change the plan makes must be an action the
/// owner's policy allows (proposing is not permission to launch).
pub fn check_plan_actions(plan: &Plan, scope: &AwsEc2Scope) -> Result<(), Denial> {
    for c in &plan.changes {
        if let Err(d) = scope.check_action(c.kind.action()) {
            return Err(Denial {
                rule: Rule::Action,
                message: format!("auto-apply would {} instances of group `{}`, but {}", verb(c.kind), c.group, d.message),
            });
        }
    }
    Ok(())
}

fn verb(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Launch => "launch",
        ChangeKind::Terminate => "terminate",
        ChangeKind::Start => "start",
        ChangeKind::Retag => "retag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        id = "shop"
        owner = "infrastructure-architect"
        region = "us-east-1"
        [[group]]
        name = "web"
        count = 2
        instance_type = "t3.micro"
        ami = "ami-12345678"
        tags = { role = "web" }
    "#;

    #[test]
    fn genome_parses_and_round_trips_through_toml_and_wit() {
        let g = Genome::parse(EXAMPLE).unwrap();
        assert_eq!(g.groups[0].count, 2);
        assert_eq!(Genome::parse(&g.to_toml()).unwrap(), g);
        assert_eq!(Genome::from_wit(g.to_wit("us-east-1")), g);
    }

    #[test]
    fn malformed_genomes_are_clear_errors() {
        let e = Genome::parse("id = \"x\"").unwrap_err().to_string();
        assert!(e.contains("owner"), "{e}");
        let dup = format!("{EXAMPLE}\n[[group]]\nname = \"web\"\ncount = 1\ninstance_type = \"t3.micro\"\nami = \"ami-1\"\n");
        assert!(Genome::parse(&dup).unwrap_err().to_string().contains("named twice"));
        let reserved = EXAMPLE.replace("role = \"web\"", "\"agentkernel:owner\" = \"someone\"");
        assert!(Genome::parse(&reserved).unwrap_err().to_string().contains("reserved"));
        assert!(Genome::parse(&EXAMPLE.replace("count = 2", "count = 100000")).is_err());
    }
}
