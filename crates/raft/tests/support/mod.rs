//! Shared helpers of minikv-raft's integration tests: a deterministic, seeded network simulator
//! of RawNode<MemStorage> clusters (`sim`) and the Raft safety invariants it checks (`invariants`).

pub mod invariants;
pub mod node;
pub mod sim;
