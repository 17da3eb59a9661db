//! The one codec: postcard over serde, with a typed error.

use serde::{Serialize, de::DeserializeOwned};

/// Why bytes could not be turned into a value (or back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("encode failed: {0}")]
    Encode(String),
    #[error("decode failed: {0}")]
    Decode(String),
    #[error("decode left {trailing_bytes} trailing bytes")]
    Trailing { trailing_bytes: usize },
}

/// Encodes `value` with postcard.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// The length of `value`'s encoding, computed without encoding it (no buffer, no copies).
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, CodecError> {
    postcard::serialize_with_flavor::<T, postcard::ser_flavors::Size, usize>(
        value,
        postcard::ser_flavors::Size::default(),
    )
    .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes exactly one value from `bytes`; trailing bytes are an error, not silently ignored.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing { trailing_bytes: rest.len() });
    }
    Ok(value)
}
