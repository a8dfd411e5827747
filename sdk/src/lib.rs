//! # agentkernel-sdk
//!
//! Write agents for [agentkernel](https://example.invalid/agentkernel): WebAssembly
//! components that the host calls once per request, each call in a fresh
//! instance, with only the capabilities policy grants.
//!
//! An agent is a type implementing [`Agent`] plus one [`export_agent!`] line.
//! Build it with plain cargo:
//!
//! ```text
//! cargo build --target wasm32-wasip2 --release
//! ```
//!
//! and drop `target/wasm32-wasip2/release/<crate>.wasm` into the host's agents
//! directory (or run `agentkernel build`).
//!
//! ## A complete agent
//!
//! ```
//! use agentkernel_sdk::prelude::*;
//!
//! struct Greeter;
//!
//! impl Agent for Greeter {
//!     fn describe() -> Manifest {
//!         Manifest::new("greeter", "0.1.0", "Greets people and remembers who it met.")
//!             .skill(Skill::new("greet", "Say hello to someone").keywords(["hello", "hi"]))
//!             .capability("memory", "remembers how many people it greeted")
//!     }
//!
//!     fn handle(req: Request) -> Result<Response, AgentError> {
//!         // Capability calls return typed errors; `?` turns them into an AgentError.
//!         // `increment` is atomic: concurrent calls each get their own number.
//!         let seen = memory::increment("greeted", 1)?;
//!         log::info(&format!("greeting #{seen}"));
//!         Ok(Response::text(format!("Hello, {}!", req.text.trim())))
//!     }
//! }
//!
//! export_agent!(Greeter);
//!
//! // The agent logic is plain Rust, so its pure parts test natively with `cargo test`.
//! let manifest = Greeter::describe();
//! assert_eq!(manifest.name, "greeter");
//! assert_eq!(manifest.skills[0].keywords, vec!["hello", "hi"]);
//! ```
//!
//! Capability helpers ([`log`], [`memory`], [`llm`], [`agents`], [`http`],
//! [`aws_ec2`]) only import what the agent's code actually calls, and those
//! imports are what the host checks against policy: an agent that calls
//! [`llm::chat`] needs `llm` granted in `agentkernel.toml`, or it is refused
//! at load with a message naming the line to add.
//!
//! On targets other than `wasm32` the capability functions compile but panic
//! if called, so unit tests should cover the pure logic of an agent.
//!
//! Each module here is one interface of the WIT package (`wit/`), and each
//! has one host side: a crate or module of the host implementing its
//! `HostCapability` trait (`host/runtime/src/capability.rs`), named once in
//! the host's capability list (`host/core/src/capabilities.rs`). A new
//! capability is a WIT interface, that host side, and a helper module here;
//! ARCHITECTURE.md ("Adding a capability") walks through `http`.

// Lets the generated code name this crate by its public path from inside it too.
extern crate self as agentkernel_sdk;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "agent",
        pub_export_macro: true,
        export_macro_name: "__export_agent_world",
        default_bindings_module: "agentkernel_sdk::bindings",
        runtime_path: "agentkernel_sdk::__wit_bindgen::rt",
        generate_all,
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub mod routing;

pub use bindings::agentkernel::agent::types::{
    AgentError, CapabilityRequest, Manifest, Request, Response, Role, Skill, Turn,
};

/// Everything an agent usually needs: `use agentkernel_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Agent, AgentError, Manifest, Request, Response, Role, Skill, Turn, agents, export_agent,
        http, llm, log, memory,
    };
}

/// An agent. Both functions are called in a fresh instance each time, so
/// state that must outlive a call goes through [`memory`].
pub trait Agent {
    /// Who the agent is. Called once at load; must not call capabilities.
    fn describe() -> Manifest;
    /// Answers one request.
    fn handle(req: Request) -> Result<Response, AgentError>;
}

/// Exports `$agent` (a type implementing [`Agent`]) as the component's
/// `describe` and `handle`. Use it exactly once per agent crate.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        /// Bridges the agent's [`Agent`] impl to the generated WIT export trait.
        #[doc(hidden)]
        pub struct __AgentkernelExport;

        impl $crate::bindings::Guest for __AgentkernelExport {
            fn describe() -> $crate::Manifest {
                <$agent as $crate::Agent>::describe()
            }
            fn handle(req: $crate::Request) -> ::core::result::Result<$crate::Response, $crate::AgentError> {
                <$agent as $crate::Agent>::handle(req)
            }
        }

        $crate::bindings::__export_agent_world!(__AgentkernelExport with_types_in $crate::bindings);
    };
}

impl Manifest {
    /// A manifest with no skills and no capabilities yet.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Manifest {
            name: name.to_string(),
            version: version.to_string(),
            description: description.to_string(),
            skills: Vec::new(),
            capabilities: Vec::new(),
        }
    }
    /// Adds a skill the router can match.
    pub fn skill(mut self, skill: Skill) -> Self {
        self.skills.push(skill);
        self
    }
    /// Declares a capability the agent uses and why (shown to operators).
    pub fn capability(mut self, name: &str, reason: &str) -> Self {
        self.capabilities.push(CapabilityRequest { name: name.to_string(), reason: reason.to_string() });
        self
    }
}

impl Skill {
    pub fn new(name: &str, description: &str) -> Self {
        Skill { name: name.to_string(), description: description.to_string(), keywords: Vec::new() }
    }
    /// Words that suggest this skill when they appear in a request.
    pub fn keywords<I, S>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.keywords.extend(words.into_iter().map(Into::into));
        self
    }
}

impl Response {
    /// A plain-text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Response { text: text.into(), data: None }
    }
    /// Attaches structured data, serialised as JSON.
    pub fn with_data<T: serde::Serialize>(mut self, data: &T) -> Self {
        self.data = serde_json::to_string(data).ok();
        self
    }
}

impl Request {
    /// A request with no history and no context, e.g. for tests.
    pub fn new(session_id: &str, text: &str) -> Self {
        Request { session_id: session_id.to_string(), text: text.to_string(), history: Vec::new(), context: None }
    }
    /// The JSON context parsed into `T`, if present and valid.
    pub fn context_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        self.context.as_deref().and_then(|c| serde_json::from_str(c).ok())
    }
}

impl Turn {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Turn { role, content: content.into() }
    }
}

/// Logging into the host's log, tagged with the agent's name.
pub mod log {
    use crate::bindings::agentkernel::agent::log::{Level, write};
    pub use crate::bindings::agentkernel::agent::log::Level as LogLevel;

    pub fn trace(message: &str) {
        write(Level::Trace, message)
    }
    pub fn debug(message: &str) {
        write(Level::Debug, message)
    }
    pub fn info(message: &str) {
        write(Level::Info, message)
    }
    pub fn warn(message: &str) {
        write(Level::Warn, message)
    }
    pub fn error(message: &str) {
        write(Level::Error, message)
    }
}

/// Persistent key-value memory and per-session history, inside the
/// namespace policy assigns to this agent.
///
/// Calls run concurrently with other calls of the same agent (other
/// requests, other sessions). A value computed from what was read (a
/// counter, "the next free key") must be written with [`increment`],
/// [`compare_and_swap`] or [`batch`]: a [`get`] followed by a [`set`] can
/// lose another call's write made in between.
///
/// Every [`MemoryError`] except `OutcomeUnknown` means the write was not
/// applied. History is a window: a session keeps its newest turns (1,000
/// turns and 4 MiB by default) and the namespace refuses appends past its
/// own quota (100,000 turns and 64 MiB by default).
pub mod memory {
    use crate::bindings::agentkernel::agent::memory as raw;
    pub use raw::{BatchOp, MemoryError};
    use crate::{AgentError, Turn};

    impl From<MemoryError> for AgentError {
        fn from(e: MemoryError) -> Self {
            AgentError::CapabilityFailed(format!("memory: {e:?}"))
        }
    }

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, MemoryError> {
        raw::get(key)
    }
    /// The value under `key` as UTF-8 text (invalid bytes are replaced).
    pub fn get_string(key: &str) -> Result<Option<String>, MemoryError> {
        Ok(raw::get(key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    pub fn set(key: &str, value: &[u8]) -> Result<(), MemoryError> {
        raw::set(key, value)
    }
    pub fn set_string(key: &str, value: &str) -> Result<(), MemoryError> {
        raw::set(key, value.as_bytes())
    }
    /// Removes `key`; `true` if it existed.
    pub fn delete(key: &str) -> Result<bool, MemoryError> {
        raw::delete(key)
    }
    /// Keys starting with `prefix`, in order, at most `limit`.
    pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, MemoryError> {
        raw::list_keys(prefix, limit)
    }
    /// Atomically: if `key` holds `expected` (`None`: absent), sets it to
    /// `new` (`None`: deletes it) and returns `true`; otherwise changes
    /// nothing and returns `false`. Loop on `false` to update a value safely.
    pub fn compare_and_swap(key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, MemoryError> {
        raw::compare_and_swap(key, expected, new)
    }
    /// Atomically adds `delta` to the counter under `key` (absent counts as
    /// 0) and returns the new value: concurrent callers each get a distinct
    /// value, so it allocates ids safely. Stored as decimal text.
    pub fn increment(key: &str, delta: i64) -> Result<i64, MemoryError> {
        raw::increment(key, delta)
    }
    /// Applies `ops` in order, all or nothing (at most 64 steps, 1 MiB).
    /// A [`BatchOp::Expect`] that does not hold fails the batch with
    /// `MemoryError::Conflict` and nothing is written.
    pub fn batch(ops: &[BatchOp]) -> Result<(), MemoryError> {
        raw::batch(ops)
    }
    /// Appends a turn; the session's oldest turns are dropped when it is
    /// full, and `QuotaExceeded` means the namespace's history is full.
    pub fn append_history(session_id: &str, entry: &Turn) -> Result<(), MemoryError> {
        raw::append_history(session_id, entry)
    }
    /// The last `limit` turns of the session, oldest first.
    pub fn history(session_id: &str, limit: u32) -> Result<Vec<Turn>, MemoryError> {
        raw::history(session_id, limit)
    }
}

/// Chat completions through the host (needs `llm` granted).
///
/// Agents ask for a model *profile* (`fast`, `smart`, `code`, ...) that the
/// operator maps to a real model. With no LLM configured every call returns
/// [`LlmError::NotConfigured`]: degrade gracefully.
///
/// ```no_run
/// use agentkernel_sdk::llm::{self, Chat, ChatMessage, LlmError};
///
/// // The short form: a profile and messages.
/// let reply = llm::chat("fast", &[ChatMessage::user("Say hello")]);

///
/// fn summarise(text: &str) -> String {
///     match Chat::new("fast").system("Summarise in one sentence.").user(text).max_tokens(100).send() {
///         Ok(reply) => reply.content,
///         // No model available: fall back to something useful.
///         Err(LlmError::NotConfigured) => text.split('.').next().unwrap_or(text).to_string(),
///         Err(e) => format!("(summary unavailable: {e:?})"),
///     }
/// }
/// ```
pub mod llm {
    pub use crate::bindings::agentkernel::agent::llm::{
        ChatMessage, ChatOptions, ChatReply, LlmError, ResponseFormat, ToolCall, ToolDefinition, Usage,
    };
    /// The raw WIT call: messages plus every option.
    pub use crate::bindings::agentkernel::agent::llm::chat as chat_with_options;
    use crate::AgentError;

    impl LlmError {
        /// The stable code of this error, as the host's logs and ledger name it.
        pub fn code(&self) -> &'static str {
            match self {
                LlmError::NotConfigured => "not-configured",
                LlmError::BudgetExceeded(_) => "budget-exceeded",
                LlmError::ModelNotAllowed(_) => "model-not-allowed",
                LlmError::RateLimited(_) => "rate-limited",
                LlmError::Timeout => "timeout",
                LlmError::BadResponse(_) => "bad-response",
                LlmError::Upstream(_) => "upstream",
            }
        }
    }

    impl From<LlmError> for AgentError {
        fn from(e: LlmError) -> Self {
            AgentError::CapabilityFailed(format!("llm: {e:?}"))
        }
    }

    impl ChatMessage {
        fn plain(role: &str, content: impl Into<String>) -> Self {
            ChatMessage { role: role.to_string(), content: content.into(), tool_call_id: None, tool_calls: Vec::new() }
        }
        pub fn system(content: impl Into<String>) -> Self {
            Self::plain("system", content)
        }
        pub fn user(content: impl Into<String>) -> Self {
            Self::plain("user", content)
        }
        pub fn assistant(content: impl Into<String>) -> Self {
            Self::plain("assistant", content)
        }
        /// The assistant turn that requested `calls` (send it back before the results).
        pub fn assistant_tool_calls(calls: Vec<ToolCall>) -> Self {
            ChatMessage { tool_calls: calls, ..Self::plain("assistant", "") }
        }
        /// The result of tool call `call_id`.
        pub fn tool_result(call_id: &str, content: impl Into<String>) -> Self {
            ChatMessage { tool_call_id: Some(call_id.to_string()), ..Self::plain("tool", content) }
        }
    }

    /// One chat completion with the model behind `profile`, default options.
    pub fn chat(profile: &str, messages: &[ChatMessage]) -> Result<ChatReply, LlmError> {
        Chat::new(profile).messages(messages.iter().cloned()).send()
    }

    /// A chat request, built step by step.
    #[derive(Clone)]
    pub struct Chat {
        messages: Vec<ChatMessage>,
        options: ChatOptions,
    }

    impl Chat {
        pub fn new(profile: &str) -> Self {
            Chat {
                messages: Vec::new(),
                options: ChatOptions {
                    profile: profile.to_string(),
                    temperature: None,
                    max_tokens: None,
                    response_format: ResponseFormat::Text,
                    tools: Vec::new(),
                },
            }
        }
        pub fn system(self, content: impl Into<String>) -> Self {
            self.message(ChatMessage::system(content))
        }
        pub fn user(self, content: impl Into<String>) -> Self {
            self.message(ChatMessage::user(content))
        }
        pub fn message(mut self, m: ChatMessage) -> Self {
            self.messages.push(m);
            self
        }
        pub fn messages(mut self, ms: impl IntoIterator<Item = ChatMessage>) -> Self {
            self.messages.extend(ms);
            self
        }
        pub fn temperature(mut self, t: f32) -> Self {
            self.options.temperature = Some(t);
            self
        }
        /// Upper bound on completion tokens (policy may lower it further).
        pub fn max_tokens(mut self, n: u32) -> Self {
            self.options.max_tokens = Some(n);
            self
        }
        /// Ask for a JSON object reply (where the server supports it).
        pub fn json(mut self) -> Self {
            self.options.response_format = ResponseFormat::JsonObject;
            self
        }
        /// Offer a function the model may call; `schema` is its JSON Schema.
        pub fn tool(mut self, name: &str, description: &str, schema: &str) -> Self {
            self.options.tools.push(ToolDefinition {
                name: name.to_string(),
                description: description.to_string(),
                parameters_schema: schema.to_string(),
            });
            self
        }
        /// The messages so far (e.g. to continue after tool calls).
        pub fn history(&self) -> &[ChatMessage] {
            &self.messages
        }
        pub fn send(&self) -> Result<ChatReply, LlmError> {
            chat_with_options(&self.messages, &self.options)
        }
    }
}

/// Calling other agents through the host (needs `agents` granted).
///
/// The host refuses callees outside the grant (`not-allowed`), cycles and
/// chains longer than `max_depth` (`depth-exceeded`), and never lets a
/// callee run past the caller's deadline.
pub mod agents {
    pub use crate::bindings::agentkernel::agent::agents::*;
    use crate::AgentError;

    impl CallError {
        /// The stable code of this error.
        pub fn code(&self) -> &'static str {
            match self {
                CallError::NotFound(_) => "not-found",
                CallError::NotAllowed(_) => "not-allowed",
                CallError::DepthExceeded(_) => "depth-exceeded",
                CallError::BudgetExceeded(_) => "budget-exceeded",
                CallError::Failed(_) => "failed",
            }
        }
    }

    impl From<CallError> for AgentError {
        fn from(e: CallError) -> Self {
            AgentError::CapabilityFailed(format!("agents: {e:?}"))
        }
    }
}

/// Allow-listed outbound HTTP (needs `http` granted, with the hosts:
/// `[agents.NAME] http = { hosts = ["https://export.arxiv.org"] }`).
///
/// The host resolves names itself and refuses private and metadata
/// addresses, follows redirects only to allowed hosts, and caps each
/// response's size and time and the requests per call and per day; what it
/// refuses comes back as a typed [`HttpError`].
///
/// ```no_run
/// use agentkernel_sdk::http;
/// # fn f() -> Result<(), agentkernel_sdk::http::HttpError> {
/// let page = http::get("https://export.arxiv.org/api/query?search_query=all:wasm")?;
/// if page.status == 200 {
///     let atom = page.text();
/// #   let _ = atom;
/// }
/// let created = http::post_json("https://api.example.org/v1/items", &serde_json::json!({"name": "x"}))?;
/// # let _ = created;
/// # Ok(())
/// # }
/// ```
pub mod http {
    pub use crate::bindings::agentkernel::agent::http::*;
    use crate::AgentError;

    impl HttpError {
        /// The stable code of this error (the WIT case's name).
        pub fn code(&self) -> &'static str {
            match self {
                HttpError::HostNotAllowed(_) => "host-not-allowed",
                HttpError::AddressNotAllowed(_) => "address-not-allowed",
                HttpError::TooLarge(_) => "too-large",
                HttpError::Timeout => "timeout",
                HttpError::InvalidRequest(_) => "invalid-request",
                HttpError::Transport(_) => "transport",
                HttpError::BudgetExceeded(_) => "budget-exceeded",
            }
        }
    }

    impl From<HttpError> for AgentError {
        fn from(e: HttpError) -> Self {
            AgentError::CapabilityFailed(format!("http {}: {e:?}", e.code()))
        }
    }

    impl HttpResponse {
        /// The body as text (invalid UTF-8 replaced).
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// The body parsed as JSON.
        pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
            serde_json::from_slice(&self.body)
        }

        /// The first header named `name` (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
        }
    }

    /// `GET url`.
    pub fn get(url: &str) -> Result<HttpResponse, HttpError> {
        fetch(&HttpRequest { method: "GET".into(), url: url.into(), headers: Vec::new(), body: None, timeout_ms: None })
    }

    /// `POST url` with `body` as JSON.
    pub fn post_json<T: serde::Serialize>(url: &str, body: &T) -> Result<HttpResponse, HttpError> {
        let body = serde_json::to_vec(body).map_err(|e| HttpError::InvalidRequest(format!("body is not JSON: {e}")))?;
        let headers = vec![Header { name: "content-type".into(), value: "application/json".into() }];
        fetch(&HttpRequest { method: "POST".into(), url: url.into(), headers, body: Some(body), timeout_ms: None })
    }
}

/// Creating and improving agents through the host (needs `evolution`
/// granted; never granted by default).
///
/// ```no_run
/// use agentkernel_sdk::evolution::{self, TestCase};
/// # fn main() -> Result<(), agentkernel_sdk::evolution::EvolutionError> {
/// let cases = [TestCase::new("hello", "hello", ["HELLO"])];
/// let run = evolution::create_agent("shout", "Answers with the request in capitals", &cases)?;
/// let status = evolution::run_status(&run)?; // `running` until the engine decides
/// # let _ = status;
/// # Ok(())
/// # }
/// ```
pub mod evolution {
    pub use crate::bindings::agentkernel::agent::evolution::*;
    use crate::AgentError;

    impl EvolutionError {
        /// The stable code of this error (the WIT case's name).
        pub fn code(&self) -> &'static str {
            match self {
                EvolutionError::NotAllowed(_) => "not-allowed",
                EvolutionError::BudgetExceeded(_) => "budget-exceeded",
                EvolutionError::InvalidRequest(_) => "invalid-request",
                EvolutionError::Busy(_) => "busy",
                EvolutionError::NotFound(_) => "not-found",
                EvolutionError::Failed(_) => "failed",
            }
        }

        /// The host's message.
        pub fn message(&self) -> &str {
            match self {
                EvolutionError::NotAllowed(m)
                | EvolutionError::BudgetExceeded(m)
                | EvolutionError::InvalidRequest(m)
                | EvolutionError::Busy(m)
                | EvolutionError::NotFound(m)
                | EvolutionError::Failed(m) => m,
            }
        }
    }

    impl From<EvolutionError> for AgentError {
        fn from(e: EvolutionError) -> Self {
            AgentError::CapabilityFailed(format!("evolution {}: {}", e.code(), e.message()))
        }
    }

    impl TestCase {
        /// A visible case: `request` must answer with every string of `contains`.
        pub fn new<I, S>(name: &str, request: &str, contains: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            TestCase {
                name: name.into(),
                request: request.into(),
                expect_contains: contains.into_iter().map(Into::into).collect(),
                held_out: false,
            }
        }

        /// Used only to select, never shown to the code generator.
        pub fn held_out(mut self) -> Self {
            self.held_out = true;
            self
        }
    }

    impl RunInfo {
        /// Whether the run has ended (finished, failed or interrupted).
        pub fn is_done(&self) -> bool {
            self.status != "running"
        }
    }
}

/// AWS EC2 within policy (needs `aws-ec2` granted).
///
/// Every EC2 call takes a region (`None`: the host's). Policy may refuse a
/// call with [`Ec2Error::Denied`], whose [`Denial::rule`] names the rule; in
/// dry-run mode (the default) changing calls return a [`ChangeResult`] with
/// `dry_run` set and change nothing. An agent sees and changes only the
/// instances tagged `agentkernel:owner=<its name>`. [`current_genome`] and
/// [`propose_genome`] read the infrastructure genome and submit a changed
/// one (applied by an admin, or at once when the grant allows `auto_apply`).
pub mod aws_ec2 {
    pub use crate::bindings::agentkernel::agent::aws_ec2::*;
    use crate::AgentError;

    impl Tag {
        pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
            Tag { key: key.into(), value: value.into() }
        }
    }

    impl Filter {
        pub fn new(name: impl Into<String>, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
            Filter { name: name.into(), values: values.into_iter().map(Into::into).collect() }
        }
    }

    impl RunSpec {
        /// `count` instances of `instance_type` from `image_id`, no subnet, groups or tags.
        pub fn new(image_id: impl Into<String>, instance_type: impl Into<String>, count: u32) -> Self {
            RunSpec {
                image_id: image_id.into(),
                instance_type: instance_type.into(),
                count,
                subnet_id: None,
                security_group_ids: Vec::new(),
                tags: Vec::new(),
            }
        }
        pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            self.tags.push(Tag::new(key, value));
            self
        }
    }

    impl PolicyRule {
        /// The rule's name as policy and the audit log spell it.
        pub fn name(self) -> &'static str {
            match self {
                PolicyRule::Action => "action",
                PolicyRule::Region => "region",
                PolicyRule::InstanceType => "instance-type",
                PolicyRule::Image => "image",
                PolicyRule::MaxRunningInstances => "max-running-instances",
                PolicyRule::MaxHourlyCost => "max-hourly-cost",
                PolicyRule::ReservedTag => "reserved-tag",
                PolicyRule::RequestSize => "request-size",
                PolicyRule::GenomeOwner => "genome-owner",
            }
        }
    }

    impl Ec2Error {
        /// The stable code of this error (`denied:<rule>` for denials).
        pub fn code(&self) -> String {
            match self {
                Ec2Error::Denied(d) => format!("denied:{}", d.rule.name()),
                Ec2Error::NotOwned(_) => "not-owned".into(),
                Ec2Error::Throttled(_) => "throttled".into(),
                Ec2Error::InvalidParameter(_) => "invalid-parameter".into(),
                Ec2Error::Unavailable(_) => "unavailable".into(),
                Ec2Error::Aws(_) => "aws".into(),
            }
        }
        /// What went wrong, for a person.
        pub fn message(&self) -> &str {
            match self {
                Ec2Error::Denied(d) => &d.message,
                Ec2Error::NotOwned(m)
                | Ec2Error::Throttled(m)
                | Ec2Error::InvalidParameter(m)
                | Ec2Error::Unavailable(m)
                | Ec2Error::Aws(m) => m,
            }
        }
    }

    impl From<Ec2Error> for AgentError {
        fn from(e: Ec2Error) -> Self {
            AgentError::CapabilityFailed(format!("aws-ec2 {}: {}", e.code(), e.message()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_builder_collects_skills_and_capabilities() {
        let m = Manifest::new("n", "1.0.0", "d")
            .skill(Skill::new("s", "does s").keywords(["a", "b"]))
            .capability("memory", "why");
        assert_eq!(m.skills.len(), 1);
        assert_eq!(m.skills[0].keywords, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(m.capabilities[0].name, "memory");
    }

    #[test]
    fn response_data_is_json() {
        let r = Response::text("t").with_data(&serde_json::json!({"k": 1}));
        assert_eq!(r.data.as_deref(), Some(r#"{"k":1}"#));
    }

    #[test]
    fn chat_builder_collects_messages_and_options() {
        let c = llm::Chat::new("fast").system("s").user("u").max_tokens(5).json().tool("t", "d", "{}");
        assert_eq!(c.history().len(), 2);
        assert_eq!(c.history()[0].role, "system");
        let r = llm::ChatMessage::tool_result("id1", "42");
        assert_eq!((r.role.as_str(), r.tool_call_id.as_deref()), ("tool", Some("id1")));
    }

    #[test]
    fn request_context_parses_or_is_none() {
        let mut r = Request::new("s", "t");
        assert_eq!(r.context_as::<serde_json::Value>(), None);
        r.context = Some("not json".into());
        assert_eq!(r.context_as::<serde_json::Value>(), None);
        r.context = Some(r#"{"x":2}"#.into());
        assert_eq!(r.context_as::<serde_json::Value>().unwrap()["x"], 2);
    }
}
