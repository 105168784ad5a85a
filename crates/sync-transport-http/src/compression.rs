//! Body compression (`Content-Encoding` / `Accept-Encoding`) with a hard cap
//! on decompressed size.

use std::io::{self, Read};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use snafu::ResultExt;

use crate::error::{CorruptSnafu, DecompressError, TooLargeSnafu};

/// Bodies at or below this size are sent uncompressed by the server, even
/// when the client accepts compression: the framing costs more than it saves.
pub const MIN_COMPRESSED_BODY: usize = 1024;

/// zstd level for bodies we compress: the library default, a good
/// speed/ratio balance for event batches.
const ZSTD_LEVEL: i32 = 3;

/// A body encoding.
///
/// ```
/// use sync_transport_http::Compression;
/// let body = vec![7u8; 10_000];
/// for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
///     let packed = c.compress(&body).unwrap();
///     assert_eq!(c.decompress(&packed, 10_000).unwrap(), body);
///     assert!(c.decompress(&packed, 9_999).is_err());
/// }
/// assert_eq!(Compression::from_content_encoding("GZIP"), Some(Compression::Gzip));
/// assert_eq!(Compression::from_accept_encoding("gzip, zstd;q=0.5"), Compression::Zstd);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression (`identity`).
    #[default]
    None,
    /// `gzip` (RFC 1952).
    Gzip,
    /// `zstd` (RFC 8878).
    Zstd,
}

impl Compression {
    /// The `Content-Encoding` token, `None` for no compression.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }

    /// The encoding named by a `Content-Encoding` value: `gzip` (or
    /// `x-gzip`), `zstd`, `identity` or empty. Anything else, including a
    /// list of several encodings, is `None` (the server answers 415).
    pub fn from_content_encoding(value: &str) -> Option<Compression> {
        let token = value.trim();
        if token.is_empty() || token.eq_ignore_ascii_case("identity") {
            Some(Compression::None)
        } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            Some(Compression::Gzip)
        } else if token.eq_ignore_ascii_case("zstd") {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// The preferred encoding allowed by an `Accept-Encoding` value: zstd
    /// if listed with a non-zero q, else gzip, else none. `*` is not
    /// expanded: a client that wants compression names it.
    pub fn from_accept_encoding(value: &str) -> Compression {
        let mut gzip = false;
        for item in value.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim();
            if !q_is_positive(parts) {
                continue;
            }
            if token.eq_ignore_ascii_case("zstd") {
                return Compression::Zstd;
            }
            gzip |= token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip");
        }
        if gzip { Compression::Gzip } else { Compression::None }
    }

    /// Compresses `body` (a copy for [`Compression::None`]).
    pub fn compress(self, body: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(body.to_vec()),
            Compression::Gzip => {
                let mut encoder =
                    GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), flate2::Compression::default());
                io::Write::write_all(&mut encoder, body)?;
                encoder.finish()
            }
            Compression::Zstd => zstd::bulk::compress(body, ZSTD_LEVEL),
        }
    }

    /// Decompresses `body`, failing once the output would exceed `limit`
    /// bytes. Memory use stays within the limit whatever the input claims:
    /// the decoder's output is read through `take(limit + 1)` into a buffer
    /// that never grows past `limit + 1`.
    pub fn decompress(self, body: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
        match self {
            Compression::None => {
                if body.len() > limit {
                    return TooLargeSnafu { limit }.fail();
                }
                Ok(body.to_vec())
            }
            Compression::Gzip => read_capped(MultiGzDecoder::new(body), limit),
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(body).context(CorruptSnafu)?;
                decoder.window_log_max(zstd_window_log(limit)).context(CorruptSnafu)?;
                read_capped(decoder, limit)
            }
        }
    }
}

/// False when the `;`-parameters of an encoding or media range say `q=0`.
pub(crate) fn q_is_positive<'a>(params: impl Iterator<Item = &'a str>) -> bool {
    q_value(params) > 0.0
}

/// The `q` parameter of an `Accept*` list item (1.0 when absent, 0.0 when garbled).
pub(crate) fn q_value<'a>(params: impl Iterator<Item = &'a str>) -> f32 {
    for param in params {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            return value.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0);
        }
    }
    1.0
}

/// The largest zstd window we let a frame ask for: large enough for any
/// frame a normal encoder makes (8 MiB covers every level without
/// `--long`), and no larger than the output limit beyond that, capped at
/// zstd's own default of 128 MiB.
fn zstd_window_log(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(23, 27)
}

/// Reads all of `reader` into a buffer, failing as soon as more than
/// `limit` bytes come out. The reader is wrapped in `take(limit + 1)`, and
/// the buffer grows by doubling but never beyond `limit` bytes of capacity.
fn read_capped(reader: impl Read, limit: usize) -> Result<Vec<u8>, DecompressError> {
    const CHUNK: usize = 64 * 1024;
    let mut reader = reader.take(limit.saturating_add(1) as u64);
    let mut scratch = vec![0u8; CHUNK];
    let mut out: Vec<u8> = Vec::new();
    loop {
        let n = match reader.read(&mut scratch) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(DecompressError::Corrupt { source }),
        };
        let needed = out.len() + n;
        if needed > limit {
            return TooLargeSnafu { limit }.fail();
        }
        if out.capacity() < needed {
            let target = (out.capacity() * 2).max(CHUNK).clamp(needed, limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&scratch[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_prefers_zstd_and_honours_q_zero() {
        assert_eq!(Compression::from_accept_encoding("gzip"), Compression::Gzip);
        assert_eq!(Compression::from_accept_encoding("gzip, deflate, br, zstd"), Compression::Zstd);
        assert_eq!(Compression::from_accept_encoding("zstd;q=0, gzip;q=0.1"), Compression::Gzip);
        assert_eq!(Compression::from_accept_encoding("identity, br"), Compression::None);
        assert_eq!(Compression::from_accept_encoding("*"), Compression::None);
        assert_eq!(Compression::from_accept_encoding("gzip;q=x"), Compression::None);
    }

    #[test]
    fn content_encoding_is_strict() {
        assert_eq!(Compression::from_content_encoding("identity"), Some(Compression::None));
        assert_eq!(Compression::from_content_encoding(" zstd "), Some(Compression::Zstd));
        assert_eq!(Compression::from_content_encoding("br"), None);
        assert_eq!(Compression::from_content_encoding("gzip, zstd"), None);
    }

    #[test]
    fn buffer_never_exceeds_the_cap() {
        let zeros = vec![0u8; 5 << 20];
        for c in [Compression::Gzip, Compression::Zstd] {
            let packed = c.compress(&zeros).unwrap();
            for limit in [0, 1, 1000, 65_536, 100_000, (5 << 20) - 1] {
                let err = c.decompress(&packed, limit).unwrap_err();
                assert!(matches!(err, DecompressError::TooLarge { limit: l } if l == limit));
            }
            assert_eq!(c.decompress(&packed, 5 << 20).unwrap().len(), 5 << 20);
        }
        let out = read_capped(&zeros[..100_000], 100_000).unwrap();
        assert!(out.capacity() <= 100_000);
    }

    #[test]
    fn corrupt_input_is_reported() {
        for c in [Compression::Gzip, Compression::Zstd] {
            let mut packed = c.compress(b"hello hello hello hello").unwrap();
            let keep = packed.len() / 2;
            packed.truncate(keep);
            assert!(matches!(c.decompress(&packed, 1000), Err(DecompressError::Corrupt { .. })));
            assert!(matches!(c.decompress(b"definitely not compressed", 1000), Err(DecompressError::Corrupt { .. })));
        }
    }

    #[test]
    fn window_log_bounds() {
        assert_eq!(zstd_window_log(1), 23);
        assert_eq!(zstd_window_log(64 << 20), 26);
        assert_eq!(zstd_window_log((64 << 20) + 1), 27);
        assert_eq!(zstd_window_log(usize::MAX), 27);
    }
}
