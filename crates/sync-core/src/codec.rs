//! Wire encodings: postcard (compact, the default) and JSON (for humans and
//! other languages).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A message encoding and its media type.
///
/// ```
/// use sync_core::Codec;
/// let bytes = Codec::Postcard.encode(&vec![1u32, 2, 3]).unwrap();
/// let back: Vec<u32> = Codec::Postcard.decode(&bytes).unwrap();
/// assert_eq!(back, [1, 2, 3]);
/// assert_eq!(Codec::from_media_type("application/json; charset=utf-8"), Some(Codec::Json));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// `application/x-postcard`.
    #[default]
    Postcard,
    /// `application/json`.
    Json,
}

impl Codec {
    /// The media type for Content-Type / Accept.
    pub fn media_type(self) -> &'static str {
        match self {
            Codec::Postcard => "application/x-postcard",
            Codec::Json => "application/json",
        }
    }

    /// The codec for a Content-Type value (parameters such as `charset` ignored).
    pub fn from_media_type(value: &str) -> Option<Codec> {
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-postcard") {
            Some(Codec::Postcard)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Codec::Json)
        } else {
            None
        }
    }

    /// Short name: `"postcard"` or `"json"`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Postcard => "postcard",
            Codec::Json => "json",
        }
    }

    /// Encodes a message.
    pub fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>> {
        match self {
            Codec::Postcard => postcard::to_stdvec(value).map_err(|e| Error::invalid(format!("cannot encode: {e}"))),
            Codec::Json => serde_json::to_vec(value).map_err(|e| Error::invalid(format!("cannot encode: {e}"))),
        }
    }

    /// Decodes a message; trailing bytes are an error.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        let decode_err = |message: String| Error::Decode { format: self.name(), message };
        match self {
            Codec::Postcard => {
                let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| decode_err(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(decode_err(format!("{} trailing bytes", rest.len())));
                }
                Ok(value)
            }
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| decode_err(e.to_string())),
        }
    }
}
