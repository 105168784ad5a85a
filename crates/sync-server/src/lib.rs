//! The transport-independent server side of synckit: [`SyncService`]
//! (push, pull, live head notifications), the [`Authorizer`] trait with
//! [`AllowAll`] and [`StaticTokens`], and [`ServerLimits`].
//!
//! Transport crates (`sync-transport-http`, ...) adapt requests to these
//! calls and map [`sync_core::ErrorCode`]s to their status codes.

mod auth;
mod service;

pub use auth::{AllowAll, Authorizer, Denied, Principal, StaticTokens, TokensError};
pub use service::{ServerLimits, SyncService};
