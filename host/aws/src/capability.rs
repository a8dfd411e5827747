//! `aws-ec2`: EC2 through [`Ec2Service`], within the agent's policy.
//!
//! Scope: [`AwsEc2Scope`] (actions, regions, instance types, AMIs, running
//! count, hourly cost, dry run, auto-apply). Per-instance state: the
//! service handle, the agent's name and scope, and the call's deadline,
//! which bounds every EC2 request (epochs cannot interrupt host code).
//! Every call is checked and audited by the service; what the guest gets
//! back is a typed `ec2-error`, never a trap.
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Linker};

use crate::genome::Genome;
use crate::{Ec2Failure, Ec2Service, Principal};
use agentkernel_runtime::bindings::agentkernel::agent::aws_ec2::{
    self as wit, ChangeResult, Ec2Error, Filter, Image, Instance, Proposal, ProposalStatus, RunSpec, SecurityGroup, Subnet, Tag,
};
use agentkernel_runtime::{CallInfo, CapabilityStates, Grant, HostCapability, InstanceState, PrepareError, PreparedCapability, parse_scope};

pub use crate::policy::AwsEc2Scope;

pub struct AwsEc2State {
    service: Arc<Ec2Service>,
    agent: Arc<str>,
    scope: Arc<AwsEc2Scope>,
    deadline: Instant,
}

impl AwsEc2State {
    pub fn new(service: Arc<Ec2Service>, agent: Arc<str>, scope: Arc<AwsEc2Scope>, deadline: Instant) -> Self {
        AwsEc2State { service, agent, scope, deadline }
    }

    fn who(&self) -> Principal<'_> {
        Principal { agent: &self.agent, scope: &self.scope, deadline: Some(self.deadline) }
    }
}

/// `aws-ec2` configured for one agent: the shared service and its scope.
pub struct Prepared {
    pub service: Arc<Ec2Service>,
    pub scope: Arc<AwsEc2Scope>,
}

impl PreparedCapability for Prepared {
    fn instance_state(&self, call: &CallInfo<'_>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(Box::new(AwsEc2State::new(self.service.clone(), call.agent.clone(), self.scope.clone(), call.deadline)))
    }
}

struct HasAwsEc2;
impl HasData for HasAwsEc2 {
    type Data<'a> = &'a mut AwsEc2State;
}

/// Links `aws-ec2` into any store whose data keeps capability states.
pub fn add_to_linker<T: CapabilityStates>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasAwsEc2>(linker, |s| s.state::<AwsEc2State>())
}

/// The `aws-ec2` capability: EC2 through the host's [`Ec2Service`] (which
/// checks, audits and, in dry run, never changes anything), within the
/// grant's [`AwsEc2Scope`].
pub struct AwsEc2;

impl HostCapability for AwsEc2 {
    fn name(&self) -> &'static str {
        "aws-ec2"
    }
    fn check_scope(&self, scope: &toml::Table) -> Result<(), String> {
        parse_scope::<AwsEc2Scope>(scope)?.validate()
    }
    fn link(&self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
    fn prepare(&self, grant: &Grant<'_>) -> Result<Box<dyn PreparedCapability>, PrepareError> {
        let mut scope = parse_scope::<AwsEc2Scope>(grant.scope).map_err(PrepareError::Scope)?;
        scope.validate().map_err(PrepareError::Scope)?;
        let service = grant.services.require::<Ec2Service>("EC2 service")?;
        if service.always_dry_run() {
            scope.dry_run = true;
            scope.auto_apply = false;
        }
        Ok(Box::new(Prepared { service, scope: Arc::new(scope) }))
    }
}

fn typed<T>(r: Result<T, Ec2Failure>) -> wasmtime::Result<Result<T, Ec2Error>> {
    Ok(r.map_err(|e| e.to_wit()))
}

impl wit::Host for AwsEc2State {
    async fn describe_instances(&mut self, region: Option<String>, filters: Vec<Filter>) -> wasmtime::Result<Result<Vec<Instance>, Ec2Error>> {
        typed(self.service.describe_instances(self.who(), region, filters).await)
    }

    async fn describe_images(&mut self, region: Option<String>, filters: Vec<Filter>) -> wasmtime::Result<Result<Vec<Image>, Ec2Error>> {
        typed(self.service.describe_images(self.who(), region, filters).await)
    }

    async fn describe_security_groups(
        &mut self,
        region: Option<String>,
        filters: Vec<Filter>,
    ) -> wasmtime::Result<Result<Vec<SecurityGroup>, Ec2Error>> {
        typed(self.service.describe_security_groups(self.who(), region, filters).await)
    }

    async fn describe_subnets(&mut self, region: Option<String>, filters: Vec<Filter>) -> wasmtime::Result<Result<Vec<Subnet>, Ec2Error>> {
        typed(self.service.describe_subnets(self.who(), region, filters).await)
    }

    async fn run_instances(&mut self, region: Option<String>, spec: RunSpec) -> wasmtime::Result<Result<ChangeResult, Ec2Error>> {
        typed(self.service.run_instances(self.who(), region, spec).await)
    }

    async fn start_instances(&mut self, region: Option<String>, ids: Vec<String>) -> wasmtime::Result<Result<ChangeResult, Ec2Error>> {
        typed(self.service.start_instances(self.who(), region, ids).await)
    }

    async fn stop_instances(&mut self, region: Option<String>, ids: Vec<String>) -> wasmtime::Result<Result<ChangeResult, Ec2Error>> {
        typed(self.service.stop_instances(self.who(), region, ids).await)
    }

    async fn terminate_instances(&mut self, region: Option<String>, ids: Vec<String>) -> wasmtime::Result<Result<ChangeResult, Ec2Error>> {
        typed(self.service.terminate_instances(self.who(), region, ids).await)
    }

    async fn create_tags(&mut self, region: Option<String>, ids: Vec<String>, tags: Vec<Tag>) -> wasmtime::Result<Result<(), Ec2Error>> {
        typed(self.service.create_tags(self.who(), region, ids, tags).await)
    }

    async fn delete_tags(&mut self, region: Option<String>, ids: Vec<String>, tags: Vec<Tag>) -> wasmtime::Result<Result<(), Ec2Error>> {
        typed(self.service.delete_tags(self.who(), region, ids, tags).await)
    }

    async fn current_genome(&mut self) -> wasmtime::Result<Result<Option<wit::Genome>, Ec2Error>> {
        typed(self.service.read_genome(self.who()).await)
    }

    async fn propose_genome(&mut self, genome: wit::Genome, reason: String) -> wasmtime::Result<Result<Proposal, Ec2Error>> {
        // A proposal that auto-applies is claimed, applied, marked and
        // audited as one unit: run in its own task, so a guest dropped
        // midway (deadline, a cancelled caller) cannot leave it half done.
        let (service, agent, scope, deadline) = (self.service.clone(), self.agent.clone(), self.scope.clone(), self.deadline);
        let task = tokio::spawn(async move {
            let who = Principal { agent: &agent, scope: &scope, deadline: Some(deadline) };
            service.propose_genome(who, Genome::from_wit(genome), reason).await
        });
        let outcome = task.await.map_err(|e| wasmtime::format_err!("genome proposal task failed: {e}"))?;
        typed(outcome.map(|o| Proposal {
            id: o.id.max(0) as u64,
            status: match o.status.as_str() {
                "applied" => ProposalStatus::Applied,
                "rejected" => ProposalStatus::Rejected,
                "failed" => ProposalStatus::Failed,
                _ => ProposalStatus::Pending,
            },
            plan: o.plan.to_wit(),
            message: o.message,
        }))
    }
}
