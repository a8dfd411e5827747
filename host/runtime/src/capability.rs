//! The one shape every host capability has.
//!
//! A capability is a value implementing [`HostCapability`]: it names its
//! WIT interface, parses and checks its own scope from its policy table,
//! links itself into a linker (generic over the store, through
//! [`CapabilityStates`]), and prepares, at load, what every call of one
//! agent shares ([`PreparedCapability`]), which builds the per-instance
//! state of each call. The host hands the runtime one list of them
//! (`agentkernel_core::capabilities::all`); policy, availability, refusal
//! messages, `agentkernel agents`, linking and per-instance state all come
//! from that list, so linking and state cannot disagree: the runtime links
//! exactly the capabilities it prepared.
//!
//! What capabilities need from the host (storage, the LLM service, the
//! agent directory) they take from [`Services`] when they prepare, so a
//! capability crate depends on the runtime and on the crates of its
//! backends, never on the host that assembles them.
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;
use wasmtime::component::Linker;

use crate::CallContext;
use crate::limits::Limits;

/// Facts about one call that the per-instance states are built from.
pub struct CallInfo<'a> {
    pub agent: &'a Arc<str>,
    pub session: &'a str,
    pub limits: &'a Limits,
    /// When the call must end.
    pub deadline: Instant,
    pub context: &'a CallContext,
}

/// What a capability prepares for one agent from.
pub struct Grant<'a> {
    pub agent: &'a str,
    /// The grant's scope table (empty for `true`).
    pub scope: &'a toml::Table,
    pub limits: &'a Limits,
    pub services: &'a Services,
}

/// Why a capability could not be prepared for an agent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PrepareError {
    #[error("invalid scope: {0}")]
    Scope(String),
    #[error("this host has no {0} (the capability needs it)")]
    MissingService(&'static str),
}

/// A host capability: one WIT interface of `agentkernel:agent`.
pub trait HostCapability: Send + Sync + 'static {
    /// The WIT interface name (`agentkernel:agent/NAME`), also its name in
    /// messages. Its policy key is the same with `_` for `-`.
    fn name(&self) -> &'static str;

    /// Granted to an agent whose policy does not mention it.
    fn granted_by_default(&self) -> bool {
        false
    }

    /// Checks a grant's scope table (config load refuses a bad one).
    fn check_scope(&self, scope: &toml::Table) -> Result<(), String>;

    /// Links the interface into `linker`; its host functions find their
    /// state with [`CapabilityStates::state`].
    fn link(&self, linker: &mut Linker<crate::InstanceState>) -> wasmtime::Result<()>;

    /// What every call of one agent granted this capability shares.
    fn prepare(&self, grant: &Grant<'_>) -> Result<Box<dyn PreparedCapability>, PrepareError>;
}

/// A capability configured for one agent; builds each call's state.
pub trait PreparedCapability: Any + Send + Sync {
    /// The per-instance state of one call (the type the capability's host
    /// functions look up with [`CapabilityStates::state`]).
    /// `None` for a capability whose state the runtime keeps itself (`log`).
    fn instance_state(&self, call: &CallInfo<'_>) -> Option<Box<dyn Any + Send>>;
}

impl dyn PreparedCapability {
    /// The concrete prepared value, for callers that know its type.
    pub fn downcast_ref<T: PreparedCapability>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref()
    }
}

/// Parses a scope table into the capability's own scope type.
pub fn parse_scope<S: DeserializeOwned>(scope: &toml::Table) -> Result<S, String> {
    S::deserialize(toml::Value::Table(scope.clone())).map_err(|e| e.to_string().trim().to_string())
}

/// A store's per-call capability states, looked up by type. Capabilities
/// link against any store data implementing this (as wasmtime's WASI
/// crates link against any `WasiView`).
pub trait CapabilityStates: Send + 'static {
    /// The state of type `S` this instance was prepared with.
    ///
    /// # Panics
    /// If the instance has none: the runtime prepares a state for every
    /// capability it links, so this is a runtime bug, not a guest error.
    fn state<S: Any + Send>(&mut self) -> &mut S;
}

/// The per-call states of the capabilities one instance was linked with.
#[derive(Default)]
pub struct States(Vec<Box<dyn Any + Send>>);

impl States {
    pub fn push(&mut self, state: Box<dyn Any + Send>) {
        self.0.push(state);
    }
    pub fn get_mut<S: Any>(&mut self) -> Option<&mut S> {
        self.0.iter_mut().find_map(|s| s.downcast_mut::<S>())
    }
}

/// Shared services capabilities take what they need from, keyed by type
/// (`Arc<dyn Storage>`, `Arc<LlmService>`, ...). The host fills it when it
/// assembles a runtime; the benchmark fills it with its doubles.
#[derive(Default, Clone)]
pub struct Services(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl Services {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) the service of type `T`.
    pub fn insert<T: ?Sized + Send + Sync + 'static>(&mut self, service: Arc<T>) -> &mut Self {
        self.0.insert(TypeId::of::<Arc<T>>(), Arc::new(service));
        self
    }
    pub fn with<T: ?Sized + Send + Sync + 'static>(mut self, service: Arc<T>) -> Self {
        self.insert(service);
        self
    }
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0.get(&TypeId::of::<Arc<T>>()).and_then(|s| s.downcast_ref::<Arc<T>>()).cloned()
    }
    /// [`get`](Self::get), or the error a capability reports when preparing.
    pub fn require<T: ?Sized + Send + Sync + 'static>(&self, what: &'static str) -> Result<Arc<T>, PrepareError> {
        self.get().ok_or(PrepareError::MissingService(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Backend: Send + Sync {
        fn name(&self) -> &str;
    }
    struct A;
    impl Backend for A {
        fn name(&self) -> &str {
            "a"
        }
    }

    #[test]
    fn services_are_found_by_type_including_trait_objects() {
        let services = Services::new().with::<dyn Backend>(Arc::new(A)).with(Arc::new(7u32));
        assert_eq!(services.get::<dyn Backend>().unwrap().name(), "a");
        assert_eq!(*services.get::<u32>().unwrap(), 7);
        assert!(services.get::<u64>().is_none());
        assert!(matches!(services.require::<u64>("a counter"), Err(PrepareError::MissingService("a counter"))));
    }

    #[test]
    fn states_are_found_by_type() {
        let mut states = States::default();
        states.push(Box::new(1u8));
        states.push(Box::new(String::from("x")));
        *states.get_mut::<u8>().unwrap() += 1;
        assert_eq!(*states.get_mut::<u8>().unwrap(), 2);
        assert_eq!(states.get_mut::<String>().unwrap(), "x");
        assert!(states.get_mut::<u16>().is_none());
    }
}
