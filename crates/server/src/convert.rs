//! Translation between the client RPC (`KvRequest`/`KvResponse`) and region commands
//! (`RaftCmdRequest`/`RaftCmdResponse`). Pure functions.

use minikv_proto::kvrpc::{KvContext, KvRequest, KvResponse};
use minikv_proto::raft_cmdpb::{
    AdminRequest, AdminResponse, CfName, RaftCmdRequest, RaftCmdResponse, RaftRequestHeader,
    Request, Response,
};

/// The shape of answer a command's responses are turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Get,
    Put,
    Delete,
    Scan,
    BatchGet(Vec<Vec<u8>>),
    BatchPut,
    Cas,
    ChangePeer,
    TransferLeader,
}

/// The region command for a data request, and what its answer must look like. `None` for a
/// request that is not a region command (`LocateKey`).
pub fn to_command(context: &KvContext, request: KvRequest) -> Option<(RaftCmdRequest, Expect)> {
    let cf = CfName::Default;
    let header = RaftRequestHeader {
        region_id: context.region_id,
        peer: context.peer.clone(),
        region_epoch: context.region_epoch,
    };
    let (requests, expect) = match request {
        KvRequest::ChangePeer { change_type, peer, .. } => {
            let admin = Some(AdminRequest::ChangePeer { change_type, peer });
            return Some((RaftCmdRequest { header, requests: vec![], admin }, Expect::ChangePeer));
        }
        KvRequest::TransferLeader { peer, .. } => {
            let admin = Some(AdminRequest::TransferLeader { peer });
            let cmd = RaftCmdRequest { header, requests: vec![], admin };
            return Some((cmd, Expect::TransferLeader));
        }
        KvRequest::LocateKey { .. } => return None,
        KvRequest::RawGet { key } => (vec![Request::Get { cf, key }], Expect::Get),
        KvRequest::RawPut { key, value } => (vec![Request::Put { cf, key, value }], Expect::Put),
        KvRequest::RawDelete { key } => (vec![Request::Delete { cf, key }], Expect::Delete),
        KvRequest::RawScan { start_key, end_key, limit } => {
            (vec![Request::Scan { cf, start_key, end_key, limit }], Expect::Scan)
        }
        KvRequest::RawBatchGet { keys } => (
            keys.iter().map(|key| Request::Get { cf, key: key.clone() }).collect(),
            Expect::BatchGet(keys),
        ),
        KvRequest::RawBatchPut { pairs } => (
            pairs.into_iter().map(|(key, value)| Request::Put { cf, key, value }).collect(),
            Expect::BatchPut,
        ),
        KvRequest::RawCas { key, expected, new_value } => {
            (vec![Request::Cas { cf, key, expected, new_value }], Expect::Cas)
        }
    };
    Some((RaftCmdRequest { header, requests, admin: None }, expect))
}

/// The client's answer to a command that was proposed and answered.
pub fn to_response(response: RaftCmdResponse, expect: &Expect) -> KvResponse {
    if let Some(error) = response.header.error {
        return KvResponse::ProposalFailed(error);
    }
    match (expect, response.admin_response) {
        (Expect::ChangePeer, Some(AdminResponse::ChangePeer { region })) => {
            return KvResponse::ChangePeer { region };
        }
        (Expect::TransferLeader, Some(AdminResponse::TransferLeader)) => {
            return KvResponse::TransferLeader;
        }
        _ => {}
    }
    let mut responses = response.responses;
    match (expect, responses.as_mut_slice()) {
        (Expect::Get, [Response::Get { value }]) => KvResponse::Get { value: value.take() },
        (Expect::Put, [Response::Put]) => KvResponse::Put,
        (Expect::Delete, [Response::Delete]) => KvResponse::Delete,
        (Expect::Scan, [Response::Scan { kvs }]) => KvResponse::Scan { kvs: std::mem::take(kvs) },
        (Expect::BatchGet(keys), got) if got.len() == keys.len() => {
            let mut values = Vec::with_capacity(keys.len());
            for (key, r) in keys.iter().zip(got.iter_mut()) {
                let Response::Get { value } = r else {
                    return mismatch(expect, &responses);
                };
                values.push((key.clone(), value.take()));
            }
            KvResponse::BatchGet { values }
        }
        (Expect::BatchPut, got) if got.iter().all(|r| *r == Response::Put) => KvResponse::BatchPut,
        (Expect::Cas, [Response::Cas { succeeded, previous }]) => {
            KvResponse::Cas { succeeded: *succeeded, previous: previous.take() }
        }
        _ => mismatch(expect, &responses),
    }
}

fn mismatch(expect: &Expect, responses: &[Response]) -> KvResponse {
    KvResponse::Other(format!("store answered {responses:?} to a request expecting {expect:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minikv_proto::errorpb::RegionError;
    use minikv_proto::raft_cmdpb::RaftResponseHeader;

    fn ok(responses: Vec<Response>) -> RaftCmdResponse {
        RaftCmdResponse { responses, ..Default::default() }
    }

    #[test]
    fn batch_get_becomes_one_read_only_command_and_back() {
        let keys = vec![b"a".to_vec(), b"b".to_vec()];
        let ctx = KvContext { region_id: 4, ..Default::default() };
        let (cmd, expect) =
            to_command(&ctx, KvRequest::RawBatchGet { keys: keys.clone() }).unwrap();
        assert!(cmd.is_read_only());
        assert_eq!(cmd.header.region_id, 4);
        assert_eq!(cmd.requests.len(), 2);
        let resp =
            ok(vec![Response::Get { value: Some(b"1".to_vec()) }, Response::Get { value: None }]);
        assert_eq!(
            to_response(resp, &expect),
            KvResponse::BatchGet {
                values: vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)]
            }
        );
    }

    #[test]
    fn writes_and_errors_translate() {
        let ctx = KvContext::default();
        let (cmd, expect) = to_command(
            &ctx,
            KvRequest::RawCas {
                key: b"k".to_vec(),
                expected: None,
                new_value: Some(b"v".to_vec()),
            },
        )
        .unwrap();
        assert!(!cmd.is_read_only());
        let resp = ok(vec![Response::Cas { succeeded: true, previous: None }]);
        assert_eq!(to_response(resp, &expect), KvResponse::Cas { succeeded: true, previous: None });
        let failed = RaftCmdResponse {
            header: RaftResponseHeader { error: Some(RegionError::StaleCommand), current_term: 3 },
            ..Default::default()
        };
        assert_eq!(
            to_response(failed, &expect),
            KvResponse::ProposalFailed(RegionError::StaleCommand)
        );
        assert!(matches!(to_response(ok(vec![Response::Put]), &expect), KvResponse::Other(_)));
        assert!(to_command(&ctx, KvRequest::LocateKey { key: vec![] }).is_none());
        let (_, batch) = to_command(&ctx, KvRequest::RawBatchPut { pairs: vec![] }).unwrap();
        assert_eq!(to_response(ok(vec![]), &batch), KvResponse::BatchPut);
    }
}
