//! The `http` capability: [`Fetcher`] behind the WIT interface, within the
//! agent's [`HttpScope`], its requests per call and per day counted, and
//! every request recorded ([`HttpStore`]).
//!
//! Services it prepares from: `dyn HttpClient` (the [`Fetcher`] when
//! serving; [`Offline`] in the evolution benchmark, where no candidate
//! reaches the network) and `dyn HttpStore` (the host's backend).
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use wasmtime::component::{HasData, Linker};

use agentkernel_runtime::bindings::agentkernel::agent::http::{self as wit, HttpError};
use agentkernel_runtime::{CallInfo, CapabilityStates, Grant, HostCapability, InstanceState, PrepareError, PreparedCapability, parse_scope};
use agentkernel_storage::blocking;
use agentkernel_storage::http::{HttpRecord, HttpStore};

use crate::{CheckedScope, FetchError, FetchRecord, Fetcher, Header, HttpRequest, HttpResponse, HttpScope, precheck};

/// Where requests go: the network ([`Fetcher`]) or nowhere ([`Offline`]).
pub trait HttpClient: Send + Sync + 'static {
    fn fetch<'a>(
        &'a self,
        scope: &'a CheckedScope,
        request: HttpRequest,
        deadline: Instant,
    ) -> BoxFuture<'a, (Result<HttpResponse, FetchError>, FetchRecord)>;
}

impl HttpClient for Fetcher {
    fn fetch<'a>(
        &'a self,
        scope: &'a CheckedScope,
        request: HttpRequest,
        deadline: Instant,
    ) -> BoxFuture<'a, (Result<HttpResponse, FetchError>, FetchRecord)> {
        Box::pin(self.fetch_recorded(scope, request, deadline))
    }
}

/// The network client a host serves with: the system's root certificates,
/// or, where none can be loaded (a minimal container), none at all (plain
/// `http://` still works; every `https://` request fails its handshake as
/// `transport`), with a warning.
pub fn network_client() -> Arc<dyn HttpClient> {
    match Fetcher::new() {
        Ok(f) => Arc::new(f),
        Err(e) => {
            tracing::warn!("http capability: {e}; https requests will fail");
            match Fetcher::with_roots(rustls::RootCertStore::empty()) {
                Ok(f) => Arc::new(f),
                Err(e) => {
                    tracing::error!("http capability: {e}; every request will fail");
                    Arc::new(Offline)
                }
            }
        }
    }
}

/// The evolution benchmark's client: a request is checked exactly as a
/// fetch checks it before touching the network ([`precheck`]: its form,
/// the allow-list, a literal address), and every request that passes fails
/// as a network outage would (`transport`), so no candidate reaches the
/// network. (What a candidate can tell from that: its allowed requests all
/// fail, at once; see README, "what the benchmark cannot hide".)
pub struct Offline;

impl HttpClient for Offline {
    fn fetch<'a>(
        &'a self,
        scope: &'a CheckedScope,
        request: HttpRequest,
        _deadline: Instant,
    ) -> BoxFuture<'a, (Result<HttpResponse, FetchError>, FetchRecord)> {
        Box::pin(async move {
            let (checked, mut record) = precheck(scope, &request);
            let error = checked.err().unwrap_or_else(|| FetchError::Transport("connect: network is unreachable".into()));
            record.outcome = error.code();
            (Err(error), record)
        })
    }
}

/// `http` configured for one agent.
pub struct Prepared {
    pub scope: Arc<CheckedScope>,
    client: Arc<dyn HttpClient>,
    store: Arc<dyn HttpStore>,
}

/// One call's `http` state: what it may still request.
pub struct HttpState {
    agent: Arc<str>,
    scope: Arc<CheckedScope>,
    client: Arc<dyn HttpClient>,
    store: Arc<dyn HttpStore>,
    deadline: Instant,
    /// Attempts this call may still make, refused ones included.
    left_this_call: u32,
    /// Whether this call's first over-budget attempt was logged (the rest are not).
    noted_over_budget: bool,
}

impl PreparedCapability for Prepared {
    fn instance_state(&self, call: &CallInfo<'_>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(Box::new(HttpState {
            agent: call.agent.clone(),
            scope: self.scope.clone(),
            client: self.client.clone(),
            store: self.store.clone(),
            deadline: call.deadline,
            left_this_call: self.scope.requests_per_call(),
            noted_over_budget: false,
        }))
    }
}

struct HasHttp;
impl HasData for HasHttp {
    type Data<'a> = &'a mut HttpState;
}

/// Links `http` into any store whose data keeps capability states.
pub fn add_to_linker<T: CapabilityStates>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasHttp>(linker, |s| s.state::<HttpState>())
}

/// The `http` capability (see the crate docs for every bound).
pub struct Http;

impl HostCapability for Http {
    fn name(&self) -> &'static str {
        "http"
    }
    fn check_scope(&self, scope: &toml::Table) -> Result<(), String> {
        parse_scope::<HttpScope>(scope)?.compile().map(drop)
    }
    fn link(&self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
    fn prepare(&self, grant: &Grant<'_>) -> Result<Box<dyn PreparedCapability>, PrepareError> {
        let scope = parse_scope::<HttpScope>(grant.scope).and_then(|s| s.compile()).map_err(PrepareError::Scope)?;
        let client = grant.services.require::<dyn HttpClient>("HTTP client")?;
        let store = grant.services.require::<dyn HttpStore>("HTTP request log")?;
        Ok(Box::new(Prepared { scope: Arc::new(scope), client, store }))
    }
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn to_wit(e: FetchError) -> HttpError {
    match e {
        FetchError::HostNotAllowed(m) => HttpError::HostNotAllowed(m),
        FetchError::AddressNotAllowed(m) => HttpError::AddressNotAllowed(m),
        FetchError::TooLarge(n) => HttpError::TooLarge(n),
        FetchError::Timeout => HttpError::Timeout,
        FetchError::InvalidRequest(m) => HttpError::InvalidRequest(m),
        FetchError::Transport(m) => HttpError::Transport(m),
    }
}

/// What the request log keeps of a fetch record.
fn log_record(agent: &str, r: &FetchRecord) -> HttpRecord {
    HttpRecord {
        at: now_unix(),
        agent: agent.to_string(),
        method: r.method.clone(),
        scheme: r.scheme.clone(),
        host: r.host.chars().take(253).collect(),
        port: r.port,
        status: r.status,
        bytes: r.bytes_received,
        outcome: r.outcome.replace('_', "-"),
        elapsed_ms: r.elapsed.as_millis() as u64,
    }
}

impl HttpState {
    /// How long a request-log write may take: within the call's deadline.
    fn log_timeout(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(Instant::now()).min(blocking::DEFAULT_TIMEOUT)
    }

    /// Takes one request from the day's allowance, recording where it goes
    /// before it is sent.
    async fn reserve(&mut self, intent: &FetchRecord) -> Result<i64, HttpError> {
        let timeout = self.log_timeout();
        if timeout.is_zero() {
            return Err(HttpError::Timeout);
        }
        let per_day = u64::from(self.scope.requests_per_day());
        let (store, intent) = (self.store.clone(), HttpRecord { outcome: "pending".into(), ..log_record(&self.agent, intent) });
        let day_start = intent.at - intent.at.rem_euclid(86_400);
        let reserved = blocking::call(timeout, move || store.http_reserve(&intent, day_start, per_day))
            .await
            .map_err(|e| HttpError::Transport(format!("request log unavailable: {e}")))?;
        reserved.ok_or_else(|| HttpError::BudgetExceeded(format!("requests_per_day ({per_day}) used up (UTC)")))
    }

    /// Logs a request refused before it was sent (not counted against the
    /// daily budget; at most `requests_per_day` such records a day).
    async fn note(&self, record: &FetchRecord, outcome: &str) {
        let record = HttpRecord { outcome: outcome.to_string(), ..log_record(&self.agent, record) };
        let (store, cap) = (self.store.clone(), u64::from(self.scope.requests_per_day()));
        let day_start = record.at - record.at.rem_euclid(86_400);
        match blocking::call(self.log_timeout(), move || store.http_note(&record, day_start, cap)).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(agent = &*self.agent, "refused http requests past the day's log cap are not logged"),
            Err(e) => tracing::warn!(agent = &*self.agent, "cannot log a refused http request: {e}"),
        }
    }

    /// Completes the request's record (a failure is logged).
    async fn finish(&self, id: i64, r: &FetchRecord) {
        let record = log_record(&self.agent, r);
        let store = self.store.clone();
        if let Err(e) = blocking::call(blocking::DEFAULT_TIMEOUT, move || store.http_finish(id, &record)).await {
            tracing::error!(agent = &*self.agent, "cannot record an http request: {e}");
        }
    }
}

impl wit::Host for HttpState {
    async fn fetch(&mut self, req: wit::HttpRequest) -> wasmtime::Result<Result<wit::HttpResponse, HttpError>> {
        let request = HttpRequest {
            method: req.method,
            url: req.url,
            headers: req.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(),
            body: req.body,
            timeout_ms: req.timeout_ms,
        };
        // Every attempt, refused or not, takes one of the call's allowance:
        // a guest looping over forbidden hosts gets `budget-exceeded` too.
        let (checked, intent) = precheck(&self.scope, &request);
        if self.left_this_call == 0 {
            if !std::mem::replace(&mut self.noted_over_budget, true) {
                self.note(&intent, "budget-exceeded").await;
            }
            let n = self.scope.requests_per_call();
            return Ok(Err(HttpError::BudgetExceeded(format!("requests_per_call ({n}) used up"))));
        }
        self.left_this_call -= 1;
        // Refused by policy or malformed: logged, never sent, not counted
        // against the day's budget.
        if let Err(e) = checked {
            self.note(&intent, &intent.outcome.replace('_', "-")).await;
            return Ok(Err(to_wit(e)));
        }
        let id = match self.reserve(&intent).await {
            Ok(id) => id,
            Err(e) => {
                if matches!(e, HttpError::BudgetExceeded(_)) {
                    self.note(&intent, "budget-exceeded").await;
                }
                return Ok(Err(e));
            }
        };
        let (result, record) = self.client.fetch(&self.scope, request, self.deadline).await;
        self.finish(id, &record).await;
        Ok(result
            .map(|r| wit::HttpResponse {
                status: r.status,
                headers: r.headers.into_iter().map(|h| wit::Header { name: h.name, value: h.value }).collect(),
                body: r.body,
            })
            .map_err(to_wit))
    }
}
