//! Host-side bindings generated from `wit/`. Every import is async (host
//! calls never block an executor thread) and trappable (a host bug becomes a
//! trap of that call, not a host crash).
wasmtime::component::bindgen!({
    path: "../../wit",
    world: "agent",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::agentkernel::agent::types::{Role, Skill, Turn};
