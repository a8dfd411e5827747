//! The EC2 calls the host makes, over `aws-sdk-ec2`, with results as the
//! WIT records and every SDK error mapped to an [`Ec2Failure`]. No policy
//! here: [`super::Ec2Service`] checks policy before calling these.
use std::time::Instant;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types as sdk;

use super::Ec2Failure;
use agentkernel_runtime::bindings::agentkernel::agent::aws_ec2::{Filter, Image, Instance, SecurityGroup, Subnet, Tag};

/// What to launch: the spec with the host's tags already added.
#[derive(Debug, Clone)]
pub struct Launch {
    pub image_id: String,
    pub instance_type: String,
    pub count: u32,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// One region's EC2 client, bounded by an optional deadline (the calling
/// guest's): past it, calls fail as `unavailable` instead of holding the host.
pub struct Ec2 {
    pub client: Client,
    pub region: String,
    pub deadline: Option<Instant>,
}

/// Maps an SDK error to what a guest (or the CLI) is told.
pub fn map_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> Ec2Failure {
    match &e {
        SdkError::TimeoutError(_) => Ec2Failure::Unavailable("EC2 did not answer in time".into()),
        SdkError::DispatchFailure(_) => {
            Ec2Failure::Unavailable(format!("cannot reach EC2: {}", aws_sdk_ec2::error::DisplayErrorContext(&e)))
        }
        _ => {
            let code = e.code().unwrap_or("").to_string();
            let message = e.message().map(str::to_string).unwrap_or_else(|| aws_sdk_ec2::error::DisplayErrorContext(&e).to_string());
            classify(&code, message)
        }
    }
}

/// Sorts an EC2 error code into the typed errors guests see.
pub fn classify(code: &str, message: String) -> Ec2Failure {
    let text = if code.is_empty() { message } else { format!("{code}: {message}") };
    match code {
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "RequestThrottled" | "SlowDown" => {
            Ec2Failure::Throttled(text)
        }
        "ServiceUnavailable" | "Unavailable" | "InternalError" | "InternalFailure" => Ec2Failure::Unavailable(text),
        c if c.starts_with("Invalid") || c == "MissingParameter" || c == "UnknownParameter" || c.ends_with(".NotFound") || c.ends_with(".Malformed") => {
            Ec2Failure::InvalidParameter(text)
        }
        _ => Ec2Failure::Aws(text),
    }
}

fn sdk_filters(filters: &[Filter]) -> Vec<sdk::Filter> {
    filters.iter().map(|f| sdk::Filter::builder().name(&f.name).set_values(Some(f.values.clone())).build()).collect()
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<sdk::Tag> {
    tags.iter().map(|(k, v)| sdk::Tag::builder().key(k).value(v).build()).collect()
}

/// EC2 answered a `DryRun` request by doing it (a proxy or endpoint that
/// drops the flag): the change is real, and says so.
fn dry_run_ignored(operation: &str, ids: &[String]) -> Ec2Failure {
    Ec2Failure::Aws(format!(
        "{operation} was sent as a dry run but EC2 answered with success, not DryRunOperation: the change was REAL ({})",
        if ids.is_empty() { "no ids returned".to_string() } else { ids.join(", ") }
    ))
}

fn is_dry_run_ok<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("DryRunOperation")
}

fn instance_record(i: &sdk::Instance, region: &str) -> Instance {
    Instance {
        instance_id: i.instance_id().unwrap_or_default().to_string(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        image_id: i.image_id().unwrap_or_default().to_string(),
        state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
        region: region.to_string(),
        subnet_id: i.subnet_id().map(str::to_string),
        private_ip: i.private_ip_address().map(str::to_string),
        security_group_ids: i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect(),
        tags: i
            .tags()
            .iter()
            .map(|t| Tag { key: t.key().unwrap_or_default().to_string(), value: t.value().unwrap_or_default().to_string() })
            .collect(),
    }
}

/// Most pages of one describe call the host reads (1000 items each).
const MAX_PAGES: usize = 10;

/// EC2's `MaxResults` for a call that wants `max` records (EC2 accepts 5-1000).
fn page_size(max: usize) -> i32 {
    max.clamp(5, 1000) as i32
}

impl Ec2 {
    /// Runs one SDK call under the deadline.
    async fn send<T, E, R>(&self, call: impl Future<Output = Result<T, SdkError<E, R>>>) -> Result<Result<T, SdkError<E, R>>, Ec2Failure> {
        match self.deadline {
            Some(d) => tokio::time::timeout_at(d.into(), call)
                .await
                .map_err(|_| Ec2Failure::Unavailable("the call's deadline passed while EC2 was answering".into())),
            None => Ok(call.await),
        }
    }

    pub async fn instances(&self, filters: &[Filter]) -> Result<Vec<Instance>, Ec2Failure> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let req = self.client.describe_instances().set_filters(Some(sdk_filters(filters))).set_next_token(token.take());
            let page = self.send(req.send()).await?.map_err(map_error)?;
            for r in page.reservations() {
                out.extend(r.instances().iter().map(|i| instance_record(i, &self.region)));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Images whose `Owners` are `owners` (EC2's `self`, `amazon`, account
    /// ids), at most `max` of them.
    pub async fn images(&self, filters: &[Filter], owners: &[String], max: usize) -> Result<Vec<Image>, Ec2Failure> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let req = self
                .client
                .describe_images()
                .set_filters(Some(sdk_filters(filters)))
                .set_owners((!owners.is_empty()).then(|| owners.to_vec()))
                .max_results(page_size(max))
                .set_next_token(token.take());
            let page = self.send(req.send()).await?.map_err(map_error)?;
            out.extend(page.images().iter().map(|i| Image {
                image_id: i.image_id().unwrap_or_default().to_string(),
                name: i.name().unwrap_or_default().to_string(),
                state: i.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
                architecture: i.architecture().map(|a| a.as_str().to_string()),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() && out.len() < max => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// At most `max` security groups.
    pub async fn security_groups(&self, filters: &[Filter], max: usize) -> Result<Vec<SecurityGroup>, Ec2Failure> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let req = self
                .client
                .describe_security_groups()
                .set_filters(Some(sdk_filters(filters)))
                .max_results(page_size(max))
                .set_next_token(token.take());
            let page = self.send(req.send()).await?.map_err(map_error)?;
            out.extend(page.security_groups().iter().map(|g| SecurityGroup {
                group_id: g.group_id().unwrap_or_default().to_string(),
                name: g.group_name().unwrap_or_default().to_string(),
                description: g.description().unwrap_or_default().to_string(),
                vpc_id: g.vpc_id().map(str::to_string),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() && out.len() < max => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// At most `max` subnets.
    pub async fn subnets(&self, filters: &[Filter], max: usize) -> Result<Vec<Subnet>, Ec2Failure> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let req = self
                .client
                .describe_subnets()
                .set_filters(Some(sdk_filters(filters)))
                .max_results(page_size(max))
                .set_next_token(token.take());
            let page = self.send(req.send()).await?.map_err(map_error)?;
            out.extend(page.subnets().iter().map(|s| Subnet {
                subnet_id: s.subnet_id().unwrap_or_default().to_string(),
                vpc_id: s.vpc_id().unwrap_or_default().to_string(),
                cidr_block: s.cidr_block().unwrap_or_default().to_string(),
                availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() && out.len() < max => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// Launches; in dry-run mode asks EC2 to validate only and returns no ids.
    pub async fn run(&self, launch: &Launch, dry_run: bool) -> Result<Vec<String>, Ec2Failure> {
        let count = i32::try_from(launch.count).map_err(|_| Ec2Failure::InvalidParameter("count too large".into()))?;
        let req = self
            .client
            .run_instances()
            .image_id(&launch.image_id)
            .instance_type(sdk::InstanceType::from(launch.instance_type.as_str()))
            .min_count(count)
            .max_count(count)
            .set_subnet_id(launch.subnet_id.clone())
            .set_security_group_ids((!launch.security_group_ids.is_empty()).then(|| launch.security_group_ids.clone()))
            .tag_specifications(
                sdk::TagSpecification::builder()
                    .resource_type(sdk::ResourceType::Instance)
                    .set_tags(Some(sdk_tags(&launch.tags)))
                    .build(),
            )
            .dry_run(dry_run);
        match self.send(req.send()).await? {
            Ok(out) => {
                let ids: Vec<String> = out.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
                if dry_run {
                    return Err(dry_run_ignored("RunInstances", &ids));
                }
                Ok(ids)
            }
            Err(e) if dry_run && is_dry_run_ok(&e) => Ok(vec![]),
            Err(e) => Err(map_error(e)),
        }
    }

    pub async fn start(&self, ids: &[String], dry_run: bool) -> Result<(), Ec2Failure> {
        let req = self.client.start_instances().set_instance_ids(Some(ids.to_vec())).dry_run(dry_run);
        self.unit(self.send(req.send()).await?, dry_run, "StartInstances", ids)
    }

    pub async fn stop(&self, ids: &[String], dry_run: bool) -> Result<(), Ec2Failure> {
        let req = self.client.stop_instances().set_instance_ids(Some(ids.to_vec())).dry_run(dry_run);
        self.unit(self.send(req.send()).await?, dry_run, "StopInstances", ids)
    }

    pub async fn terminate(&self, ids: &[String], dry_run: bool) -> Result<(), Ec2Failure> {
        let req = self.client.terminate_instances().set_instance_ids(Some(ids.to_vec())).dry_run(dry_run);
        self.unit(self.send(req.send()).await?, dry_run, "TerminateInstances", ids)
    }

    pub async fn create_tags(&self, ids: &[String], tags: &[(String, String)], dry_run: bool) -> Result<(), Ec2Failure> {
        let req = self.client.create_tags().set_resources(Some(ids.to_vec())).set_tags(Some(sdk_tags(tags))).dry_run(dry_run);
        self.unit(self.send(req.send()).await?, dry_run, "CreateTags", ids)
    }

    /// An empty value deletes the key whatever its value.
    pub async fn delete_tags(&self, ids: &[String], tags: &[(String, String)], dry_run: bool) -> Result<(), Ec2Failure> {
        let tags = tags
            .iter()
            .map(|(k, v)| sdk::Tag::builder().key(k).set_value((!v.is_empty()).then(|| v.clone())).build())
            .collect();
        let req = self.client.delete_tags().set_resources(Some(ids.to_vec())).set_tags(Some(tags)).dry_run(dry_run);
        self.unit(self.send(req.send()).await?, dry_run, "DeleteTags", ids)
    }

    /// A changing call's answer. With `dry_run`, EC2 must answer
    /// `DryRunOperation`; a success means it made the change anyway, which
    /// is reported as the error it is, never as a dry run.
    fn unit<T, E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
        &self,
        result: Result<T, SdkError<E, R>>,
        dry_run: bool,
        operation: &str,
        ids: &[String],
    ) -> Result<(), Ec2Failure> {
        match result {
            Ok(_) if dry_run => Err(dry_run_ignored(operation, ids)),
            Ok(_) => Ok(()),
            Err(e) if dry_run && is_dry_run_ok(&e) => Ok(()),
            Err(e) => Err(map_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_become_typed_errors() {
        assert!(matches!(classify("RequestLimitExceeded", "slow down".into()), Ec2Failure::Throttled(_)));
        assert!(matches!(classify("InvalidAMIID.NotFound", "no such ami".into()), Ec2Failure::InvalidParameter(_)));
        assert!(matches!(classify("InvalidAMIID.Malformed", "bad".into()), Ec2Failure::InvalidParameter(_)));
        assert!(matches!(classify("UnauthorizedOperation", "no".into()), Ec2Failure::Aws(m) if m.contains("UnauthorizedOperation")));
    }
}
