//! The server half of the `loft` binary, as a library: [`serve`] holds `loft serve`'s settings,
//! the backend choice and [`serve::app`], which wires the whole server without a listener.
//!
//! The binary (`main.rs`) is its main user. The only other one is `loft-bench`, which builds
//! this very server in its own process to measure it; no other crate may depend on this one
//! (front doors and stores are composed here, never the other way round).

pub mod mcp;
pub mod serve;
