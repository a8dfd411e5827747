//! The host: configuration, the list of capabilities, the registry of
//! loaded agents and the chat service, assembled by [`host::Host`].
pub mod api;
pub mod capabilities;
pub mod chat;
pub mod config;
pub mod follow;
pub mod host;
pub mod registry;
pub mod routing_index;
pub mod research;
pub mod scaffold;
pub mod telemetry;
