//! Serde helpers that encode byte strings as one length and one copy instead of one element
//! at a time. The postcard output is the same bytes either way (a varint length, then the
//! bytes), so fields can switch between the two without changing a wire or disk format.
//!
//! Use as `#[serde(with = "crate::bytes")]` on a `Vec<u8>` and
//! `#[serde(with = "crate::bytes::option")]` on an `Option<Vec<u8>>`.

use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;

pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    /// Self-describing formats (JSON) write bytes as a list of numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// The same for `Option<Vec<u8>>`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_some(&AsBytes(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    struct AsBytes<'a>(&'a [u8]);

    impl serde::Serialize for AsBytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Vec<u8>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an optional byte string")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::{decode, encode};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct AsSeq {
        a: Vec<u8>,
        b: Option<Vec<u8>>,
        c: Option<Vec<u8>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct AsBytes {
        #[serde(with = "crate::bytes")]
        a: Vec<u8>,
        #[serde(with = "crate::bytes::option")]
        b: Option<Vec<u8>>,
        #[serde(with = "crate::bytes::option")]
        c: Option<Vec<u8>>,
    }

    #[test]
    fn byte_strings_encode_exactly_as_sequences_of_bytes_do() {
        for len in [0usize, 1, 127, 128, 300, 20_000] {
            let v: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let seq = AsSeq { a: v.clone(), b: Some(v.clone()), c: None };
            let bytes = AsBytes { a: v.clone(), b: Some(v.clone()), c: None };
            let encoded = encode(&bytes).unwrap();
            assert_eq!(encoded, encode(&seq).unwrap(), "length {len}");
            assert_eq!(decode::<AsBytes>(&encode(&seq).unwrap()).unwrap(), bytes);
            assert_eq!(decode::<AsSeq>(&encoded).unwrap(), seq);
        }
    }

    #[test]
    fn a_truncated_byte_string_is_a_decode_error() {
        let encoded = encode(&AsBytes { a: vec![1; 50], b: None, c: None }).unwrap();
        assert!(decode::<AsBytes>(&encoded[..20]).is_err());
    }
}
