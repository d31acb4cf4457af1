//! `WatchBalances` over gRPC: the first message is every book (none before a fill, with
//! the starting capital for books not seen yet), a fill sends that book's new balances,
//! exactly what the ledger booked, a watcher that connects later gets the book in its
//! first message, and the server's shutdown ends the streams. SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use stratbox_engine::proposal::hex_address;
use stratbox_engine::server;
use stratbox_proto::U256;
use stratbox_proto::v1::{self, trading_engine_client::TradingEngineClient};
use tokio::sync::oneshot;

const STRATEGY: &str = "balances";

fn held(balances: &[v1::TokenBalance]) -> BTreeMap<String, U256> {
    balances
        .iter()
        .map(|b| {
            (
                b.token.as_ref().expect("token").value.clone(),
                b.amount
                    .as_ref()
                    .expect("amount")
                    .parse()
                    .expect("a strict amount"),
            )
        })
        .collect()
}

async fn next(stream: &mut tonic::Streaming<v1::BalancesUpdate>) -> v1::BalancesUpdate {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a balances message within 10 s")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

both!(watch_balances_sends_every_book_then_each_fill);
async fn watch_balances_sends_every_book_then_each_fill(db: &Db) {
    let engine = engine(db).await;
    let capital = e(1, 24);
    let info = engine.chain().pool(&pool(&engine)).expect("pool");
    let (token0, token1) = (hex_address(&info.token0), hex_address(&info.token1));

    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve_grpc(engine.clone(), listener, async {
        let _ = stopped.await;
    }));
    let mut client = TradingEngineClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut stream = client
        .watch_balances(v1::WatchBalancesRequest { trace: None })
        .await
        .expect("watch")
        .into_inner();

    // First: every book (none has traded) and what a book holds before its first fill.
    let first = next(&mut stream).await;
    assert!(first.full, "{first:?}");
    assert!(first.books.is_empty(), "no book before a fill: {first:?}");
    assert_eq!(
        held(&first.starting),
        BTreeMap::from([(token1.clone(), capital)]),
        "a fresh book holds its capital in the quote token"
    );
    assert_eq!(
        engine.token_balances(STRATEGY, "acct-1"),
        BTreeMap::from([(token1.clone(), capital)])
    );

    // A buy of token0 fills: the change is that book, whole, as the ledger booked it.
    let r = engine
        .submit(
            "balances-test",
            vec![buy(&engine, STRATEGY, "buy-1", e(1, 18))],
        )
        .await
        .unwrap();
    assert_eq!(state(&r[0]), v1::TaskState::Simulated, "{:?}", r[0]);
    let task = engine
        .get_task(&r[0].task_id)
        .await
        .unwrap()
        .expect("the task");
    let paid: U256 = task
        .sim_amount1
        .clone()
        .expect("sim amount1")
        .parse()
        .unwrap();
    let got: U256 = task
        .sim_amount0
        .clone()
        .expect("sim amount0")
        .parse()
        .unwrap();
    assert!(paid > U256::ZERO && got > U256::ZERO, "{task:?}");
    let change = next(&mut stream).await;
    assert!(!change.full, "{change:?}");
    assert!(
        change.sequence > first.sequence,
        "{change:?} after {first:?}"
    );
    assert_eq!(change.books.len(), 1, "{change:?}");
    let book = &change.books[0];
    assert_eq!(
        (book.strategy.as_str(), book.account.as_str()),
        (STRATEGY, "acct-1")
    );
    let expected = BTreeMap::from([(token0.clone(), got), (token1.clone(), capital - paid)]);
    assert_eq!(held(&book.balances), expected);
    assert_eq!(engine.token_balances(STRATEGY, "acct-1"), expected);
    // The ledger agrees: the book's account holds exactly the fill.
    let positions = engine
        .positions(&format!("strategy:{STRATEGY}:acct-1"))
        .await
        .unwrap();
    assert_eq!(positions.len(), 2, "{positions:?}");
    assert_ledger_balances(&engine).await;

    // A refused proposal books nothing and sends nothing.
    let mut bad = buy(&engine, STRATEGY, "too-greedy", e(1, 18));
    bad.expected_amount0 = amount(got * U256::from(2u8));
    let r = engine.submit("balances-test", vec![bad]).await.unwrap();
    assert_eq!(state(&r[0]), v1::TaskState::Rejected, "{:?}", r[0]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.message())
            .await
            .is_err(),
        "nothing changed, nothing is sent"
    );

    // A watcher that comes later gets the book in its first message.
    let mut late = client
        .watch_balances(v1::WatchBalancesRequest { trace: None })
        .await
        .expect("watch")
        .into_inner();
    let view = next(&mut late).await;
    assert!(view.full);
    assert_eq!(view.sequence, change.sequence);
    assert_eq!(view.books, change.books);

    // Shutting the server down ends the streams, so it does not wait on them.
    let _ = stop.send(());
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends with the server");
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the server stops with watchers connected")
        .unwrap()
        .unwrap();
    engine.store().close().await;
}
