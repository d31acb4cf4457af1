//! Hard limits fed by the books: a strategy's booked fills, marked at the pool's price,
//! are what drawdown, daily loss, cash reserve and exposure judge. On SQLite and on
//! PostgreSQL (the books are loaded from the stored ledger at start).

#[macro_use]
mod common;

use common::*;
use stratbox_proto::U256;
use stratbox_proto::v1::TaskState as W;
use stratbox_risk::PermissionLevel;

const TRACE: &str = "books-test";
const STRATEGY: &str = "books";

both!(booked_losses_over_the_daily_limit_are_refused_and_halt_the_strategy);
async fn booked_losses_over_the_daily_limit_are_refused_and_halt_the_strategy(db: &Db) {
    let engine = engine(db).await;
    let capital = e(1, 24);
    // Five buys of 4% of capital each: ~19% of equity in token0, each paying the fee and
    // its price impact (about 0.8% of capital in all at the pool's unchanged price).
    for i in 0..5 {
        let r = engine
            .submit(
                TRACE,
                vec![buy(&engine, STRATEGY, &format!("buy-{i}"), e(4, 22))],
            )
            .await
            .unwrap();
        assert_eq!(state(&r[0]), W::Simulated, "buy {i}: {:?}", r[0]);
    }
    let (v, peak, day_start) = engine.book(STRATEGY, "acct-1").expect("book");
    assert_eq!(
        day_start, capital,
        "the day started with the book's capital"
    );
    assert_eq!(peak, capital);
    assert!(v.equity < capital, "fees and impact are booked losses");
    assert!(v.gross_exposure > e(18, 22), "{v:?}");
    assert!(
        v.cash < capital - e(19, 22),
        "cash paid for the buys: {v:?}"
    );
    assert_eq!(engine.permission_level(STRATEGY), PermissionLevel::L1);

    // A 33% price fall on ~19% of equity: a loss of ~7% today, over the 5% limit and
    // under the 10% drawdown limit.
    crash(&engine);
    let (v, _, day_start) = engine.book(STRATEGY, "acct-1").expect("book");
    let loss_bps = (day_start - v.equity) * U256::from(10_000u64) / day_start;
    assert!(
        loss_bps >= U256::from(500u64) && loss_bps < U256::from(1_000u64),
        "the scenario needs a loss between 5% and 10%, got {loss_bps} bps"
    );

    // The next proposal, even a small one, is refused by the daily loss limit...
    let r = engine
        .submit(TRACE, vec![buy(&engine, STRATEGY, "after-crash", e(1, 18))])
        .await
        .unwrap();
    assert_eq!(state(&r[0]), W::Rejected);
    assert_eq!(r[0].reason_code, "limit_daily_loss", "{:?}", r[0]);
    // ...and the breach halted the strategy until a human restores it.
    assert_eq!(engine.permission_level(STRATEGY), PermissionLevel::L0);
    let r = engine
        .submit(TRACE, vec![buy(&engine, STRATEGY, "halted", e(1, 18))])
        .await
        .unwrap();
    assert_eq!(r[0].reason_code, "permission_level", "{:?}", r[0]);
    // Another strategy on its own fresh book still trades.
    let mut other = buy(&engine, STRATEGY, "other", e(1, 18));
    other.strategy = "other-strategy".into();
    let r = engine.submit(TRACE, vec![other]).await.unwrap();
    assert_eq!(state(&r[0]), W::Simulated, "{:?}", r[0]);
    assert_ledger_balances(&engine).await;
    // What `stratbox engine` does on shutdown (the background flush does it each second).
    engine.flush_permissions().await.expect("flush");
    let day = now_day();
    engine.store().close().await;

    // A restart loads the same holdings from the ledger: on a chain in the same state the
    // book is valued exactly as before...
    let restarted = common::engine(db).await;
    crash(&restarted);
    let (again, peak, day_start) = restarted
        .book(STRATEGY, "acct-1")
        .expect("book after restart");
    assert_eq!(again, v, "the restarted engine sees the same book");
    // ...and judged from the same marks: a restart must not reset the peak (drawdown) or
    // the day's start (daily loss) to the equity it finds, which is after the loss.
    assert_eq!(peak, capital, "the stored peak survives the restart");
    if now_day() == day {
        assert_eq!(
            day_start, capital,
            "the stored day start survives the restart"
        );
    }
    restarted.store().close().await;
}

both!(gas_price_spikes_are_refused_with_a_stable_code);
async fn gas_price_spikes_are_refused_with_a_stable_code(db: &Db) {
    let engine = engine(db).await;
    let gwei = |g: u64| U256::from(g) * U256::from(1_000_000_000u64);
    engine.set_gas_price(gwei(30));
    let r = engine
        .submit(TRACE, vec![buy(&engine, STRATEGY, "gas-ok", e(1, 18))])
        .await
        .unwrap();
    assert_eq!(state(&r[0]), W::Simulated, "{:?}", r[0]);
    // Simulated at that price, and stored with it: gas used x price is the trade's fee.
    let task = engine.get_task(&r[0].task_id).await.unwrap().expect("task");
    assert!(task.sim_gas_used > 50_000, "{task:?}");
    assert_eq!(
        task.sim_gas_price.map(|a| a.value),
        Some(gwei(30).to_string())
    );
    // The default cap is 500 gwei: exactly the cap passes, one wei more is a spike.
    engine.set_gas_price(gwei(500) + U256::from(1u8));
    let r = engine
        .submit(TRACE, vec![buy(&engine, STRATEGY, "gas-spike", e(1, 18))])
        .await
        .unwrap();
    assert_eq!(state(&r[0]), W::Rejected);
    assert_eq!(r[0].reason_code, "gas_price", "{:?}", r[0]);
    // (Quoted first: no account can pay for a quote at 2^256-1 wei per gas.)
    let at_max = buy(&engine, STRATEGY, "gas-max", e(1, 18));
    engine.set_gas_price(U256::MAX);
    let r = engine.submit(TRACE, vec![at_max]).await.unwrap();
    assert_eq!(r[0].reason_code, "gas_price");
    engine.set_gas_price(gwei(500));
    let r = engine
        .submit(TRACE, vec![buy(&engine, STRATEGY, "gas-cap", e(1, 18))])
        .await
        .unwrap();
    assert_eq!(state(&r[0]), W::Simulated, "{:?}", r[0]);
    engine.store().close().await;
}

fn now_day() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    ms.div_euclid(stratbox_engine::books::DAY_MS)
}

/// Exposure of the book to token0 in basis points of its equity.
fn exposure_bps(engine: &stratbox_engine::Engine) -> U256 {
    let (v, _, _) = engine.book(STRATEGY, "acct-1").expect("book");
    v.gross_exposure * U256::from(10_000u64) / v.equity
}

/// Buys of 4% of capital each, every one a distinct proposal.
fn buys(engine: &stratbox_engine::Engine, tag: &str, n: u64) -> Vec<stratbox_proto::v1::Proposal> {
    (0..n)
        .map(|i| {
            buy(
                engine,
                STRATEGY,
                &format!("{tag}-{i}"),
                e(4, 22) + U256::from(i),
            )
        })
        .collect()
}

both!(proposals_in_one_batch_are_judged_on_the_book_with_the_ones_before_them);
async fn proposals_in_one_batch_are_judged_on_the_book_with_the_ones_before_them(db: &Db) {
    let engine = engine(db).await;
    // Ten buys of 4% each: every one alone is well inside the 30% single-asset limit, all
    // ten would hold 40%. Seven fit (28%); the eighth would make 32% with the seven before
    // it, which pass the gates in the same batch but are not booked yet.
    let r = engine
        .submit(TRACE, buys(&engine, "batch", 10))
        .await
        .unwrap();
    let passed = r.iter().filter(|r| state(r) == W::Simulated).count();
    assert_eq!(passed, 7, "{r:?}");
    for x in &r[7..] {
        assert_eq!(x.reason_code, "limit_exposure", "{x:?}");
    }
    let bps = exposure_bps(&engine);
    assert!(
        bps <= U256::from(3_000u64) && bps > U256::from(2_600u64),
        "the booked exposure stays under the limit: {bps} bps"
    );
    assert_eq!(
        engine.permission_level(STRATEGY),
        PermissionLevel::L1,
        "no breach once the fills are booked"
    );
    assert_eq!(
        engine.reservations(),
        0,
        "released once the batch is settled"
    );
    // Booked now: the next buy is judged on the book alone and refused the same way.
    let r = engine
        .submit(TRACE, buys(&engine, "after", 1))
        .await
        .unwrap();
    assert_eq!(r[0].reason_code, "limit_exposure", "{:?}", r[0]);
    assert_ledger_balances(&engine).await;
    engine.store().close().await;
}

both!(concurrent_batches_for_one_book_share_its_limits);
async fn concurrent_batches_for_one_book_share_its_limits(db: &Db) {
    let engine = engine(db).await;
    // Six batches of two buys at once: twelve buys of 4%, of which seven fit, whichever
    // batches they are in and in whatever order the batches are judged.
    let batches: Vec<_> = (0..6)
        .map(|b| buys(&engine, &format!("conc-{b}"), 2))
        .collect();
    let handles: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.submit(TRACE, batch).await })
        })
        .collect();
    let mut passed = 0;
    for h in handles {
        for r in h.await.unwrap().unwrap() {
            if state(&r) == W::Simulated {
                passed += 1;
            } else {
                assert_eq!(r.reason_code, "limit_exposure", "{r:?}");
            }
        }
    }
    assert_eq!(passed, 7);
    assert!(exposure_bps(&engine) <= U256::from(3_000u64));
    assert_eq!(engine.permission_level(STRATEGY), PermissionLevel::L1);
    assert_eq!(engine.reservations(), 0);
    assert_ledger_balances(&engine).await;
    engine.store().close().await;
}

both!(a_submit_abandoned_mid_way_still_books_what_it_decided);
async fn a_submit_abandoned_mid_way_still_books_what_it_decided(db: &Db) {
    let engine = engine(db).await;
    // Abandon a batch once it holds reservations (its proposals passed the gates and are
    // being simulated or stored), as a client that closes its connection does: the batch is
    // still decided, stored and booked, and its reservations released.
    let batch = buys(&engine, "abandoned", 5);
    let submit = {
        let engine = engine.clone();
        let batch = batch.clone();
        tokio::spawn(async move { engine.submit(TRACE, batch).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine.reservations() == 0 && !submit.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never held anything"
        );
        tokio::task::yield_now().await;
    }
    submit.abort();
    let _ = submit.await;
    while engine.reservations() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "reservations never released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Asked again, the same batch is the tasks already made: nothing lost, nothing twice.
    let again = engine.submit(TRACE, batch).await.unwrap();
    for r in &again {
        assert!(r.duplicate, "{r:?}");
        assert_eq!(state(r), W::Simulated, "{r:?}");
    }
    // The five fills are on the book (~20%): two more buys of 4% fit, a third does not.
    let r = engine
        .submit(TRACE, buys(&engine, "fresh", 3))
        .await
        .unwrap();
    let passed = r.iter().filter(|r| state(r) == W::Simulated).count();
    assert_eq!(passed, 2, "{r:?}");
    assert_eq!(r[2].reason_code, "limit_exposure", "{:?}", r[2]);
    assert_eq!(engine.reservations(), 0);
    assert_ledger_balances(&engine).await;
    engine.store().close().await;
}
