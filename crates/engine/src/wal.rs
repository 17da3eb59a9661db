//! The write-ahead log: every batch is appended here, and synced when the caller asks, before
//! it reaches the memtable; redb receives batches only when the memtable is flushed.
//!
//! The log lives in a fixed partition ([`crate::disk::partition`]) under the sector-checksum
//! layer, so a flipped bit or a latent error in it is an error, never a record. A record:
//!
//! ```text
//! 0..8    XXH64 of bytes 8.. of the record, seeded with RECORD_SEED
//! 8..12   payload length (never zero: a zero length ends the log)
//! 12..16  reserved, zero
//! 16..24  sequence number
//! 24..    payload: an encoded WriteBatch (`crate::batch`)
//! ```
//!
//! Sequence numbers grow by one per batch, forever. After a durable flush the log starts again
//! at offset 0 (the flushed sequence number is stored in redb with the flushed data), so a log
//! holds records of older generations after its live ones. Replay reads from offset 0 and stops
//! at the first record that is missing, torn or out of sequence: older generations carry
//! smaller numbers than the live tail, and a record cut by a crash fails its checksum. Records
//! at or below the flushed number are already in redb and are skipped. The result is what
//! the engine promises: after a crash, a prefix of the batches, every synced one included.

use std::io;

use redb::StorageBackend;

use crate::batch::WriteBatch;
use crate::checksum::xxh64;
use crate::disk::integrity::ChecksummedBackend;

/// Bytes of a record's header.
pub const RECORD_HEADER_BYTES: u64 = 24;
/// Seed of the record checksum.
const RECORD_SEED: u64 = 0x6d69_6e69_6b76_5f77; // "minikv_w"

/// Bytes a record with a `payload_bytes` payload takes in the log.
pub fn record_bytes(payload_bytes: usize) -> u64 {
    RECORD_HEADER_BYTES + payload_bytes as u64
}

/// A batch found in the log at open, not yet in redb.
#[derive(Debug)]
pub struct Replayed {
    pub seq: u64,
    pub batch: WriteBatch,
}

/// The log's writer.
#[derive(Debug)]
pub struct Wal {
    backend: ChecksummedBackend,
    capacity_bytes: u64,
    next_offset: u64,
    next_seq: u64,
}

impl Wal {
    /// Opens the log on `backend` (a partition of fixed logical size) and reads back every
    /// record after `flushed_seq`, in order.
    pub fn open(backend: ChecksummedBackend, flushed_seq: u64) -> io::Result<(Wal, Vec<Replayed>)> {
        let capacity_bytes = backend.len()?;
        let mut replayed = Vec::new();
        let mut offset = 0u64;
        let mut last_seq: Option<u64> = None;
        let mut live_end = 0u64;
        while let Some((seq, payload)) = read_record(&backend, offset, capacity_bytes)? {
            if last_seq.is_some_and(|last| seq != last + 1) {
                break; // An older generation's record after the live tail.
            }
            if seq > flushed_seq {
                if last_seq.is_none_or(|last| last < flushed_seq) && seq != flushed_seq + 1 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "write-ahead log resumes at batch {seq}, but redb holds batches up \
                             to {flushed_seq}: batches in between are missing"
                        ),
                    ));
                }
                let batch = WriteBatch::decode(&payload).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("write-ahead log record {seq} at offset {offset}: {e}"),
                    )
                })?;
                replayed.push(Replayed { seq, batch });
            }
            last_seq = Some(seq);
            offset += record_bytes(payload.len());
            live_end = offset;
        }
        // Only records after the flushed ones are live; if there are none, start over.
        let next_offset = if replayed.is_empty() { 0 } else { live_end };
        let next_seq = last_seq.unwrap_or(0).max(flushed_seq) + 1;
        let wal = Wal { backend, capacity_bytes, next_offset, next_seq };
        Ok((wal, replayed))
    }

    /// Whether a record with a `payload_bytes` payload fits after the live records.
    pub fn fits(&self, payload_bytes: usize) -> bool {
        self.next_offset + record_bytes(payload_bytes) <= self.capacity_bytes
    }

    /// Whether a record with a `payload_bytes` payload fits in an empty log.
    pub fn fits_when_empty(&self, payload_bytes: usize) -> bool {
        record_bytes(payload_bytes) <= self.capacity_bytes
    }

    /// Bytes of live records.
    pub fn live_bytes(&self) -> u64 {
        self.next_offset
    }

    /// The sequence number the next batch gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Hands out a sequence number for a batch written straight to redb.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Appends `payload` as the next batch; with `sync`, it (and all before it) is durable
    /// when this returns. The caller checked [`Wal::fits`].
    pub fn append(&mut self, payload: &[u8], sync: bool) -> io::Result<u64> {
        assert!(!payload.is_empty(), "an empty payload would end the log");
        assert!(self.fits(payload.len()), "record of {} bytes does not fit", payload.len());
        let seq = self.next_seq;
        let mut record = Vec::with_capacity(record_bytes(payload.len()) as usize);
        record.extend_from_slice(&[0u8; 8]);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&[0u8; 4]);
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(payload);
        let sum = xxh64(&record[8..], RECORD_SEED);
        record[..8].copy_from_slice(&sum.to_le_bytes());
        self.backend.write(self.next_offset, &record)?;
        self.next_offset += record.len() as u64;
        self.next_seq += 1;
        if sync {
            self.sync()?;
        }
        Ok(seq)
    }

    /// Makes every appended record durable (asks the disk even if nothing is pending, as
    /// `fdatasync` does).
    pub fn sync(&mut self) -> io::Result<()> {
        self.backend.sync_data()
    }

    /// Starts the log over at offset 0: every record so far is durable in redb.
    pub fn reset(&mut self) {
        self.next_offset = 0;
    }
}

/// The record at `offset`: its sequence number and payload, or `None` where the log ends
/// (a blank header, a length past the partition, a failed record checksum).
fn read_record(
    backend: &ChecksummedBackend,
    offset: u64,
    capacity_bytes: u64,
) -> io::Result<Option<(u64, Vec<u8>)>> {
    if offset + RECORD_HEADER_BYTES > capacity_bytes {
        return Ok(None);
    }
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    backend.read(offset, &mut header)?;
    let len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    if len == 0 || offset + record_bytes(len) > capacity_bytes {
        return Ok(None);
    }
    let mut record = vec![0u8; record_bytes(len) as usize];
    record[..header.len()].copy_from_slice(&header);
    backend.read(offset + RECORD_HEADER_BYTES, &mut record[header.len()..])?;
    let stored = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    if stored != xxh64(&record[8..], RECORD_SEED) {
        return Ok(None);
    }
    let seq = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    record.drain(..RECORD_HEADER_BYTES as usize);
    Ok(Some((seq, record)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cf::Cf;
    use redb::backends::InMemoryBackend;

    fn log_backend(bytes: u64) -> ChecksummedBackend {
        let b = ChecksummedBackend::new(Box::new(InMemoryBackend::new()));
        b.set_len(bytes).unwrap();
        b
    }

    fn batch(i: u32) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(Cf::Default, format!("k{i}").as_bytes(), &[i as u8; 100]);
        b
    }

    #[test]
    fn records_after_the_flushed_number_replay_in_order() {
        let (mut wal, replayed) = Wal::open(log_backend(64 << 10), 0).unwrap();
        assert!(replayed.is_empty());
        for i in 0..10 {
            assert_eq!(wal.append(&batch(i).encode(), i % 3 == 0).unwrap(), u64::from(i) + 1);
        }
        let Wal { backend, .. } = wal;
        let (wal, replayed) = Wal::open(backend, 4).unwrap();
        let seqs: Vec<u64> = replayed.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (5..=10).collect::<Vec<_>>());
        assert_eq!(replayed[0].batch, batch(4));
        assert_eq!(wal.next_seq(), 11);
    }

    #[test]
    fn an_older_generation_behind_the_live_tail_is_not_replayed() {
        let (mut wal, _) = Wal::open(log_backend(64 << 10), 0).unwrap();
        for i in 0..20 {
            wal.append(&batch(i).encode(), false).unwrap();
        }
        // Flushed through 20; the next generation writes two records over the first ones.
        wal.reset();
        wal.append(&batch(100).encode(), false).unwrap();
        wal.append(&batch(101).encode(), true).unwrap();
        let Wal { backend, .. } = wal;
        let (wal, replayed) = Wal::open(backend, 20).unwrap();
        let seqs: Vec<u64> = replayed.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![21, 22]);
        assert_eq!(wal.next_seq(), 23);
        assert_eq!(wal.live_bytes(), 2 * record_bytes(batch(100).encode().len()));
    }

    #[test]
    fn a_log_without_live_records_starts_over_at_offset_zero() {
        let (mut wal, _) = Wal::open(log_backend(64 << 10), 0).unwrap();
        for i in 0..5 {
            wal.append(&batch(i).encode(), true).unwrap();
        }
        let Wal { backend, .. } = wal;
        let (wal, replayed) = Wal::open(backend, 5).unwrap();
        assert!(replayed.is_empty());
        assert_eq!((wal.live_bytes(), wal.next_seq()), (0, 6));
    }

    #[test]
    fn a_torn_record_ends_the_log() {
        let (mut wal, _) = Wal::open(log_backend(64 << 10), 0).unwrap();
        for i in 0..3 {
            wal.append(&batch(i).encode(), true).unwrap();
        }
        let third = 2 * record_bytes(batch(0).encode().len());
        let Wal { backend, .. } = wal;
        backend.write(third + 30, &[0xAB]).unwrap();
        let (_, replayed) = Wal::open(backend, 0).unwrap();
        assert_eq!(replayed.len(), 2);
    }

    #[test]
    fn missing_batches_between_redb_and_the_log_are_an_error() {
        let (mut wal, _) = Wal::open(log_backend(64 << 10), 0).unwrap();
        wal.take_seq();
        wal.append(&batch(1).encode(), true).unwrap(); // seq 2, but redb says 0
        let Wal { backend, .. } = wal;
        let err = Wal::open(backend, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
