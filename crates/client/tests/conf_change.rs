//! Membership changes through the raw client against a scripted store: a change carries the
//! epoch it was chosen on in every attempt, and an `EpochNotMatch` goes back to the caller
//! instead of being retried on the newer region; data requests still follow the new epoch.
#![cfg(madsim)]

mod support;

use minikv_client::Error;
use minikv_proto::errorpb::RegionError;
use minikv_proto::kvrpc::{KvRequest, KvRequestEnvelope, KvResponse};
use minikv_proto::metapb::Region;
use minikv_proto::raftpb::ConfChangeType;
use support::{Script, peer, region, with_store};

fn epoch_not_match(current: Region) -> RegionError {
    RegionError::EpochNotMatch { current_regions: vec![current] }
}

/// The epochs of the `ChangePeer` (or `RawPut`) requests the store saw, in order.
fn epochs_of(seen: &[KvRequestEnvelope], change: bool) -> Vec<u64> {
    seen.iter()
        .filter(|r| match r.request {
            KvRequest::ChangePeer { .. } => change,
            KvRequest::RawPut { .. } => !change,
            _ => false,
        })
        .map(|r| r.context.region_epoch.conf_ver)
        .collect()
}

/// A store that locates region `located` and answers each `ChangePeer` with `answer`.
fn conf_change_script(
    located: Region,
    mut answer: impl FnMut(&KvRequestEnvelope) -> KvResponse + Send + 'static,
) -> Script {
    Box::new(move |log| {
        let last = log.last().unwrap();
        match &last.request {
            KvRequest::LocateKey { .. } => {
                KvResponse::Located { region: located.clone(), leader: Some(peer(1)) }
            }
            KvRequest::ChangePeer { .. } => answer(last),
            other => panic!("unexpected request {other:?}"),
        }
    })
}

/// A removal chosen on conf_ver 3 that the store refuses with `answer` (an `EpochNotMatch`
/// naming conf_ver 4): what the client returned, what it cached, and what the store saw.
async fn refused_removal(
    answer: KvResponse,
) -> ((Result<Region, Error>, Option<Region>), Vec<KvRequestEnvelope>) {
    let chosen_on = region(3, &[1, 2, 3, 4]);
    let script = conf_change_script(chosen_on.clone(), move |_| answer.clone());
    with_store(script, move |mut client| async move {
        let result = client.change_peer_in(&chosen_on, ConfChangeType::RemoveNode, peer(4)).await;
        (result, client.region_cache().locate(b"k").cloned())
    })
    .await
}

#[madsim::test]
async fn a_conf_change_refused_for_its_epoch_before_proposing_goes_back_to_the_caller() {
    let current = region(4, &[1, 2, 3]);
    let answer = KvResponse::RegionError(epoch_not_match(current.clone()));
    let ((result, cached), seen) = refused_removal(answer).await;
    assert_eq!(result, Err(Error::Region(epoch_not_match(current.clone()))));
    assert_eq!(epochs_of(&seen, true), vec![3], "sent once, never on the newer epoch");
    assert_eq!(cached, Some(current), "the client learned the current region");
}

#[madsim::test]
async fn a_conf_change_refused_for_its_epoch_at_apply_goes_back_to_the_caller() {
    let current = region(4, &[1, 2, 3]);
    let answer = KvResponse::ProposalFailed(epoch_not_match(current.clone()));
    let ((result, _), seen) = refused_removal(answer).await;
    assert_eq!(result, Err(Error::Region(epoch_not_match(current))));
    assert_eq!(epochs_of(&seen, true), vec![3]);
}

#[madsim::test]
async fn a_conf_change_keeps_its_epoch_when_it_follows_a_new_leader() {
    let chosen_on = region(3, &[1, 2, 3, 4]);
    // Peer 9 joined and leads; the client's cached region does not list it.
    let current = region(4, &[1, 2, 3, 4, 9]);
    let mut calls = 0;
    let (located, after) = (chosen_on.clone(), current.clone());
    let script: Script = Box::new(move |log| {
        let last = log.last().unwrap();
        match &last.request {
            KvRequest::LocateKey { .. } if calls == 0 => {
                KvResponse::Located { region: located.clone(), leader: Some(peer(1)) }
            }
            KvRequest::LocateKey { .. } => {
                KvResponse::Located { region: after.clone(), leader: Some(peer(9)) }
            }
            KvRequest::ChangePeer { .. } if calls == 0 => {
                calls += 1;
                let leader = Some(peer(9));
                KvResponse::RegionError(RegionError::NotLeader { region_id: 1, leader })
            }
            KvRequest::ChangePeer { .. } if last.context.region_epoch == after.epoch => {
                let mut removed = after.clone();
                removed.peers.retain(|p| p.id != 4);
                removed.epoch.conf_ver += 1;
                KvResponse::ChangePeer { region: removed }
            }
            KvRequest::ChangePeer { .. } => KvResponse::RegionError(epoch_not_match(after.clone())),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let on = chosen_on.clone();
    let (result, seen) = with_store(script, move |mut client| async move {
        client.change_peer_in(&on, ConfChangeType::RemoveNode, peer(4)).await
    })
    .await;
    assert_eq!(result, Err(Error::Region(epoch_not_match(current))));
    assert_eq!(epochs_of(&seen, true), vec![3, 3], "the retry kept the chosen epoch");
}

#[madsim::test]
async fn a_conf_change_on_a_current_region_returns_the_region_after_it() {
    let chosen_on = region(3, &[1, 2, 3, 4]);
    let after = region(4, &[1, 2, 3]);
    let answer = KvResponse::ChangePeer { region: after.clone() };
    let script = conf_change_script(chosen_on.clone(), move |_| answer.clone());
    let on = chosen_on.clone();
    let ((result, cached), seen) = with_store(script, move |mut client| async move {
        let result = client.change_peer_in(&on, ConfChangeType::RemoveNode, peer(4)).await;
        (result, client.region_cache().locate(b"k").cloned())
    })
    .await;
    assert_eq!(result, Ok(after.clone()));
    assert_eq!(cached, Some(after));
    assert_eq!(epochs_of(&seen, true), vec![3]);
}

#[madsim::test]
async fn a_write_follows_the_new_epoch_after_epoch_not_match() {
    let cached = region(3, &[1, 2, 3]);
    let current = region(4, &[1, 2, 3, 4]);
    let (located, now) = (cached.clone(), current.clone());
    let script: Script = Box::new(move |log| {
        let last = log.last().unwrap();
        match &last.request {
            KvRequest::LocateKey { .. } => {
                KvResponse::Located { region: located.clone(), leader: Some(peer(1)) }
            }
            KvRequest::RawPut { .. } if last.context.region_epoch == now.epoch => KvResponse::Put,
            KvRequest::RawPut { .. } => KvResponse::RegionError(epoch_not_match(now.clone())),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let (result, seen) =
        with_store(script, |mut client| async move { client.put(b"k", b"v").await }).await;
    assert_eq!(result, Ok(()));
    assert_eq!(epochs_of(&seen, false), vec![3, 4]);
}
