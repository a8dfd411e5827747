//! `infrastructure-architect`: asked for capacity ("3 more t3.micro web
//! servers"), reads the infrastructure genome, proposes the changed genome
//! through `aws-ec2`, and explains the plan the host computed (changes,
//! running instances, estimated cost) and whether it was applied or waits
//! for an admin.
//!
//! The request is understood by the model when `llm` answers (JSON reply),
//! and by [`parse_request`]'s rules otherwise; the response says which.
//! Numbers in the explanation always come from the host's plan, not the model.
use agentkernel_sdk::aws_ec2::{self, Ec2Error, Genome, InstanceGroup, Proposal, ProposalStatus};
use agentkernel_sdk::llm::Chat;
use agentkernel_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

pub struct Architect;

pub const NAME: &str = "infrastructure-architect";
/// Id of the genome this agent starts when none has been applied yet.
pub const DEFAULT_GENOME_ID: &str = "main";
/// Longest request text sent to the model, in bytes.
const MAX_INPUT: usize = 2048;

/// How a group's size should change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add(u32),
    Remove(u32),
    SetTo(u32),
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityRequest {
    pub group: Option<String>,
    pub instance_type: Option<String>,
    pub change: Change,
}

fn number(word: &str) -> Option<u32> {
    const WORDS: [&str; 11] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
    match word {
        "a" | "an" | "another" => Some(1),
        w => w.parse().ok().or_else(|| WORDS.iter().position(|n| *n == w).map(|i| i as u32)),
    }
}

/// `t3.micro`, `m5.large`, `c6gn.2xlarge`, ...
pub fn is_instance_type(word: &str) -> bool {
    let Some((family, size)) = word.split_once('.') else { return false };
    family.len() >= 2
        && family.starts_with(|c: char| c.is_ascii_lowercase())
        && family.chars().any(|c| c.is_ascii_digit())
        && family.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !size.is_empty()
        && size.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

const NOUNS: &[&str] = &["server", "servers", "instance", "instances", "node", "nodes", "machine", "machines", "box", "boxes", "vm", "vms"];
const FILLER: &[&str] = &["more", "extra", "additional", "new", "of", "the", "x", "ec2", "to", "for", "group", "fewer", "less"];

/// Understands capacity requests by rule: a count, an optional instance
/// type, a group (a name from `known_groups` in the text, or the word
/// before "servers"/"instances"/...), and whether to add, remove or set.
pub fn parse_request(text: &str, known_groups: &[String]) -> Option<CapacityRequest> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .collect();
    let instance_type = words.iter().find(|w| is_instance_type(w)).map(|w| w.to_string());
    let has = |ws: &[&str]| words.iter().any(|w| ws.contains(w));
    let set_index = words.iter().position(|w| *w == "to").filter(|&i| {
        i + 1 < words.len() && number(words[i + 1]).is_some() && has(&["scale", "set", "grow", "resize", "make", "total"])
    });
    let count = words.iter().filter(|w| !is_instance_type(w)).find_map(|w| number(w));
    let change = if let Some(i) = set_index {
        Change::SetTo(number(words[i + 1])?)
    } else if has(&["remove", "fewer", "less", "drop", "reduce", "decrease", "terminate", "shrink"]) {
        Change::Remove(count?)
    } else {
        Change::Add(count?)
    };
    let group = known_groups
        .iter()
        .find(|g| words.iter().any(|w| w == &g.to_lowercase()))
        .cloned()
        .or_else(|| {
            let noun = words.iter().position(|w| NOUNS.contains(w))?;
            words[..noun]
                .iter()
                .rev()
                .find(|w| number(w).is_none() && !is_instance_type(w) && !FILLER.contains(w))
                .map(|w| w.to_string())
        })
        .or_else(|| words.iter().find(|w| **w == "workers" || **w == "worker").map(|_| "worker".to_string()));
    Some(CapacityRequest { group, instance_type, change })
}

/// The model's reading of a request (JSON mode).
#[derive(Debug, Deserialize)]
struct ModelReading {
    group: Option<String>,
    instance_type: Option<String>,
    add: Option<u32>,
    remove: Option<u32>,
    set: Option<u32>,
}

fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Asks the model to read the request; `None` when there is no model or its reply is unusable.
fn parse_with_model(text: &str, known_groups: &[String]) -> Option<CapacityRequest> {
    let system = format!(
        "You read capacity requests for EC2 instance groups. Existing groups: [{}]. Reply with one JSON object: \
         {{\"group\": string, \"instance_type\": string or null, \"add\": number or null, \"remove\": number or null, \"set\": number or null}}. \
         Exactly one of add, remove, set is a number.",
        known_groups.join(", ")
    );
    let reply = Chat::new("fast").system(system).user(clip(text, MAX_INPUT)).json().temperature(0.0).max_tokens(200).send().ok()?;
    let reading: ModelReading = serde_json::from_str(reply.content.trim()).ok()?;
    let change = match (reading.add, reading.remove, reading.set) {
        (Some(n), None, None) => Change::Add(n),
        (None, Some(n), None) => Change::Remove(n),
        (None, None, Some(n)) => Change::SetTo(n),
        _ => return None,
    };
    let instance_type = reading.instance_type.filter(|t| is_instance_type(t));
    let group = reading.group.filter(|g| !g.is_empty() && g.len() <= 64 && g.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    Some(CapacityRequest { group, instance_type, change })
}

/// Options a caller may pass in the request context.
#[derive(Debug, Default, Deserialize)]
pub struct Hints {
    /// AMI for a new group (default: an existing group's, else the first
    /// available image the account itself owns; the host's policy decides
    /// whether it may be launched).
    pub ami: Option<String>,
    /// Instance type for a new group when the request names none (default `t3.micro`).
    pub instance_type: Option<String>,
    /// Genome id when none exists yet (default `main`).
    pub genome_id: Option<String>,
}

/// The genome with `req` applied, and a sentence saying what changed.
pub fn change_genome(current: Option<Genome>, req: &CapacityRequest, hints: &Hints, ami_lookup: impl FnOnce() -> Option<String>) -> Result<(Genome, String), String> {
    let mut genome = current.unwrap_or_else(|| Genome {
        id: hints.genome_id.clone().unwrap_or_else(|| DEFAULT_GENOME_ID.to_string()),
        owner: NAME.to_string(),
        region: String::new(),
        groups: Vec::new(),
    });
    if genome.owner != NAME {
        return Err(format!("the current genome `{}` is owned by `{}`; I can only propose genomes I own", genome.id, genome.owner));
    }
    let name = req.group.clone().or_else(|| (genome.groups.len() == 1).then(|| genome.groups[0].name.clone()));
    let Some(name) = name else {
        return Err("which group? Name one, e.g. \"3 more t3.micro web servers\"".into());
    };
    let existing = genome.groups.iter().position(|g| g.name == name);
    let (before, group) = match existing {
        Some(i) => (genome.groups[i].count, &mut genome.groups[i]),
        None => {
            let ami = hints
                .ami
                .clone()
                .or_else(|| genome.groups.first().map(|g| g.image_id.clone()))
                .or_else(ami_lookup)
                .ok_or("no AMI to launch the new group from: pass {\"ami\": \"ami-...\"} in the request context")?;
            let instance_type = req
                .instance_type
                .clone()
                .or_else(|| hints.instance_type.clone())
                .unwrap_or_else(|| "t3.micro".to_string());
            genome.groups.push(InstanceGroup {
                name: name.clone(),
                count: 0,
                instance_type,
                image_id: ami,
                subnet_id: None,
                security_group_ids: Vec::new(),
                tags: vec![aws_ec2::Tag::new("role", name.clone())],
            });
            (0, genome.groups.last_mut().expect("just pushed"))
        }
    };
    let old_type = group.instance_type.clone();
    if let Some(t) = &req.instance_type {
        group.instance_type = t.clone();
    }
    group.count = match req.change {
        Change::Add(n) => before.saturating_add(n),
        Change::Remove(n) => before.saturating_sub(n),
        Change::SetTo(n) => n,
    };
    let mut what = format!("group `{name}`: {before} -> {} x {}", group.count, group.instance_type);
    if existing.is_some() && old_type != group.instance_type {
        what.push_str(&format!(" (was {old_type}: its instances would be replaced)"));
    }
    if existing.is_none() {
        what.push_str(&format!(" (new group, AMI {})", group.image_id));
    }
    Ok((genome, what))
}

fn status_name(s: ProposalStatus) -> &'static str {
    match s {
        ProposalStatus::Applied => "applied",
        ProposalStatus::Pending => "pending",
        ProposalStatus::Rejected => "rejected",
        ProposalStatus::Failed => "failed",
    }
}

/// The host's plan, for a person.
pub fn explain(proposal: &Proposal) -> String {
    let mut lines = Vec::new();
    if proposal.plan.changes.is_empty() {
        lines.push("Plan: no changes; EC2 already matches.".to_string());
    }
    for c in &proposal.plan.changes {
        let line = match c.kind {
            // A launch naming instances brings stopped members back (WIT has no `start` kind).
            aws_ec2::ChangeKind::Launch if !c.instance_ids.is_empty() => {
                format!("Plan: start {} ({}, stopped) of group `{}`.", c.instance_ids.join(", "), c.instance_type, c.group)
            }
            aws_ec2::ChangeKind::Launch => format!("Plan: launch {} x {} for group `{}`.", c.count, c.instance_type, c.group),
            aws_ec2::ChangeKind::Terminate => {
                format!("Plan: terminate {} ({}) of group `{}`.", c.instance_ids.join(", "), c.instance_type, c.group)
            }
        };
        lines.push(line);
    }
    lines.push(format!(
        "Estimated cost: ${:.4}/h -> ${:.4}/h.",
        proposal.plan.hourly_cost_before, proposal.plan.hourly_cost_after
    ));
    lines.push(format!("Proposal #{} is {}: {}", proposal.id, status_name(proposal.status), proposal.message));
    lines.join("\n")
}

fn refusal(what: &str, e: &Ec2Error) -> Response {
    Response::text(format!("I could not {what}: {} ({})", e.message(), e.code()))
        .with_data(&json!({"error": e.code(), "message": e.message()}))
}

impl Agent for Architect {
    fn describe() -> Manifest {
        Manifest::new(NAME, "0.1.0", "Plans EC2 capacity: proposes infrastructure genome changes and explains them.")
            .skill(
                Skill::new("plan-capacity", "Propose more or fewer EC2 instances for a group and explain the cost")
                    .keywords(["capacity", "servers", "instances", "scale", "ec2", "genome", "infrastructure"]),
            )
            .capability("aws-ec2", "reads the genome and proposes changes to it")
            .capability("llm", "reads free-form capacity requests when a model is configured")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if text.is_empty() {
            return Err(AgentError::InvalidRequest("ask for capacity, e.g. \"3 more t3.micro web servers\"".into()));
        }
        let hints: Hints = req.context_as().unwrap_or_default();
        let current = match aws_ec2::current_genome() {
            Ok(g) => g,
            Err(e) => return Ok(refusal("read the genome", &e)),
        };
        let groups: Vec<String> = current.iter().flat_map(|g| g.groups.iter().map(|g| g.name.clone())).collect();
        let (reading, method) = match parse_with_model(text, &groups) {
            Some(r) => (Some(r), "model"),
            None => (parse_request(text, &groups), "rules"),
        };
        let Some(reading) = reading else {
            return Ok(Response::text(
                "I did not understand how much capacity you want. Try \"3 more t3.micro web servers\" or \"scale web to 5\".",
            ));
        };
        // Last resort for a new group: one of the account's own images
        // (`owners = self`), never any public image EC2 would list.
        let ami_lookup = || {
            let filters = [aws_ec2::Filter::new("owners", ["self"]), aws_ec2::Filter::new("state", ["available"])];
            let images = aws_ec2::describe_images(None, &filters).ok()?;
            images.into_iter().map(|i| i.image_id).next()
        };
        let (genome, what) = match change_genome(current, &reading, &hints, ami_lookup) {
            Ok(v) => v,
            Err(why) => return Ok(Response::text(format!("I cannot propose that: {why}."))),
        };
        let proposal = match aws_ec2::propose_genome(&genome, text) {
            Ok(p) => p,
            Err(e) => return Ok(refusal("propose the change", &e)),
        };
        let body = format!(
            "Proposed a change to genome `{}` ({what}; request read by {method}).\n{}",
            genome.id,
            explain(&proposal)
        );
        Ok(Response::text(body).with_data(&json!({
            "proposal": proposal.id,
            "status": status_name(proposal.status),
            "method": method,
            "genome": genome.id,
            "hourly_cost_before": proposal.plan.hourly_cost_before,
            "hourly_cost_after": proposal.plan.hourly_cost_after,
            "changes": proposal.plan.changes.len(),
        })))
    }
}

export_agent!(Architect);

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_adds_removes_and_sets() {
        let r = parse_request("We need 3 more t3.micro web servers", &[]).unwrap();
        assert_eq!(r, CapacityRequest { group: Some("web".into()), instance_type: Some("t3.micro".into()), change: Change::Add(3) });
        let r = parse_request("please remove two api instances", &[]).unwrap();
        assert_eq!((r.group.as_deref(), r.change), (Some("api"), Change::Remove(2)));
        let r = parse_request("scale web to 5", &groups(&["web"])).unwrap();
        assert_eq!((r.group.as_deref(), r.change), (Some("web"), Change::SetTo(5)));
        let r = parse_request("add another worker", &[]).unwrap();
        assert_eq!((r.group.as_deref(), r.change), (Some("worker"), Change::Add(1)));
        assert_eq!(parse_request("how are you?", &[]), None);
    }

    #[test]
    fn instance_types_are_recognised() {
        assert!(is_instance_type("t3.micro") && is_instance_type("c6gn.2xlarge"));
        assert!(!is_instance_type("e.g"));
        assert!(!is_instance_type("web"));
    }

    fn genome(count: u32) -> Genome {
        Genome {
            id: "main".into(),
            owner: NAME.into(),
            region: String::new(),
            groups: vec![InstanceGroup {
                name: "web".into(),
                count,
                instance_type: "t3.micro".into(),
                image_id: "ami-1".into(),
                subnet_id: None,
                security_group_ids: vec![],
                tags: vec![],
            }],
        }
    }

    #[test]
    fn changes_existing_and_new_groups() {
        let req = CapacityRequest { group: Some("web".into()), instance_type: None, change: Change::Add(3) };
        let (g, what) = change_genome(Some(genome(2)), &req, &Hints::default(), || None).unwrap();
        assert_eq!(g.groups[0].count, 5);
        assert!(what.contains("2 -> 5"), "{what}");
        let req = CapacityRequest { group: Some("db".into()), instance_type: Some("t3.small".into()), change: Change::Add(1) };
        let (g, what) = change_genome(Some(genome(2)), &req, &Hints::default(), || None).unwrap();
        assert_eq!((g.groups[1].count, g.groups[1].image_id.as_str()), (1, "ami-1"));
        assert!(what.contains("new group"), "{what}");
        let (g, _) = change_genome(None, &req, &Hints::default(), || Some("ami-9".into())).unwrap();
        assert_eq!((g.id.as_str(), g.groups[0].image_id.as_str()), ("main", "ami-9"));
        assert!(change_genome(None, &req, &Hints::default(), || None).unwrap_err().contains("AMI"));
        let mut foreign = genome(1);
        foreign.owner = "someone-else".into();
        assert!(change_genome(Some(foreign), &req, &Hints::default(), || None).unwrap_err().contains("owned by"));
    }
}
