//! How policy scopes an `aws_ec2` grant, and the rules that refuse calls.
//!
//! ```toml
//! [agents.infrastructure-architect]
//! aws_ec2 = { actions = ["describe-*", "run-instances", "terminate-instances"],
//!             regions = ["us-east-1"], instance_types = ["t3.micro"], amis = ["ami-0123456789abcdef0"],
//!             max_running_instances = 4, max_hourly_usd = 0.5, dry_run = false }
//! ```
//!
//! Everything is denied unless listed: `aws_ec2 = true` is read-only in the
//! host's region, in dry-run mode. The ownership rule is not configurable:
//! an agent only sees, changes and stops instances tagged
//! `agentkernel:owner=<agent>`, and every instance it launches gets that tag.
use serde::{Deserialize, Serialize};

/// Tag every launched instance carries: `agentkernel:owner=<agent>`.
pub const OWNER_TAG: &str = "agentkernel:owner";
/// Tag of instances launched for a genome: `agentkernel:genome=<genome id>`.
pub const GENOME_TAG: &str = "agentkernel:genome";
/// Tag naming the genome group an instance belongs to.
pub const GROUP_TAG: &str = "agentkernel:group";
/// Tag keys with this prefix are the host's; agents may not set or delete them.
pub const RESERVED_TAG_PREFIX: &str = "agentkernel:";

/// Every action name a grant may list (the WIT function names).
pub const ACTIONS: &[&str] = &[
    "describe-instances",
    "describe-images",
    "describe-security-groups",
    "describe-subnets",
    "run-instances",
    "start-instances",
    "stop-instances",
    "terminate-instances",
    "create-tags",
    "delete-tags",
    "current-genome",
    "propose-genome",
];

/// Scope of an `aws_ec2` grant. `actions`, `instance_types` and `amis`
/// accept exact names, `*`, or a trailing-`*` prefix (`t3.*`, `describe-*`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AwsEc2Scope {
    /// Actions the agent may call (default: `describe-*` and `current-genome`).
    pub actions: Vec<String>,
    /// Regions the agent may use (default: only the host's `[aws] region`).
    /// Exact names only: the running-instance and cost limits count every
    /// listed region, so the list must be enumerable.
    pub regions: Vec<String>,
    /// Instance types the agent may launch (default: none).
    pub instance_types: Vec<String>,
    /// AMIs the agent may launch (default: none).
    pub amis: Vec<String>,
    /// Most pending + running instances the agent may own across its regions (default 0).
    pub max_running_instances: u32,
    /// Most estimated USD per hour of the agent's pending + running
    /// instances, from `[aws.prices]` (default 0). A type without a price
    /// cannot be launched.
    pub max_hourly_usd: f64,
    /// Answer what would happen and change nothing (default: true).
    pub dry_run: bool,
    /// Apply the agent's genome proposals at once when they are within
    /// this scope (and `dry_run` is off); otherwise they wait for an admin.
    pub auto_apply: bool,
}

impl Default for AwsEc2Scope {
    fn default() -> Self {
        AwsEc2Scope {
            actions: vec!["describe-*".into(), "current-genome".into()],
            regions: vec![],
            instance_types: vec![],
            amis: vec![],
            max_running_instances: 0,
            max_hourly_usd: 0.0,
            dry_run: true,
            auto_apply: false,
        }
    }
}

/// The policy rule that refused a call (kebab-case names, as in WIT and the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    Action,
    Region,
    InstanceType,
    Image,
    MaxRunningInstances,
    MaxHourlyCost,
    ReservedTag,
    RequestSize,
    GenomeOwner,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Action => "action",
            Rule::Region => "region",
            Rule::InstanceType => "instance-type",
            Rule::Image => "image",
            Rule::MaxRunningInstances => "max-running-instances",
            Rule::MaxHourlyCost => "max-hourly-cost",
            Rule::ReservedTag => "reserved-tag",
            Rule::RequestSize => "request-size",
            Rule::GenomeOwner => "genome-owner",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A refusal: the rule and a message saying what was asked and what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub rule: Rule,
    pub message: String,
}

fn deny(rule: Rule, message: String) -> Denial {
    Denial { rule, message }
}

/// `*`, `prefix*` or an exact name.
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn listed(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, value))
}

fn shown(list: &[String]) -> String {
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

impl AwsEc2Scope {
    /// Checks the scope when the configuration is loaded, so a typo in an
    /// action name is an error rather than a silent denial.
    pub fn validate(&self) -> Result<(), String> {
        for a in &self.actions {
            if !ACTIONS.iter().any(|known| pattern_matches(a, known)) {
                return Err(format!("aws_ec2.actions: unknown action `{a}` (known: {})", ACTIONS.join(", ")));
            }
        }
        if let Some(r) = self.regions.iter().find(|r| r.contains('*') || r.is_empty()) {
            return Err(format!(
                "aws_ec2.regions: `{r}` is not a region name (patterns are not allowed: limits are counted per listed region)"
            ));
        }
        if !self.max_hourly_usd.is_finite() || self.max_hourly_usd < 0.0 {
            return Err("aws_ec2.max_hourly_usd must be a non-negative number".into());
        }
        Ok(())
    }

    pub fn check_action(&self, action: &str) -> Result<(), Denial> {
        if listed(&self.actions, action) {
            return Ok(());
        }
        Err(deny(Rule::Action, format!("action `{action}` is not allowed (allowed: {})", shown(&self.actions))))
    }

    /// `default_region` is the host's region, which an empty `regions` list means.
    pub fn check_region(&self, region: &str, default_region: &str) -> Result<(), Denial> {
        let ok = if self.regions.is_empty() { region == default_region } else { self.regions.iter().any(|r| r == region) };
        if ok {
            return Ok(());
        }
        let allowed = if self.regions.is_empty() { default_region.to_string() } else { self.regions.join(", ") };
        Err(deny(Rule::Region, format!("region `{region}` is not allowed (allowed: {allowed})")))
    }

    /// The regions this scope allows.
    pub fn allowed_regions(&self, default_region: &str) -> Vec<String> {
        if self.regions.is_empty() { vec![default_region.to_string()] } else { self.regions.clone() }
    }

    pub fn check_instance_type(&self, instance_type: &str) -> Result<(), Denial> {
        if listed(&self.instance_types, instance_type) {
            return Ok(());
        }
        Err(deny(
            Rule::InstanceType,
            format!("instance type `{instance_type}` is not allowed (allowed: {})", shown(&self.instance_types)),
        ))
    }

    pub fn check_image(&self, image_id: &str) -> Result<(), Denial> {
        if listed(&self.amis, image_id) {
            return Ok(());
        }
        Err(deny(Rule::Image, format!("AMI `{image_id}` is not allowed (allowed: {})", shown(&self.amis))))
    }

    /// `owned` instances already pending or running, `adding` more.
    pub fn check_running(&self, owned: u32, adding: u32) -> Result<(), Denial> {
        let after = owned.saturating_add(adding);
        if after <= self.max_running_instances {
            return Ok(());
        }
        Err(deny(
            Rule::MaxRunningInstances,
            format!(
                "{after} running instances ({owned} now + {adding}) would exceed max_running_instances = {}",
                self.max_running_instances
            ),
        ))
    }

    /// `hourly_after` is `None` when a type has no price.
    pub fn check_cost(&self, hourly_before: f64, hourly_after: Result<f64, String>) -> Result<(), Denial> {
        match hourly_after {
            Err(unpriced) => Err(deny(
                Rule::MaxHourlyCost,
                format!("no price for instance type `{unpriced}` in [aws.prices], so its cost cannot be bounded"),
            )),
            Ok(after) if after <= self.max_hourly_usd + 1e-9 => Ok(()),
            Ok(after) => Err(deny(
                Rule::MaxHourlyCost,
                format!(
                    "estimated ${after:.4}/h (now ${hourly_before:.4}/h) would exceed max_hourly_usd = {}",
                    self.max_hourly_usd
                ),
            )),
        }
    }
}

/// Refuses tag keys the host reserves for ownership and genome bookkeeping.
pub fn check_tag_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), Denial> {
    for key in keys {
        if key.starts_with(RESERVED_TAG_PREFIX) {
            return Err(deny(
                Rule::ReservedTag,
                format!("tag key `{key}` is reserved: keys starting with `{RESERVED_TAG_PREFIX}` are set by the host"),
            ));
        }
    }
    Ok(())
}

/// Bounds the size of one request, so a guest cannot make the host build huge AWS calls.
pub fn check_size(what: &str, n: usize, max: usize) -> Result<(), Denial> {
    if n > max {
        return Err(deny(Rule::RequestSize, format!("{n} {what} in one call; the limit is {max}")));
    }
    Ok(())
}

/// The `aws_ec2` scope `grants` give, if any (config load already checked it).
pub fn granted_scope(grants: &agentkernel_runtime::policy::Grants) -> Option<AwsEc2Scope> {
    grants.scope_as::<AwsEc2Scope>(agentkernel_runtime::policy::Capability::AWS_EC2).and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> AwsEc2Scope {
        AwsEc2Scope {
            actions: vec!["describe-*".into(), "run-instances".into()],
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            instance_types: vec!["t3.*".into()],
            amis: vec!["ami-12345678".into()],
            max_running_instances: 3,
            max_hourly_usd: 0.1,
            ..AwsEc2Scope::default()
        }
    }

    #[test]
    fn default_scope_is_read_only_dry_run_in_the_host_region() {
        let s = AwsEc2Scope::default();
        assert!(s.dry_run && !s.auto_apply);
        assert!(s.check_action("describe-subnets").is_ok());
        assert_eq!(s.check_action("run-instances").unwrap_err().rule, Rule::Action);
        assert!(s.check_region("us-east-1", "us-east-1").is_ok());
        assert_eq!(s.check_region("us-west-2", "us-east-1").unwrap_err().rule, Rule::Region);
        assert_eq!(s.check_instance_type("t3.micro").unwrap_err().rule, Rule::InstanceType);
        assert_eq!(s.check_running(0, 1).unwrap_err().rule, Rule::MaxRunningInstances);
    }

    #[test]
    fn lists_match_exact_names_and_prefixes() {
        let s = scope();
        assert!(s.check_region("eu-west-1", "us-east-1").is_ok());
        assert!(s.check_instance_type("t3.large").is_ok());
        let d = s.check_instance_type("m5.large").unwrap_err();
        assert!(d.message.contains("m5.large") && d.message.contains("t3.*"), "{}", d.message);
        assert!(s.check_image("ami-12345678").is_ok());
        assert_eq!(s.check_image("ami-99999999").unwrap_err().rule, Rule::Image);
        assert_eq!(s.check_region("eu-central-1", "us-east-1").unwrap_err().rule, Rule::Region);
        assert_eq!(s.allowed_regions("us-east-1"), vec!["us-east-1".to_string(), "eu-west-1".to_string()]);
    }

    #[test]
    fn count_and_cost_limits_name_the_numbers() {
        let s = scope();
        assert!(s.check_running(2, 1).is_ok());
        let d = s.check_running(2, 2).unwrap_err();
        assert!(d.message.contains("max_running_instances = 3"), "{}", d.message);
        assert!(s.check_cost(0.05, Ok(0.1)).is_ok());
        assert_eq!(s.check_cost(0.05, Ok(0.2)).unwrap_err().rule, Rule::MaxHourlyCost);
        let d = s.check_cost(0.0, Err("x1.huge".into())).unwrap_err();
        assert!(d.message.contains("x1.huge"), "{}", d.message);
    }

    #[test]
    fn reserved_tags_and_unknown_actions_are_refused() {
        assert_eq!(check_tag_keys(["role", "agentkernel:owner"]).unwrap_err().rule, Rule::ReservedTag);
        assert!(check_tag_keys(["role"]).is_ok());
        let bad = AwsEc2Scope { actions: vec!["run-instance".into()], ..AwsEc2Scope::default() };
        assert!(bad.validate().unwrap_err().contains("run-instance"));
        let pattern = AwsEc2Scope { regions: vec!["eu-*".into()], ..AwsEc2Scope::default() };
        assert!(pattern.validate().unwrap_err().contains("eu-*"));
        assert!(scope().validate().is_ok());
    }
}
