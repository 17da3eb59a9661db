//! A five-store cluster on madsim serves one client's puts and gets.
//! Replay a failing seed with `MADSIM_TEST_SEED=<seed>` (see the test output).

#![cfg(madsim)]

use std::time::Duration;

use minikv_client::{ClientConfig, RawClient};
use minikv_runtime::Clock;
use minikv_server::sim_cluster::{SimCluster, SimClusterConfig};

#[madsim::test]
async fn five_stores_serve_puts_and_gets() {
    let mut cluster = SimCluster::start(SimClusterConfig::new(5, 1));
    let addrs = cluster.addrs();
    let client = cluster.client_node("client-0");
    let done = client.spawn(async move {
        let mut c = RawClient::connect(ClientConfig::new(addrs), Clock::new(), "0.0.0.0:0")
            .await
            .expect("bind");
        for i in 0..20u32 {
            let key = format!("k{i}");
            let value = format!("v{i}");
            let mut put = c.put(key.as_bytes(), value.as_bytes()).await;
            while let Err(e) = &put {
                // Before the first election a put may time out; it is unknown, so write again.
                assert!(
                    e.is_unknown() || matches!(e, minikv_client::Error::DeadlineExceeded(_)),
                    "put: {e}"
                );
                put = c.put(key.as_bytes(), value.as_bytes()).await;
            }
            assert_eq!(c.get(key.as_bytes()).await.unwrap(), Some(value.into_bytes()));
        }
        let all = c.scan(b"", b"", 100).await.unwrap();
        assert_eq!(all.len(), 20);
        assert!(c.cas(b"k0", Some(b"v0"), Some(b"w")).await.unwrap().0);
        assert!(!c.cas(b"k0", Some(b"v0"), Some(b"x")).await.unwrap().0);
        c.delete(b"k1").await.unwrap();
        let got = c.batch_get(&[b"k0".to_vec(), b"k1".to_vec()]).await.unwrap();
        assert_eq!(got, vec![(b"k0".to_vec(), Some(b"w".to_vec())), (b"k1".to_vec(), None)]);
        c.batch_put(&[(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())])
            .await
            .unwrap();
        assert_eq!(c.get(b"b").await.unwrap(), Some(b"2".to_vec()));
    });
    done.await.expect("client task");
    madsim::time::sleep(Duration::from_secs(1)).await;
    let reference = cluster.data(1);
    assert!(!reference.is_empty());
    for id in cluster.store_ids() {
        assert_eq!(cluster.data(id), reference, "store {id} diverges from store 1");
    }
}
