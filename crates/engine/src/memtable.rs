//! The memtable: batches written since the last flush, per column family, newest value (or
//! deletion) per key, merged over redb's contents on every read.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::cf::Cf;

/// A key and its value.
type Pair = (Vec<u8>, Vec<u8>);

/// Bytes charged per entry on top of its key and value: the map's node and two vectors.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// Changes not yet in redb: `Some(value)` sets a key, `None` deletes it.
#[derive(Debug, Default)]
pub struct Memtable {
    cfs: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; Cf::COUNT],
    bytes: usize,
}

fn entry_bytes(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD_BYTES
}

impl Memtable {
    /// What the memtable says of `key`: `None` if nothing (ask redb), `Some(None)` if deleted.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Option<Option<&[u8]>> {
        self.cfs[cf.index()].get(key).map(|v| v.as_deref())
    }

    /// Records `key = value` (`None`: deleted), taking the buffers: one search of the map, no
    /// copies (the log's batches are moved in).
    pub fn set_owned(&mut self, cf: Cf, key: Vec<u8>, value: Option<Vec<u8>>) {
        let added = entry_bytes(&key, &value);
        match self.cfs[cf.index()].entry(key) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                self.bytes -= entry_bytes(e.key(), e.get());
                e.insert(value);
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(value);
            }
        }
        self.bytes += added;
    }

    /// Forgets whatever the memtable says of `key` (reads then go to redb).
    pub fn remove(&mut self, cf: Cf, key: &[u8]) {
        if let Some(value) = self.cfs[cf.index()].remove(key) {
            self.bytes -= entry_bytes(key, &value);
        }
    }

    /// Records `key = value` (`None`: deleted).
    pub fn set(&mut self, cf: Cf, key: &[u8], value: Option<&[u8]>) {
        self.set_owned(cf, key.to_vec(), value.map(<[u8]>::to_vec));
    }

    /// Entries of `cf` with `start <= key < end` (`None`: unbounded), in key order.
    pub fn range<'a>(
        &'a self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let map = &self.cfs[cf.index()];
        let empty = end.is_some_and(|end| end <= start);
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let iter = (!empty).then(|| map.range::<[u8], _>((Bound::Included(start), upper)));
        iter.into_iter().flatten().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// Every entry of `cf`, in key order.
    pub fn entries(&self, cf: Cf) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.cfs[cf.index()].iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// Approximate memory held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.cfs.iter().all(BTreeMap::is_empty)
    }

    pub fn clear(&mut self) {
        for map in &mut self.cfs {
            map.clear();
        }
        self.bytes = 0;
    }
}

/// Merges a memtable range over a redb range (both in key order, the memtable's entries
/// winning), skipping deletions, up to `limit` pairs.
pub fn merge<'a>(
    mem: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    mut db: impl Iterator<Item = Result<Pair, redb::Error>>,
    limit: usize,
) -> Result<Vec<Pair>, redb::Error> {
    let mut out = Vec::new();
    let mut mem = mem.peekable();
    let mut next_db = db.next().transpose()?;
    while out.len() < limit {
        let take_mem = match (mem.peek(), &next_db) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((mk, _)), Some((dk, _))) => *mk <= dk.as_slice(),
        };
        if take_mem {
            let (key, value) = mem.next().expect("peeked");
            if next_db.as_ref().is_some_and(|(dk, _)| dk.as_slice() == key) {
                next_db = db.next().transpose()?; // Shadowed by the memtable.
            }
            if let Some(value) = value {
                out.push((key.to_vec(), value.to_vec()));
            }
        } else {
            out.push(next_db.take().expect("checked above"));
            next_db = db.next().transpose()?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(pairs: &[(&str, &str)]) -> impl Iterator<Item = Result<Pair, redb::Error>> {
        pairs
            .iter()
            .map(|(k, v)| Ok((k.as_bytes().to_vec(), v.as_bytes().to_vec())))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_memtable_shadows_redb_and_deletions_hide_keys() {
        let mut mem = Memtable::default();
        mem.set(Cf::Default, b"b", Some(b"mem-b"));
        mem.set(Cf::Default, b"c", None);
        mem.set(Cf::Default, b"e", Some(b"mem-e"));
        mem.set(Cf::Raft, b"a", Some(b"other cf"));
        let out = merge(
            mem.range(Cf::Default, b"", None),
            db(&[("a", "db-a"), ("b", "db-b"), ("c", "db-c"), ("d", "db-d")]),
            usize::MAX,
        )
        .unwrap();
        let out: Vec<(&[u8], &[u8])> =
            out.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        assert_eq!(
            out,
            vec![(&b"a"[..], &b"db-a"[..]), (b"b", b"mem-b"), (b"d", b"db-d"), (b"e", b"mem-e")]
        );
        let limited = merge(mem.range(Cf::Default, b"b", Some(b"e")), db(&[("d", "x")]), 1);
        assert_eq!(limited.unwrap(), vec![(b"b".to_vec(), b"mem-b".to_vec())]);
    }

    #[test]
    fn sizes_follow_overwrites_and_clear() {
        let mut mem = Memtable::default();
        mem.set(Cf::Lock, b"k", Some(&[0u8; 100]));
        let one = mem.bytes();
        mem.set(Cf::Lock, b"k", None);
        assert_eq!(mem.bytes(), one - 100);
        assert_eq!(mem.get(Cf::Lock, b"k"), Some(None));
        assert_eq!(mem.get(Cf::Default, b"k"), None);
        mem.set(Cf::Lock, b"j", Some(b"v"));
        mem.remove(Cf::Lock, b"j");
        mem.remove(Cf::Lock, b"absent");
        assert_eq!((mem.get(Cf::Lock, b"j"), mem.bytes()), (None, one - 100));
        mem.clear();
        assert!(mem.is_empty());
        assert_eq!(mem.bytes(), 0);
    }
}
