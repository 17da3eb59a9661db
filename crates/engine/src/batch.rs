//! Write batches: puts, deletes and range deletes across column families, applied atomically.

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
