//! Write batches: puts, deletes and range deletes across column families, applied atomically;
//! and their encoding in the write-ahead log.

use crate::cf::Cf;

/// One mutation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Set `key` to `value`.
    Put { key: Vec<u8>, value: Vec<u8> },
    /// Remove `key` (absent keys are fine).
    Delete { key: Vec<u8> },
    /// Remove every key in `start..end` (`end: None` means no upper bound).
    DeleteRange { start: Vec<u8>, end: Option<Vec<u8>> },
}

/// A batch of mutations, applied in order and atomically by [`crate::Engine::write`]: after any
/// crash, either all of it is visible or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<(Cf, Mutation)>,
    payload_bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` in `cf`.
    pub fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) -> &mut Self {
        self.payload_bytes += key.len() + value.len();
        self.ops.push((cf, Mutation::Put { key: key.to_vec(), value: value.to_vec() }));
        self
    }

    /// Removes `key` from `cf`.
    pub fn delete(&mut self, cf: Cf, key: &[u8]) -> &mut Self {
        self.payload_bytes += key.len();
        self.ops.push((cf, Mutation::Delete { key: key.to_vec() }));
        self
    }

    /// Removes every key of `cf` in `start..end` (`None`: to the end of the column family).
    /// An empty range (`end <= start`) removes nothing.
    pub fn delete_range(&mut self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> &mut Self {
        self.payload_bytes += start.len() + end.map_or(0, <[u8]>::len);
        self.ops.push((
            cf,
            Mutation::DeleteRange { start: start.to_vec(), end: end.map(<[u8]>::to_vec) },
        ));
        self
    }

    /// The mutations, in the order they apply.
    pub fn ops(&self) -> &[(Cf, Mutation)] {
        &self.ops
    }

    /// The mutations, by value.
    pub fn into_ops(self) -> Vec<(Cf, Mutation)> {
        self.ops
    }

    /// Number of mutations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no mutation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of keys and values carried (a size hint for callers that cap batches).
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// Moves every mutation of `other` to the end of this batch, in order (no copy).
    pub fn append(&mut self, other: &mut WriteBatch) -> &mut Self {
        self.payload_bytes += other.payload_bytes;
        self.ops.append(&mut other.ops);
        other.payload_bytes = 0;
        self
    }

    /// Empties the batch for reuse, keeping its allocation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.payload_bytes = 0;
    }

    /// The batch as the write-ahead log stores it: per mutation a tag byte (0 put, 1 delete,
    /// 2 bounded range delete, 3 range delete to the end), the column family's index, then
    /// each byte string as a little-endian `u32` length and its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload_bytes + self.ops.len() * 10);
        fn bytes(out: &mut Vec<u8>, b: &[u8]) {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        for (cf, mutation) in &self.ops {
            let (tag, strings): (u8, [Option<&[u8]>; 2]) = match mutation {
                Mutation::Put { key, value } => (TAG_PUT, [Some(key), Some(value)]),
                Mutation::Delete { key } => (TAG_DELETE, [Some(key), None]),
                Mutation::DeleteRange { start, end: Some(end) } => {
                    (TAG_DELETE_RANGE, [Some(start), Some(end)])
                }
                Mutation::DeleteRange { start, end: None } => {
                    (TAG_DELETE_RANGE_TO_END, [Some(start), None])
                }
            };
            out.push(tag);
            out.push(cf.index() as u8);
            for s in strings.into_iter().flatten() {
                bytes(&mut out, s);
            }
        }
        out
    }

    /// Decodes what [`WriteBatch::encode`] wrote; the error says what is wrong and where.
    pub fn decode(mut input: &[u8]) -> Result<WriteBatch, String> {
        let total = input.len();
        let mut batch = WriteBatch::new();
        fn take<'a>(input: &mut &'a [u8], n: usize, total: usize) -> Result<&'a [u8], String> {
            if input.len() < n {
                return Err(format!("truncated at byte {} of {total}", total - input.len()));
            }
            let (head, rest) = input.split_at(n);
            *input = rest;
            Ok(head)
        }
        fn bytes<'a>(input: &mut &'a [u8], total: usize) -> Result<&'a [u8], String> {
            let len = take(input, 4, total)?;
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            take(input, len, total)
        }
        while !input.is_empty() {
            let at = total - input.len();
            let head = take(&mut input, 2, total)?;
            let cf = *Cf::ALL
                .get(head[1] as usize)
                .ok_or_else(|| format!("column family {} at byte {at}", head[1]))?;
            match head[0] {
                TAG_PUT => {
                    let key = bytes(&mut input, total)?;
                    let value = bytes(&mut input, total)?;
                    batch.put(cf, key, value);
                }
                TAG_DELETE => {
                    batch.delete(cf, bytes(&mut input, total)?);
                }
                TAG_DELETE_RANGE => {
                    let start = bytes(&mut input, total)?;
                    let end = bytes(&mut input, total)?;
                    batch.delete_range(cf, start, Some(end));
                }
                TAG_DELETE_RANGE_TO_END => {
                    batch.delete_range(cf, bytes(&mut input, total)?, None);
                }
                tag => return Err(format!("unknown mutation tag {tag} at byte {at}")),
            }
        }
        Ok(batch)
    }
}

const TAG_PUT: u8 = 0;
const TAG_DELETE: u8 = 1;
const TAG_DELETE_RANGE: u8 = 2;
const TAG_DELETE_RANGE_TO_END: u8 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutation_kind_round_trips_through_the_log_encoding() {
        let mut b = WriteBatch::new();
        b.put(Cf::Raft, b"k1", b"v1")
            .put(Cf::Default, b"", b"")
            .delete(Cf::Write, b"gone")
            .delete_range(Cf::Lock, b"a", Some(b"b"))
            .delete_range(Cf::Default, b"z", None);
        let encoded = b.encode();
        assert_eq!(WriteBatch::decode(&encoded).unwrap(), b);
        let err = WriteBatch::decode(&encoded[..encoded.len() - 1]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let mut bad = encoded.clone();
        bad[0] = 9;
        assert_eq!(WriteBatch::decode(&bad).unwrap_err(), "unknown mutation tag 9 at byte 0");
    }

    #[test]
    fn append_moves_mutations_in_order_and_their_size() {
        let mut a = WriteBatch::new();
        a.put(Cf::Raft, b"k1", b"v1");
        let mut b = WriteBatch::new();
        b.delete(Cf::Default, b"k2").delete_range(Cf::Lock, b"a", Some(b"b"));
        let expected: Vec<_> = a.ops().iter().chain(b.ops()).cloned().collect();
        let bytes = a.payload_bytes() + b.payload_bytes();
        a.append(&mut b);
        assert_eq!(a.ops(), expected.as_slice());
        assert_eq!(a.payload_bytes(), bytes);
        assert!(b.is_empty());
        assert_eq!(b.payload_bytes(), 0);
    }
}
