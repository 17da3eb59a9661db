//! Design notes: the storage stack, what redb 4.5 detects on its own, and what this crate adds.
//!
//! # The stack
//!
//! ```text
//! Engine: WriteBatch -> write-ahead log (wal) -> memtable; reads merge memtable over redb
//!   redb 4.5 Database (copy-on-write B-trees, two commit slots, page cache), fed by flushes
//!   disk::partition: superblock | WAL partition (fixed size) | redb's file
//!     ChecksummedBackend (disk::integrity: a checksum in every 4 KiB sector), per partition
//!       FileDisk (redb's FileBackend on a real file) | SimDisk (disk::sim)
//! ```
//!
//! A batch is encoded and appended to the write-ahead log ([`crate::wal`]), synced when the
//! caller asks, then laid over the memtable ([`crate::memtable`]). Reads merge the memtable
//! over redb. The memtable reaches redb in one durable commit (`Durability::Immediate`) that
//! also records the last batch it holds (`flushed_seq`), when the log has no room for the
//! next batch, when the memtable passes `memtable_bytes_max`, or before a snapshot; only then
//! does the log start over. A batch bigger than the whole log goes straight to redb, with the
//! memtable, in one durable commit. At open, redb comes back at its last flush and the log's
//! records after `flushed_seq` are replayed, stopping at the first torn or missing one. So
//! after a crash the engine holds exactly the batches up to the last synced one (or some
//! unsynced ones after it): a prefix, never half a batch. The crash property test checks this
//! over 1,000 seeds per run (two crash rounds per seed, logs of one sector to 64 KiB, so that
//! flushes, wrap-arounds and direct writes all happen under crashes).
//!
//! Why a log in front of redb: a Raft store writes a small batch (a few entries, a hard
//! state, an apply state) on every Raft round, synced. As one redb commit each, those cost
//! about 50 µs of copy-on-write pages, page checksums and allocator work: more than half of
//! everything a simulated five-store cluster did (`cargo xtask bench sim-kv` ran at 10x real
//! time). An append of a few hundred bytes costs a few microseconds; redb sees one commit per
//! log's worth of batches (29x real time). This is the shape of RocksDB's WAL and memtable,
//! and of TiKV's raft engine, in small.
//!
//! The log's records carry their own checksum and sequence number, and sit under the sector
//! checksums like redb's pages: a torn unsynced tail ends the log, while a flipped bit or a
//! latent error in a record is a typed error at open (never a silently shortened log, which
//! would lose synced batches). Its partition is written in place from offset 0 after every
//! flush, so it holds older generations behind the live records; their sequence numbers are
//! lower, which is how replay knows where the live log ends.
//!
//! # What redb 4.5 verifies, and what it does not (read in its source)
//!
//! - Every B-tree page has an XXH3-128 checksum stored in its parent branch page; each commit
//!   slot of the header stores the root's checksum and a checksum of the slot itself.
//! - Those page checksums are verified **only** during a repair: when the file was not shut
//!   down cleanly (the `recovery_required` flag, set while a database is open), by
//!   `Database::check_integrity`, or at open with `Builder::set_check_integrity_on_open`.
//!   The repair walks the primary slot's trees; if a checksum fails it falls back to the
//!   secondary slot (the previous durable commit), then rebuilds the allocator state.
//! - Ordinary reads (`get`, `range`) never verify anything. A file that was closed cleanly is
//!   trusted: redb's docs say a plain open "may panic if it was corrupted outside redb", and
//!   consistency checks that "no file redb wrote can fail" are `debug_assert!`s in debug
//!   builds. Demonstrated by the test `redb_alone_serves_a_flipped_bit_as_good_data`: a bit
//!   flipped in a value of a cleanly closed file is returned as good data.
//! - Undetected classes on the read path, then: flipped bits in values or keys of leaf pages
//!   (served silently), in branch pages (a lookup descends into the wrong child: a key
//!   silently "missing", or a panic on an out-of-range offset), in the table directory (a
//!   column family "missing"), in the header of a cleanly closed file (panic or garbage);
//!   misdirected writes (a valid page at the wrong place). Corruption introduced after the
//!   last repair is only caught if a later crash triggers a repair.
//! - Any backend I/O error latches the database: every later operation fails with
//!   `PreviousIo` until it is reopened. Reopening after such an error is a repair (the clean
//!   shutdown never happened), which walks every live page, and rolls back to the last
//!   durable commit: non-durable commits are lost, exactly as in a crash.
//! - Debug builds of redb also read every allocated page at open (allocator bookkeeping).
//!
//! # What this crate adds
//!
//! - **A checksum in every sector** ([`crate::disk::integrity`]): 4,088 bytes of redb's file
//!   plus an XXH64 of them (seeded with the sector index, catching misdirected I/O) in each
//!   4 KiB sector. Every byte redb reads is verified first, so no corruption class above
//!   reaches redb: a failed check is an `InvalidData` error that the engine reports as
//!   [`crate::Error::Corruption`] with the sector, and redb never panics on disk garbage.
//!   Why per sector and not per value: a value checksum catches flipped values but not the
//!   structural classes (missing keys, wrong children, panics); and the checksum must share
//!   the sector with its data so that a torn write leaves every sector wholly old or wholly
//!   new, each valid: tearing never looks like corruption, and redb's own crash recovery sees
//!   exactly the torn writes it is designed for. Why XXH64: see [`crate::checksum`].
//! - **Reopen after a fault**: the engine drops the latched database and opens a new one on
//!   the same disk, so ENOSPC leaves it serving reads (of the last synced state) and writes
//!   resume once space is freed. A read error or corruption in a live page, however, also
//!   fails the repair that reopening needs: the engine then answers every call with the
//!   typed error (retrying the reopen each time) until the fault clears (a rewritten or
//!   cleared sector) — a corrupt replica has to be rebuilt from its peers, as in TiKV.
//! - **Detach on crash**: a simulated crash detaches every backend opened before it, so a
//!   "dead" process's engine can neither write after the crash nor reopen itself; it answers
//!   [`crate::Error::Detached`].
//! - **One process per disk**: two redb databases on one file corrupt it for good (found by the
//!   simulator: a failed store's engine lingered in a test probe, reopened itself once the
//!   disk's read errors cleared, and its close, a trimming commit plus a clean-shutdown header,
//!   landed on the file that the restarted store's engine was using, which then failed every
//!   open with "Page ... extends past the end of its region"). A real file is protected by the
//!   lock redb takes through `FileBackend` (a second open fails with `DatabaseAlreadyOpen`), and
//!   a process that exits releases it. The simulated disk models both: its backends take a
//!   whole-disk lock, and [`crate::Engine::open`] starts a new process
//!   ([`crate::Disk::start_process`]), which on a [`crate::SimDisk`] ends the previous one
//!   ([`crate::SimDisk::process_exit`]): its backends are detached, so a lingering engine of an
//!   exited process can no longer write (its unsynced user-space buffers die with it, as a
//!   real process's do). The engine's own reopen after a fault is not a new process: it drops
//!   its database (releasing the lock) before opening the next one.
//!
//! # Known limits
//!
//! - A latent error in the log sector just past its live end fails the open (replay must read
//!   that header to know the log ended), though no live data is there.
//! - The memtable keeps point deletions of keys redb may not hold; each costs a lookup at the
//!   flush. (A range deletion knows which keys redb holds, and drops the others.)
//! - On a real disk that tears *inside* a 4 KiB sector (512-byte atomic writes), a torn write
//!   of sector 0, which holds redb's header and is rewritten in place by every commit, would
//!   fail its checksum and make the file unopenable; redb alone would have used the other
//!   commit slot. The simulated disk tears at 4 KiB, as the issue's model does.
//! - A disk that acknowledges `fsync` and then loses the write (a lost write) is not modelled;
//!   a stale but well-formed sector passes the sector checksum.
//! - The sector layout makes every redb page straddle two sectors, so sealing a lone page
//!   reads its two neighbours' sectors; writes are held back and merged into contiguous runs
//!   until the next read or sync, which removes most of that cost. A rewrite of held bytes
//!   (redb rewrites its header page at every commit, synced or not) replaces them in the
//!   buffer instead of forcing everything held out to the disk.
//! - Why not keep redb's pages sector-aligned with the checksums out of line (in checksum
//!   sectors of their own)? Then a page and its checksum live in different sectors, which a
//!   crash may keep or drop independently: a kept page with a dropped checksum (or the
//!   reverse) fails its check, so a torn write would read as corruption, unless every commit
//!   paid an extra `fsync` to order the checksum sector before the page (or the check
//!   accepted unverified bytes during repair). The in-sector checksum is what lets a torn
//!   write leave only valid sectors, so the layout stays, and its cost is paid in the
//!   write-back buffer instead.
