//! Who may push and pull what: [`Authorizer`], [`Principal`] and the two
//! built-in authorizers.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use snafu::{ResultExt, Snafu};
use subtle::ConstantTimeEq;
use sync_core::{Event, Filter};

/// An authenticated caller and the scope it may touch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Principal {
    /// A name for logs and for the `source` of pushed events.
    pub name: String,
    /// When set, the caller only sees and writes events whose metadata
    /// `tenant` equals this value.
    #[serde(default)]
    pub tenant: Option<String>,
    /// When not empty, the caller only sees and writes aggregates whose id
    /// starts with one of these prefixes.
    #[serde(default)]
    pub aggregate_prefixes: Vec<String>,
}

impl Principal {
    /// A caller allowed everything.
    pub fn unrestricted(name: impl Into<String>) -> Self {
        Principal { name: name.into(), tenant: None, aggregate_prefixes: Vec::new() }
    }

    /// Is `event` inside this principal's scope?
    pub fn allows(&self, event: &Event) -> bool {
        self.check(event).is_ok()
    }

    /// Like [`Principal::allows`], with the reason when it is not.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        if let Some(tenant) = &self.tenant
            && event.metadata.get("tenant") != Some(tenant)
        {
            return Err(format!(
                "event {} has tenant {:?}; {} may only write tenant {tenant:?}",
                event.id,
                event.metadata.get("tenant").map(String::as_str).unwrap_or(""),
                self.name
            ));
        }
        if !self.aggregate_prefixes.is_empty()
            && !self.aggregate_prefixes.iter().any(|p| event.aggregate_id.starts_with(p.as_str()))
        {
            return Err(format!(
                "aggregate {:?} is outside the prefixes {:?} of {}",
                event.aggregate_id, self.aggregate_prefixes, self.name
            ));
        }
        Ok(())
    }

    /// `filter` narrowed to this principal's tenant (prefixes are checked per
    /// event with [`Principal::allows`]). A filter that asks for another
    /// tenant is refused rather than silently rewritten.
    pub fn narrow(&self, filter: &Filter) -> sync_core::Result<Filter> {
        let Some(tenant) = &self.tenant else {
            return Ok(filter.clone());
        };
        match filter.metadata.get("tenant") {
            Some(asked) if asked != tenant => Err(sync_core::Error::Remote {
                code: sync_core::ErrorCode::Forbidden,
                message: format!("{} may not read tenant {asked:?}", self.name),
            }),
            _ => Ok(filter.clone().metadata("tenant", tenant.clone())),
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` credentials (HTTP 401).
    MissingToken,
    /// Credentials not known (HTTP 401).
    UnknownToken,
}

/// Maps the bearer token of a request to a [`Principal`].
pub trait Authorizer: Send + Sync + 'static {
    /// The principal for `token` (`None` when the request carried none).
    fn authenticate(&self, token: Option<&str>) -> Result<Principal, Denied>;
}

/// Lets every request in, with or without a token, unrestricted.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authenticate(&self, _: Option<&str>) -> Result<Principal, Denied> {
        Ok(Principal::unrestricted("anonymous"))
    }
}

/// A fixed map of bearer tokens to principals, typically loaded from a JSON
/// file:
///
/// ```
/// use sync_server::{Authorizer, StaticTokens};
/// let tokens = StaticTokens::from_json(r#"{
///   "s3cret-a": {"name": "alice", "tenant": "acme", "aggregate_prefixes": ["todo-"]},
///   "s3cret-ops": {"name": "ops"}
/// }"#).unwrap();
/// let alice = tokens.authenticate(Some("s3cret-a")).unwrap();
/// assert_eq!(alice.tenant.as_deref(), Some("acme"));
/// assert!(tokens.authenticate(Some("guess")).is_err());
/// assert!(tokens.authenticate(None).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticTokens {
    tokens: HashMap<String, Principal>,
}

/// A tokens file that could not be used.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum TokensError {
    /// The file could not be read.
    #[snafu(display("cannot read tokens file {path}: {source}"))]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JSON is not a map of token to principal.
    #[snafu(display("tokens file is not a JSON object of token -> {{name, tenant?, aggregate_prefixes?}}: {source}"))]
    Parse {
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A token is empty.
    #[snafu(display("tokens file has an empty token"))]
    EmptyToken,
}

impl StaticTokens {
    /// No tokens yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one token.
    pub fn with(mut self, token: impl Into<String>, principal: Principal) -> Self {
        self.tokens.insert(token.into(), principal);
        self
    }

    /// Parses `{"token": {"name": ..., "tenant": ..., "aggregate_prefixes": [...]}, ...}`.
    pub fn from_json(json: &str) -> Result<Self, TokensError> {
        let tokens: HashMap<String, Principal> = serde_json::from_str(json).context(ParseSnafu)?;
        if tokens.keys().any(|t| t.is_empty()) {
            return EmptyTokenSnafu.fail();
        }
        Ok(StaticTokens { tokens })
    }

    /// Reads a JSON tokens file (see [`StaticTokens::from_json`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokensError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).context(ReadSnafu { path: path.display().to_string() })?;
        Self::from_json(&text)
    }
}

impl Authorizer for StaticTokens {
    fn authenticate(&self, token: Option<&str>) -> Result<Principal, Denied> {
        let token = token.ok_or(Denied::MissingToken)?;
        // Compare against every stored token in constant time, so timing
        // does not reveal how much of a guess was right.
        let mut found = None;
        for (known, principal) in &self.tokens {
            if bool::from(known.as_bytes().ct_eq(token.as_bytes())) {
                found = Some(principal);
            }
        }
        found.cloned().ok_or(Denied::UnknownToken)
    }
}
