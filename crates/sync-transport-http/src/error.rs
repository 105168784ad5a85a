//! The errors of this crate. Requests and answers fail with
//! [`sync_core::Error`] (client) or an HTTP error answer (server); the one
//! error of our own says why a compressed body was refused.

use snafu::Snafu;

/// Why a compressed body was refused.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum DecompressError {
    /// The body decompresses to more than the limit (decompression stopped
    /// there).
    #[snafu(display("body decompresses to more than {limit} bytes (the limit)"))]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not valid for its encoding.
    #[snafu(display("body does not decompress: {source}"))]
    Corrupt {
        /// The decoder's error.
        source: std::io::Error,
    },
}
