//! Reading a create request with a model, when the rules miss a part.
//! The reply is validated like user input: a valid name, a bounded spec,
//! and only cases whose request the user actually wrote (the model may
//! extract cases, never invent them).
use agentkernel_sdk::llm::Chat;

use crate::parse::{CaseDraft, CreateDraft, MAX_CASES, MAX_SPEC_BYTES, normalise_name};

pub const PROFILE: &str = "smart";

pub const SYSTEM_PROMPT: &str = "You turn a request to create a software agent into JSON. The agent will be \
generated as a WebAssembly component answering text requests. Reply with one JSON object only: \
{\"name\": \"lower-case-dashed-name or null\", \"spec\": \"one or two sentences: what the agent answers, as a specification\", \
\"cases\": [{\"name\": \"short-dashed-id\", \"request\": \"request text\", \"expect_contains\": [\"text the answer must contain\"], \
\"held_out\": false}]}. Only include cases whose request and expected answer the user wrote; if the user gave no \
examples, reply with \"cases\": []. Never invent a name the user did not give: use null.";

fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Asks the model; `Err` says why its reading cannot be used.
pub fn read(text: &str) -> Result<CreateDraft, String> {
    let reply = Chat::new(PROFILE)
        .system(SYSTEM_PROMPT)
        .user(clip(text, 4000))
        .json()
        .temperature(0.0)
        .max_tokens(800)
        .send()
        .map_err(|e| format!("no model reading ({})", e.code()))?;
    parse_reply(&reply.content, text)
}

/// The model's reply as a draft, validated against the user's own text.
pub fn parse_reply(content: &str, user_text: &str) -> Result<CreateDraft, String> {
    let start = content.find('{').ok_or("the model's reply has no JSON object")?;
    let end = content.rfind('}').filter(|e| *e > start).ok_or("the model's reply has no JSON object")?;
    let draft: CreateDraft = serde_json::from_str(&content[start..=end]).map_err(|e| format!("the model's reply is malformed ({e})"))?;
    Ok(validate(draft, user_text))
}

/// Keeps what is valid: a host-valid name, a spec within bounds, and
/// cases the user wrote, renamed `case-N`, with at least one visible.
pub fn validate(draft: CreateDraft, user_text: &str) -> CreateDraft {
    let user = user_text.to_lowercase();
    let name = draft.name.as_deref().and_then(normalise_name).filter(|n| user.contains(n.as_str()) || user.contains(&n.replace('-', " ")));
    let spec = draft.spec.map(|s| s.trim().to_string()).filter(|s| !s.is_empty() && s.len() <= MAX_SPEC_BYTES);
    let mut cases: Vec<CaseDraft> = draft
        .cases
        .into_iter()
        .filter(|c| !c.request.trim().is_empty() && user.contains(&c.request.trim().to_lowercase()))
        .map(|c| CaseDraft {
            expect_contains: c.expect_contains.into_iter().filter(|e| !e.trim().is_empty()).collect(),
            ..c
        })
        .filter(|c| !c.expect_contains.is_empty())
        .take(MAX_CASES)
        .collect();
    for (i, c) in cases.iter_mut().enumerate() {
        c.name = format!("case-{}", i + 1);
    }
    if cases.iter().all(|c| c.held_out) {
        if let Some(first) = cases.first_mut() {
            first.held_out = false;
        }
    }
    CreateDraft { name, spec, cases }
}

/// The rules' draft completed by the model's where the rules found nothing.
pub fn merge(rules: CreateDraft, model: CreateDraft) -> CreateDraft {
    CreateDraft {
        name: rules.name.or(model.name),
        spec: rules.spec.or(model.spec),
        cases: if rules.cases.is_empty() { model.cases } else { rules.cases },
    }
}
