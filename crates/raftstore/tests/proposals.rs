//! How a proposal of a leader that lost its leadership is answered: `ProposalDropped` when
//! its slot went to another entry (definitely not applied), its own result when the next
//! leader committed it anyway.

mod common;

use common::{Cluster, get_req, put_req, test_config};
use minikv_proto::errorpb::RegionError;
use minikv_proto::raft_cmdpb::{RaftCmdRequest, Response};

fn others(leader: u64) -> Vec<u64> {
    (1..=3).filter(|id| *id != leader).collect()
}

#[test]
fn a_deposed_leaders_overwritten_proposal_is_dropped_and_never_applied() {
    let mut c = Cluster::new(3, 3, 31, test_config());
    let old = c.wait_leader(100);
    c.put(b"before", b"1");
    c.partition(&[old], &others(old));
    let cmd = RaftCmdRequest {
        header: c.header(old),
        requests: vec![put_req(b"lost", b"x")],
        admin: None,
    };
    let token = c.propose(old, cmd).expect("the old leader still accepts proposals");
    // The majority elects a leader and commits entries over the old leader's slot.
    let mut new = old;
    for _ in 0..300 {
        c.tick();
        if let Some(l) = c.leader().filter(|l| *l != old) {
            new = l;
            break;
        }
    }
    assert_ne!(new, old, "the majority elected no leader");
    for i in 0..3u32 {
        let r = c.call(new, vec![put_req(format!("after{i}").as_bytes(), b"2")], None);
        assert_eq!(r.map(|r| r.responses), Ok(vec![Response::Put]));
    }
    c.heal();
    let resp = c.wait_response(token, 200).expect("the old leader answers once it catches up");
    assert_eq!(resp.header.error, Some(RegionError::ProposalDropped));
    assert!(!RegionError::ProposalDropped.leaves_outcome_unknown());
    assert_eq!(c.get(b"lost"), None);
    c.run_ticks(10);
    for id in 1..=3 {
        assert_eq!(c.engine_get(id, b"lost"), None, "store {id}");
        assert_eq!(c.engine_get(id, b"after2"), Some(b"2".to_vec()), "store {id}");
    }
}

#[test]
fn a_deposed_leaders_proposal_committed_by_its_successor_is_answered_with_its_result() {
    let mut c = Cluster::new(3, 3, 32, test_config());
    let old = c.wait_leader(100);
    c.put(b"before", b"1");
    // The old leader's appends reach the followers; nothing comes back.
    for f in others(old) {
        c.blocked.insert((f, old));
    }
    let cmd = RaftCmdRequest {
        header: c.header(old),
        requests: vec![put_req(b"kept", b"y")],
        admin: None,
    };
    let token = c.propose(old, cmd).unwrap();
    let mut new = old;
    for _ in 0..300 {
        c.tick();
        if let Some(l) = c.leader().filter(|l| *l != old) {
            new = l;
            break;
        }
    }
    assert_ne!(new, old, "the followers elected no leader");
    c.heal();
    let resp = c.wait_response(token, 200).expect("answered");
    assert_eq!(resp.header.error, None, "{resp:?}");
    assert_eq!(resp.responses, vec![Response::Put]);
    let r = c.call_leader(vec![get_req(b"kept")], None);
    assert_eq!(r.responses, vec![Response::Get { value: Some(b"y".to_vec()) }]);
}
