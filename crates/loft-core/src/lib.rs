//! Loft's domain and use cases.
//!
//! This crate owns what Loft *means*: identities and their delegation chain, API keys and
//! scopes, the mail model and threading, the hash-chained audit log, and the use cases that tie
//! them together ([`service::Loft`]). It talks to the outside world only through ports:
//! [`store::Store`] for persistence, [`time::Clock`] for time and [`random::Random`] for
//! randomness. It must not depend on a web framework, a database driver or an MCP SDK; the
//! front doors (`loft-web`, `loft-mcp`, and later `loft-smtp`) are thin adapters over it.
//!
//! The wire types the doors and `loft-client` share are defined here, once ([`wire`]). Their
//! OpenAPI derives (feature `openapi`) and JSON schemas (feature `json-schema`) are optional:
//! the domain compiles without an HTTP-docs or JSON-schema library.

pub mod address;
pub mod audit;
pub mod caps;
pub mod console;
pub mod contacts;
pub mod delivery;
pub mod diff;
pub mod domains;
pub mod drafts;
pub mod error;
pub mod events;
pub mod extract;
pub mod identity;
pub mod ids;
pub mod inbound;
pub mod jobs;
pub mod keys;
pub mod limits;
pub mod mail;
pub mod mailauth;
pub mod notices;
pub mod oversight;
pub mod quota;
pub mod random;
pub mod rules;
pub mod runner;
pub mod schedule;
pub mod screening;
pub mod search;
pub mod service;
pub mod store;
pub mod text;
pub mod time;
pub mod vault;
pub mod webhooks;
pub mod wire;

pub use error::{Error, Result};
