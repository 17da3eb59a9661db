//! The data column families: how the proto's column family names map onto the engine's, and a
//! region's key range in them. User keys are stored as they are (no prefix), so a region's
//! data is the range `[start_key, end_key)` of each data column family. The `raft` column
//! family's layout is in `keys.rs`.

use minikv_engine::{Cf, WriteBatch};
use minikv_proto::metapb::Region;
use minikv_proto::raft_cmdpb::CfName;

/// The data column families a snapshot carries, with their proto names.
pub const DATA_CFS: [(Cf, CfName); 3] =
    [(Cf::Default, CfName::Default), (Cf::Lock, CfName::Lock), (Cf::Write, CfName::Write)];

/// The engine column family of a proto column family name.
pub fn engine_cf(cf: CfName) -> Cf {
    match cf {
        CfName::Default => Cf::Default,
        CfName::Lock => Cf::Lock,
        CfName::Write => Cf::Write,
    }
}

/// The end bound of `region` for engine calls (`None`: unbounded).
pub fn end_bound(region: &Region) -> Option<&[u8]> {
    (!region.end_key.is_empty()).then_some(region.end_key.as_slice())
}

/// Adds deletions of `region`'s whole key range in every data column family to `batch`.
pub fn delete_region_data(batch: &mut WriteBatch, region: &Region) {
    for (cf, _) in DATA_CFS {
        batch.delete_range(cf, &region.start_key, end_bound(region));
    }
}
