//! Strategy memory (world stratbox:strategy@0.2.0) over gRPC: a host's changes are stored,
//! overwritten and removed, and read back by an engine started again on the same database;
//! a put that would grow the memory over its cap is refused whole (RESOURCE_EXHAUSTED naming
//! the sizes) while one that shrinks it is not; a bad key is INVALID_ARGUMENT; an engine
//! with keys wants a host key. SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;

use common::*;
use stratbox_engine::{Role, Store, server};
use stratbox_proto::v1::{self, trading_engine_client::TradingEngineClient};
use tokio::sync::oneshot;

const HOST_KEY: &str = "host-key-0123456789";
const OPS_KEY: &str = "ops-key-0123456789";

/// Serves `engine` with a host and an operator key; returns its URL and the stop switch.
async fn serve(db: &Db) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let engine = engine(db).await;
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let keys = Arc::new(TestKeys(vec![
        (HOST_KEY, "host-1", Role::Host),
        (OPS_KEY, "ops", Role::Operator),
    ]));
    let serving = tokio::spawn(async move {
        server::serve_grpc_with_access(
            engine.clone(),
            tonic::service::Routes::default(),
            Some(keys),
            listener,
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
        engine.store().close().await;
    });
    (format!("http://{addr}"), stop, serving)
}

async fn client(url: &str) -> TradingEngineClient<tonic::transport::Channel> {
    TradingEngineClient::connect(url.to_owned()).await.unwrap()
}

fn set(key: &str, value: &[u8]) -> v1::MemoryChange {
    v1::MemoryChange {
        key: key.into(),
        value: value.to_vec(),
        remove: false,
    }
}

fn put(strategy: &str, changes: Vec<v1::MemoryChange>) -> v1::PutStrategyMemoryRequest {
    v1::PutStrategyMemoryRequest {
        trace: None,
        strategy: strategy.into(),
        changes,
    }
}

fn get(strategy: &str) -> v1::GetStrategyMemoryRequest {
    v1::GetStrategyMemoryRequest {
        trace: None,
        strategy: strategy.into(),
    }
}

fn entries(m: &v1::StrategyMemory) -> Vec<(String, Vec<u8>)> {
    m.entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}

both!(memory_is_stored_capped_and_survives_a_restart);
async fn memory_is_stored_capped_and_survives_a_restart(db: &Db) {
    let (url, stop, serving) = serve(db).await;
    let mut c = client(&url).await;

    // No key, or an operator's key: refused before anything is read or written.
    let err = c.get_strategy_memory(get("momentum")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let err = c
        .put_strategy_memory(with_key(put("momentum", vec![set("a", b"1")]), OPS_KEY))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    let empty = c
        .get_strategy_memory(with_key(get("momentum"), HOST_KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.entries.is_empty());
    assert_eq!(empty.used_bytes, 0);
    assert_eq!(empty.cap_bytes, 64 << 10);

    // Sets, an overwrite and a remove in one put; the last change to a key wins.
    let stored = c
        .put_strategy_memory(with_key(
            put(
                "momentum",
                vec![
                    set("widen_bps", &20u64.to_le_bytes()),
                    set("outcomes:simulated", &3u64.to_le_bytes()),
                    set("scratch", b"x"),
                    set("widen_bps", &30u64.to_le_bytes()),
                    v1::MemoryChange {
                        key: "scratch".into(),
                        value: Vec::new(),
                        remove: true,
                    },
                ],
            ),
            HOST_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.used_bytes, (9 + 8) + (18 + 8));
    // Another strategy's memory is its own.
    c.put_strategy_memory(with_key(put("tally", vec![set("k", b"v")]), HOST_KEY))
        .await
        .unwrap();

    // Over the cap: refused whole, with the sizes; what was stored is untouched.
    let err = c
        .put_strategy_memory(with_key(
            put(
                "momentum",
                vec![set("fits", b"small"), set("huge", &vec![7u8; 64 << 10])],
            ),
            HOST_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("over its cap of 65536 bytes")
            && err.message().contains("nothing was changed"),
        "{}",
        err.message()
    );
    // A key of 129 bytes is refused.
    let err = c
        .put_strategy_memory(with_key(
            put("momentum", vec![set(&"k".repeat(129), b"v")]),
            HOST_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    // The engine stops; one started on the same database reads the same entries.
    stop.send(()).unwrap();
    serving.await.unwrap();
    let (url, stop, serving) = serve(db).await;
    let mut c = client(&url).await;
    let after = c
        .get_strategy_memory(with_key(get("momentum"), HOST_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        entries(&after),
        vec![
            (
                "outcomes:simulated".to_string(),
                3u64.to_le_bytes().to_vec()
            ),
            ("widen_bps".to_string(), 30u64.to_le_bytes().to_vec()),
        ]
    );
    assert_eq!(after.used_bytes, stored.used_bytes);
    let tally = c
        .get_strategy_memory(with_key(get("tally"), HOST_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(entries(&tally), vec![("k".to_string(), b"v".to_vec())]);
    stop.send(()).unwrap();
    serving.await.unwrap();
}

both!(a_memory_over_a_lowered_cap_may_shrink_but_not_grow);
async fn a_memory_over_a_lowered_cap_may_shrink_but_not_grow(db: &Db) {
    let store = Store::connect(&db.url()).await.unwrap();
    let used = store
        .put_strategy_memory(
            "s",
            &[
                ("a".into(), Some(vec![0; 99])),
                ("b".into(), Some(vec![0; 99])),
            ],
            1000,
        )
        .await
        .unwrap();
    assert_eq!(used, 200);
    // The cap is now 150: growing is refused...
    let err = store
        .put_strategy_memory("s", &[("c".into(), Some(vec![1]))], 150)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            stratbox_engine::store::MemoryPutError::Full {
                used: 200,
                would: 202,
                cap: 150,
                ..
            }
        ),
        "{err:?}"
    );
    // ...shrinking is not, even while still over.
    let used = store
        .put_strategy_memory("s", &[("a".into(), Some(vec![0; 9]))], 150)
        .await
        .unwrap();
    assert_eq!(used, 110);
    assert_eq!(store.strategy_memory_used("s").await.unwrap(), 110);
    let used = store
        .put_strategy_memory("s", &[("b".into(), None)], 150)
        .await
        .unwrap();
    assert_eq!(used, 10);
    assert_eq!(
        store.strategy_memory("s").await.unwrap(),
        vec![("a".to_string(), vec![0; 9])]
    );
    store.close().await;
}
