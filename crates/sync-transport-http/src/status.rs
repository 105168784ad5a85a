//! Error codes on the wire: the one code → HTTP status mapping, its
//! inverse for clients, and the JSON error body.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use sync_core::ErrorCode;

/// The HTTP status for an error code. This is the only place the server
/// turns a [`ErrorCode`] into a status; `docs/protocol.md` has the same table.
///
/// ```
/// use http::StatusCode;
/// use sync_core::ErrorCode;
/// use sync_transport_http::status_for;
/// assert_eq!(status_for(ErrorCode::BadCursor), StatusCode::BAD_REQUEST);
/// assert_eq!(status_for(ErrorCode::Timeout), StatusCode::GATEWAY_TIMEOUT);
/// ```
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput | ErrorCode::Malformed | ErrorCode::BadCursor => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unsupported => StatusCode::NOT_IMPLEMENTED,
        // Storage, Internal, and codes added to sync-core later.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code a client assumes for an error status whose body carries no
/// known code (a proxy's error page, an empty body, a newer server's code).
///
/// ```
/// use http::StatusCode;
/// use sync_core::ErrorCode;
/// use sync_transport_http::code_for_status;
/// assert_eq!(code_for_status(StatusCode::BAD_GATEWAY), ErrorCode::Unavailable);
/// ```
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        406 | 415 => ErrorCode::UnsupportedMediaType,
        408 | 504 => ErrorCode::Timeout,
        413 => ErrorCode::TooLarge,
        429 | 502 | 503 => ErrorCode::Unavailable,
        501 => ErrorCode::Unsupported,
        400..=499 => ErrorCode::InvalidInput,
        _ => ErrorCode::Internal,
    }
}

/// The JSON body of every error response: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code (snake_case wire name of [`ErrorCode`]).
    pub code: ErrorCode,
    /// A human-readable explanation; not meant to be parsed.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_status_where_the_status_is_unique() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::TooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::Timeout,
            ErrorCode::Unavailable,
            ErrorCode::Unsupported,
            ErrorCode::Internal,
        ] {
            assert_eq!(code_for_status(status_for(code)), code, "{code}");
        }
        for code in [ErrorCode::InvalidInput, ErrorCode::Malformed, ErrorCode::BadCursor] {
            assert_eq!(status_for(code), StatusCode::BAD_REQUEST);
        }
        assert_eq!(status_for(ErrorCode::Storage), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
