//! minikv-proto owns every type that crosses a wire or a disk, and the one codec (serde + postcard).
//!
//! Layers above depend on these types and never define wire or disk formats of their own, so a
//! format change is one diff in one crate.

pub mod bytes;
pub mod codec;
pub mod errorpb;
pub mod kvrpc;
pub mod metapb;
pub mod pdpb;
pub mod raft_cmdpb;
pub mod raft_serverpb;
pub mod raftpb;

pub use codec::{CodecError, decode, encode, encoded_len};
