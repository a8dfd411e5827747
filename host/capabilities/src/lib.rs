//! The `memory` and `agents` capabilities.
pub mod agents;
pub mod memory;

pub use agents::Agents;
pub use memory::Memory;
