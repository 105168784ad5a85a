//! The messages and query parameters of the HTTP binding, shared by the
//! client and the server so that both sides agree byte for byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use sync_core::Codec;
use sync_core::{Cursor, Error, Event, Filter, Result};

#[cfg(feature = "server")]
use crate::compression::q_value;

/// Path of the push endpoint.
pub const PUSH_PATH: &str = "/v1/push";
/// Path of the pull endpoint.
pub const PULL_PATH: &str = "/v1/pull";
/// Path of the health check.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Path of the Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";

/// The body of `POST /v1/push`.
///
/// ```
/// use sync_core::Codec;
/// use sync_transport_http::PushRequest;
/// let empty = PushRequest { events: vec![] };
/// assert_eq!(Codec::Postcard.encode(&empty).unwrap(), [0]);
/// assert_eq!(Codec::Json.encode(&empty).unwrap(), br#"{"events":[]}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The events to store, in the order the answer's results follow.
    pub events: Vec<Event>,
}

/// The query of `GET /v1/pull`: where to start, how many, which events.
///
/// ```
/// use sync_core::{Cursor, Filter};
/// use sync_transport_http::PullParams;
/// let params = PullParams {
///     after: Cursor::START,
///     limit: 50,
///     filter: Filter::default().kind("a.b").kind("c").metadata("tenant", "acme"),
/// };
/// let query = params.to_query();
/// assert_eq!(query, "after=0&limit=50&kind=a.b&kind=c&meta.tenant=acme");
/// assert_eq!(PullParams::from_query(&query).unwrap(), params);
/// assert_eq!(PullParams::from_query("").unwrap().limit, PullParams::DEFAULT_LIMIT);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullParams {
    /// Return events after this position (`after`, default `0`).
    pub after: Cursor,
    /// At most this many events (`limit`, default 1000; the server may lower it).
    pub limit: usize,
    /// Only events that pass (`aggregate_prefix`, repeated `kind`, `meta.<key>`,
    /// `exclude_origin`).
    pub filter: Filter,
}

impl Default for PullParams {
    fn default() -> Self {
        PullParams { after: Cursor::START, limit: Self::DEFAULT_LIMIT, filter: Filter::default() }
    }
}

impl PullParams {
    /// `limit` when the query has none.
    pub const DEFAULT_LIMIT: usize = 1000;

    /// The URL query (without `?`), form-urlencoded.
    pub fn to_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("after", &self.after.to_string());
        query.append_pair("limit", &self.limit.to_string());
        if let Some(prefix) = &self.filter.aggregate_prefix {
            query.append_pair("aggregate_prefix", prefix);
        }
        for kind in &self.filter.kinds {
            query.append_pair("kind", kind);
        }
        for (key, value) in &self.filter.metadata {
            query.append_pair(&format!("meta.{key}"), value);
        }
        if let Some(node) = &self.filter.exclude_origin {
            query.append_pair("exclude_origin", &node.to_string());
        }
        query.finish()
    }

    /// Parses a URL query (without `?`). A garbled `after` fails with code
    /// `bad_cursor`; a garbled `limit`, an unknown or repeated key (other
    /// than `kind`) fails with `invalid_input`, so that a misspelt filter is
    /// never silently ignored.
    pub fn from_query(query: &str) -> Result<PullParams> {
        let mut params = PullParams::default();
        let (mut seen_after, mut seen_limit) = (false, false);
        let mut metadata = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let once = |seen: &mut bool| {
                if std::mem::replace(seen, true) {
                    Err(Error::invalid(format!("query parameter {key:?} is repeated")))
                } else {
                    Ok(())
                }
            };
            match key.as_ref() {
                "after" => {
                    once(&mut seen_after)?;
                    params.after = value.parse()?;
                }
                "limit" => {
                    once(&mut seen_limit)?;
                    params.limit = parse_limit(&value)?;
                }
                "aggregate_prefix" => {
                    if params.filter.aggregate_prefix.is_some() {
                        return Err(Error::invalid("query parameter \"aggregate_prefix\" is repeated"));
                    }
                    params.filter.aggregate_prefix = Some(value.into_owned());
                }
                "kind" => params.filter.kinds.push(value.into_owned()),
                "exclude_origin" => {
                    if params.filter.exclude_origin.is_some() {
                        return Err(Error::invalid("query parameter \"exclude_origin\" is repeated"));
                    }
                    params.filter.exclude_origin = Some(value.parse()?);
                }
                other => match other.strip_prefix("meta.") {
                    Some("") => return Err(Error::invalid("query parameter \"meta.\" names no metadata key")),
                    Some(meta_key) => {
                        if metadata.insert(meta_key.to_owned(), value.into_owned()).is_some() {
                            return Err(Error::invalid(format!("query parameter {other:?} is repeated")));
                        }
                    }
                    None => {
                        return Err(Error::invalid(format!(
                            "unknown query parameter {:?}; expected after, limit, aggregate_prefix, kind, meta.<key> or exclude_origin",
                            other.chars().take(64).collect::<String>()
                        )));
                    }
                },
            }
        }
        params.filter.metadata = metadata;
        Ok(params)
    }
}

fn parse_limit(value: &str) -> Result<usize> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(format!(
            "limit must be a decimal number, got {:?}",
            value.chars().take(32).collect::<String>()
        )));
    }
    // Anything above usize::MAX is simply "as many as allowed".
    Ok(value.parse().unwrap_or(usize::MAX))
}

/// The codec the `Accept` header asks for. `None` (header absent or
/// empty) and `*/*` / `application/*` mean `default`. Among the listed
/// types with q > 0, the highest q wins, the earlier one on a tie.
/// `Err(())` when the header names neither `application/x-postcard` nor
/// `application/json` (the server answers 406).
#[cfg(feature = "server")]
pub(crate) fn negotiate_codec(accept: Option<&str>, default: Codec) -> Result<Codec, ()> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(default);
    };
    let mut best: Option<(f32, Codec)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let essence = parts.next().unwrap_or("").trim();
        let q = q_value(parts);
        let codec = if essence == "*/*" || essence.eq_ignore_ascii_case("application/*") {
            Some(default)
        } else {
            Codec::from_media_type(essence)
        };
        if let Some(codec) = codec
            && q > 0.0
            && best.is_none_or(|(best_q, _)| q > best_q)
        {
            best = Some((q, codec));
        }
    }
    best.map(|(_, codec)| codec).ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::{ErrorCode, NodeId};

    #[test]
    fn query_round_trips_odd_characters() {
        let params = PullParams {
            after: Cursor::new(NodeId::random(), 99),
            limit: 7,
            filter: Filter::default()
                .aggregate_prefix("a b&c=d/é")
                .kind("k+1")
                .metadata("tenant id", "x&y")
                .metadata("p", ""),
        };
        assert_eq!(PullParams::from_query(&params.to_query()).unwrap(), params);
    }

    #[test]
    fn garbled_queries_are_refused_with_the_right_code() {
        let code = |q: &str| PullParams::from_query(q).unwrap_err().code();
        assert_eq!(code("after=nope"), ErrorCode::BadCursor);
        assert_eq!(code("after=0&after=0"), ErrorCode::InvalidInput);
        assert_eq!(code("limit=-1"), ErrorCode::InvalidInput);
        assert_eq!(code("limit=1e3"), ErrorCode::InvalidInput);
        assert_eq!(code("limit="), ErrorCode::InvalidInput);
        assert_eq!(code("limit=1&limit=2"), ErrorCode::InvalidInput);
        assert_eq!(code("kinds=a"), ErrorCode::InvalidInput);
        assert_eq!(code("meta.=a"), ErrorCode::InvalidInput);
        assert_eq!(code("meta.t=a&meta.t=b"), ErrorCode::InvalidInput);
        assert_eq!(code("aggregate_prefix=a&aggregate_prefix=b"), ErrorCode::InvalidInput);
        assert_eq!(PullParams::from_query("limit=99999999999999999999999").unwrap().limit, usize::MAX);
    }

    #[cfg(feature = "server")]
    #[test]
    fn accept_negotiation() {
        let json = Codec::Json;
        let pc = Codec::Postcard;
        assert_eq!(negotiate_codec(None, pc), Ok(pc));
        assert_eq!(negotiate_codec(Some("*/*"), json), Ok(json));
        assert_eq!(negotiate_codec(Some("application/json"), pc), Ok(json));
        assert_eq!(negotiate_codec(Some("application/json;q=0.5, application/x-postcard"), json), Ok(pc));
        assert_eq!(negotiate_codec(Some("text/html, application/json; charset=utf-8"), pc), Ok(json));
        assert_eq!(negotiate_codec(Some("text/html"), pc), Err(()));
        assert_eq!(negotiate_codec(Some("application/json;q=0"), pc), Err(()));
    }
}
