//! The `memory`, `agents` and `evolution` capabilities.
pub mod agents;
pub mod evolution;
pub mod memory;

pub use agents::Agents;
pub use evolution::Evolution;
pub use memory::Memory;
