//! What the client makes of answers that do not answer the request in flight: a stale or
//! undecodable response is skipped, never taken as the answer; and a store answer that is
//! not the expected kind leaves a write's outcome unknown (it may have applied), never `fail`.
#![cfg(madsim)]

mod support;

use minikv_client::Error;
use minikv_proto::errorpb::RegionError;
use minikv_proto::kvrpc::{KvRequest, KvResponse};
use support::{Extra, Script, peer, region, with_noisy_store, with_store};

/// A store that locates region 1 with itself as leader and answers puts with `put`.
fn put_script(put: KvResponse) -> Script {
    Box::new(move |log| match &log.last().unwrap().request {
        KvRequest::LocateKey { .. } => {
            KvResponse::Located { region: region(1, &[1]), leader: Some(peer(1)) }
        }
        KvRequest::RawPut { .. } => put.clone(),
        other => panic!("unexpected request {other:?}"),
    })
}

#[madsim::test]
async fn stale_and_undecodable_responses_are_skipped() {
    // Before its answer to each put, the store sends an undecodable response and a stale
    // answer (an error the client would act on, were it taken as the answer).
    let noise = Box::new(|request: &minikv_proto::kvrpc::KvRequestEnvelope| {
        if !matches!(request.request, KvRequest::RawPut { .. }) {
            return Vec::new();
        }
        let refused = RegionError::ServerIsBusy { reason: "stale".to_string() };
        vec![Extra::Garbage(vec![0xff; 7]), Extra::Stale(KvResponse::RegionError(refused))]
    });
    let (result, seen) =
        with_noisy_store(put_script(KvResponse::Put), noise, |mut client| async move {
            client.put(b"k", b"v").await
        })
        .await;
    assert_eq!(result, Ok(()));
    let puts = seen.iter().filter(|r| matches!(r.request, KvRequest::RawPut { .. })).count();
    assert_eq!(puts, 1, "the put was sent once and answered once");
}

#[madsim::test]
async fn an_answer_of_the_wrong_kind_leaves_a_write_unknown() {
    let odd = KvResponse::Other("store answered [Get] to a request expecting Put".to_string());
    let (result, _) =
        with_store(put_script(odd), |mut client| async move { client.put(b"k", b"v").await }).await;
    assert!(matches!(&result, Err(e) if e.is_unknown()), "{result:?}");
}

#[madsim::test]
async fn an_answer_of_the_wrong_kind_fails_a_read() {
    let odd = KvResponse::Other("store answered [Put] to a request expecting Get".to_string());
    let script: Script = Box::new(move |log| match &log.last().unwrap().request {
        KvRequest::LocateKey { .. } => {
            KvResponse::Located { region: region(1, &[1]), leader: Some(peer(1)) }
        }
        _ => odd.clone(),
    });
    let (result, _) = with_store(script, |mut client| async move { client.get(b"k").await }).await;
    assert!(matches!(&result, Err(Error::Store(_))), "{result:?}");
}

#[madsim::test]
async fn a_client_on_a_reused_address_never_reuses_the_last_ones_request_ids() {
    // madsim gives the next socket bound on a node the lowest free port: the second client
    // takes the first one's address, where answers to the first may still arrive. Were the
    // ids the same, it would take such an answer for its own.
    let (addrs, seen) = with_store(put_script(KvResponse::Put), |mut first| async move {
        first.put(b"k", b"1").await.unwrap();
        let config = first.config().clone();
        let first_addr = first.local_addr();
        drop(first);
        let mut second =
            minikv_client::RawClient::connect(config, minikv_runtime::Clock::new(), "0.0.0.0:0")
                .await
                .unwrap();
        second.put(b"k", b"2").await.unwrap();
        (first_addr.unwrap(), second.local_addr().unwrap())
    })
    .await;
    assert_eq!(addrs.0, addrs.1, "the test needs the address to be reused");
    let ids: Vec<u64> = seen.iter().map(|r| r.request_id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "request ids repeat across the two clients: {ids:?}");
}
