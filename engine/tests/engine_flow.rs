//! The engine end to end in-process, on the embedded revm chain, against SQLite and the
//! local PostgreSQL (a fresh database per test).

#[macro_use]
mod common;

use common::*;
use stratbox_engine::fsm::TaskState;
use stratbox_engine::proposal::{Range, TradeAction};
use stratbox_engine::store::{NewTask, Transition};
use stratbox_engine::{EngineSettings, Recovery, Store};
use stratbox_proto::U256;
use stratbox_proto::v1::{self, TaskState as W};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

both!(shadow_swap_books_a_balanced_fill_and_replays_are_duplicates);
async fn shadow_swap_books_a_balanced_fill_and_replays_are_duplicates(db: &Db) {
    let engine = engine(db).await;
    let batch = vec![
        good_swap(&engine, "ev-1", 0, 1_000_000_000_000),
        good_swap(&engine, "ev-1", 1, 2_000_000_000_000),
    ];
    let first = engine.submit(TRACE, batch.clone()).await.unwrap();
    assert_eq!(first.len(), 2);
    for r in &first {
        assert_eq!(state(r), W::Simulated, "{r:?}");
        assert_eq!(r.reason_code, "ok");
        assert!(!r.duplicate);
        assert_eq!(r.idempotency_key.len(), 64);
    }
    assert_ne!(first[0].task_id, first[1].task_id);
    let again = engine.submit("", batch.clone()).await.unwrap();
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.task_id, b.task_id, "a replay returns the first task");
        assert!(b.duplicate);
        assert_eq!(state(b), W::Simulated);
    }
    // The same proposal twice within one batch: one task.
    let dup = engine
        .submit(TRACE, vec![batch[0].clone(), batch[0].clone()])
        .await
        .unwrap();
    assert_eq!(dup[0].task_id, dup[1].task_id);
    assert!(dup[1].duplicate);

    let task = engine
        .get_task(&first[0].task_id)
        .await
        .unwrap()
        .expect("task");
    assert_eq!(task.trace_id, TRACE);
    assert_eq!(
        task.proposal.as_ref().map(|p| p.event_id.as_str()),
        Some("ev-1")
    );
    let a0 = task
        .sim_amount0
        .as_ref()
        .and_then(|a| a.parse().ok())
        .unwrap();
    let a1 = task
        .sim_amount1
        .as_ref()
        .and_then(|a| a.parse().ok())
        .unwrap();
    assert_eq!(
        a0,
        U256::from(1_000_000_000_000u64),
        "a full exact-input swap spends amount_in"
    );
    assert!(a1 > U256::ZERO);
    assert!(task.sim_gas_used > 0);

    // The fill: strategy gave token0 and got token1, the venue the opposite, exactly.
    let entries = engine.ledger("", &first[0].task_id, 0).await.unwrap();
    assert_eq!(entries.len(), 4);
    let pos = engine.positions("strategy:momentum:acct-1").await.unwrap();
    assert_eq!(pos.len(), 2);
    let neg: Vec<_> = pos
        .iter()
        .filter(|p| p.balance.as_ref().unwrap().negative)
        .collect();
    assert_eq!(neg.len(), 1, "spent token0, holds token1: {pos:?}");
    assert_eq!(
        neg[0]
            .balance
            .as_ref()
            .unwrap()
            .magnitude
            .as_ref()
            .unwrap()
            .value,
        "3000000000000",
        "two fills of 1e12 and 2e12 token0"
    );
    assert_ledger_balances(&engine).await;
    // Every state change was audited with the request's trace id.
    let audit = engine.store().audit_for(&first[0].task_id).await.unwrap();
    assert_eq!(audit.len(), 2, "created (INIT) and INIT -> SIMULATED");
    assert!(audit.iter().all(|a| a.trace_id == TRACE));
    assert_eq!(audit[1].to_state, "SIMULATED");
    let pnl = engine.shadow_pnl().await.unwrap();
    assert_eq!(pnl.len(), 1, "one strategy, one quote asset: {pnl:?}");
    assert!(
        pnl[0].2.negative,
        "the fee and price impact make a round trip a small loss"
    );
    engine.store().close().await;
}

both!(bad_input_is_a_per_proposal_rejection);
async fn bad_input_is_a_per_proposal_rejection(db: &Db) {
    let engine = engine(db).await;
    let good = good_swap(&engine, "ev-2", 0, 1_000_000);
    let mut float = good.clone();
    float.index = 1;
    float.expected_amount1 = Some(v1::Amount {
        value: "1.5".into(),
    });
    let mut bps = good.clone();
    bps.index = 2;
    bps.max_slippage_bps = 10_001;
    let mut no_action = good.clone();
    no_action.index = 3;
    no_action.action = None;
    let mut bad_addr = good.clone();
    bad_addr.index = 4;
    if let Some(v1::proposal::Action::Swap(s)) = &mut bad_addr.action {
        s.pool = Some(v1::Address {
            value: "0xnothex".into(),
        });
    }
    let mut huge = good.clone();
    huge.index = 5;
    huge.strategy = "x".repeat(100_000);
    let r = engine
        .submit(
            TRACE,
            vec![good, float, bps, no_action, bad_addr, huge.clone()],
        )
        .await
        .unwrap();
    assert_eq!(state(&r[0]), W::Simulated);
    for x in &r[1..] {
        assert_eq!(state(x), W::Rejected, "{x:?}");
        assert_eq!(x.reason_code, "bad_input");
    }
    // Garbage leaves nothing behind, however often it is replayed: only the good
    // proposal's task exists.
    for x in &r[1..] {
        assert!(x.task_id.is_empty(), "{x:?}");
    }
    for _ in 0..3 {
        let again = engine.submit(TRACE, vec![huge.clone()]).await.unwrap();
        assert_eq!(again[0].reason_code, "bad_input");
        assert!(again[0].task_id.is_empty());
    }
    let stored: i64 = engine
        .store()
        .count_tasks()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(stored, 1, "only the good proposal is stored");
    assert_ledger_balances(&engine).await;
    engine.store().close().await;
}

both!(gates_refuse_in_order_with_stable_codes);
async fn gates_refuse_in_order_with_stable_codes(db: &Db) {
    let engine = engine(db).await;
    let p = pool(&engine);
    // Simulation: expecting twice the real output -> sim_min_out.
    let a = swap_action(p, true, U256::from(1_000_000_000u64));
    let q = quote(&engine, "acct-1", &a);
    let greedy = proposal(
        &engine,
        "momentum",
        "ev-3",
        0,
        &a,
        q.amount0,
        q.amount1 * U256::from(2u8),
        50,
    );
    // Slippage over the hard limit (100 bps by default).
    let loose = proposal(
        &engine, "momentum", "ev-3", 1, &a, q.amount0, q.amount1, 500,
    );
    // More than the account could hold: reverts in the token.
    let whale = proposal(
        &engine,
        "momentum",
        "ev-3",
        2,
        &swap_action(p, false, U256::MAX),
        U256::ZERO,
        U256::ZERO,
        50,
    );
    // Adding liquidity, paying more than expected -> sim_max_in.
    let range = Range {
        pool: p,
        tick_lower: -600,
        tick_upper: 600,
        liquidity: 1_000_000_000_000,
    };
    let add_q = quote(&engine, "acct-1", &TradeAction::AddLiquidity(range));
    assert!(add_q.success, "{}", add_q.revert_reason);
    let add_ok = proposal(
        &engine,
        "maker",
        "ev-3",
        3,
        &TradeAction::AddLiquidity(range),
        add_q.amount0,
        add_q.amount1,
        10,
    );
    let add_low = proposal(
        &engine,
        "maker",
        "ev-3",
        4,
        &TradeAction::AddLiquidity(range),
        add_q.amount0 / U256::from(2u8),
        add_q.amount1,
        10,
    );
    let rm_q = quote(&engine, "acct-1", &TradeAction::RemoveLiquidity(range));
    assert!(rm_q.success, "{}", rm_q.revert_reason);
    let rm_ok = proposal(
        &engine,
        "maker",
        "ev-3",
        5,
        &TradeAction::RemoveLiquidity(range),
        rm_q.amount0,
        rm_q.amount1,
        10,
    );
    let r = engine
        .submit(TRACE, vec![greedy, loose, whale, add_ok, add_low, rm_ok])
        .await
        .unwrap();
    let codes: Vec<&str> = r.iter().map(|x| x.reason_code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "sim_min_out",
            "limit_slippage",
            "limit_notional",
            "ok",
            "sim_max_in",
            "ok"
        ],
        "{r:?}"
    );

    // Stale watermark.
    engine.set_watermark(engine.watermark() + 10);
    let stale = good_swap(&engine, "ev-4", 0, 1_000_000);
    let mut stale = stale;
    stale.last_sync_block = engine.watermark() - 4;
    let r = engine.submit(TRACE, vec![stale]).await.unwrap();
    assert_eq!(r[0].reason_code, "stale_watermark");
    engine.set_watermark(engine.watermark() - 10);

    // Kill switch first of all, persisted, audited; clearing restores trading.
    let k = engine
        .set_kill_switch(TRACE, "drill", "alice")
        .await
        .unwrap();
    assert!(k.engaged);
    let r = engine
        .submit(TRACE, vec![good_swap(&engine, "ev-5", 0, 1_000_000)])
        .await
        .unwrap();
    assert_eq!(r[0].reason_code, "kill_switch");
    assert_eq!(
        engine
            .store()
            .load_kill_switch()
            .await
            .unwrap()
            .map(|k| k.engaged),
        Some(true)
    );
    let audit = engine.store().audit_for("kill_switch").await.unwrap();
    assert_eq!(audit.last().map(|a| a.actor.as_str()), Some("alice"));
    assert_eq!(audit.last().map(|a| a.trace_id.as_str()), Some(TRACE));
    assert!(!k.cancel_pending);
    // Engaged again with cancel-pending: stored with it, audited as such; a clear drops it.
    let k = engine
        .engage_kill_switch(TRACE, "drill 2", "alice", true)
        .await
        .unwrap();
    assert!(k.engaged && k.cancel_pending);
    let stored = engine.store().load_kill_switch().await.unwrap().unwrap();
    assert!(stored.engaged && stored.cancel_pending);
    let audit = engine.store().audit_for("kill_switch").await.unwrap();
    assert_eq!(
        audit.last().map(|a| a.detail.as_str()),
        Some("drill 2 (cancel pending)")
    );
    engine.clear_kill_switch(TRACE, "bob").await.unwrap();
    assert!(!engine.kill_switch().cancel_pending);
    let stored = engine.store().load_kill_switch().await.unwrap().unwrap();
    assert!(!stored.engaged && !stored.cancel_pending);
    let r = engine
        .submit(TRACE, vec![good_swap(&engine, "ev-5", 1, 1_000_000)])
        .await
        .unwrap();
    assert_eq!(r[0].reason_code, "ok");

    // Oracle disagreement (1% > 0.5%) halts the market.
    feed_oracles(&engine, 100);
    let r = engine
        .submit(TRACE, vec![good_swap(&engine, "ev-6", 0, 1_000_000)])
        .await
        .unwrap();
    assert_eq!(r[0].reason_code, "oracle_disagreement");

    let metrics = engine.metrics().render();
    assert!(
        metrics.contains("stratbox_engine_proposals_total{result=\"sim_min_out\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("stratbox_engine_tasks{state=\"SIMULATED\"}"));
    assert_ledger_balances(&engine).await;
    engine.store().close().await;
}

both!(concurrent_submits_of_one_batch_create_each_task_once);
async fn concurrent_submits_of_one_batch_create_each_task_once(db: &Db) {
    let engine = engine(db).await;
    let batch: Vec<_> = (0..5)
        .map(|i| good_swap(&engine, "ev-c", i, 1_000_000 + u64::from(i)))
        .collect();
    let mut handles = Vec::new();
    for _ in 0..8 {
        let e = engine.clone();
        let b = batch.clone();
        handles.push(tokio::spawn(async move { e.submit(TRACE, b).await }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.push(h.await.unwrap().unwrap());
    }
    for i in 0..5 {
        let ids: std::collections::HashSet<_> = all.iter().map(|r| r[i].task_id.clone()).collect();
        assert_eq!(ids.len(), 1, "proposal {i} got several tasks");
        assert_eq!(
            all.iter().filter(|r| !r[i].duplicate).count(),
            1,
            "exactly one submit created it"
        );
    }
    let (tasks, _) = engine.list_tasks("", None, 1000, "").await.unwrap();
    assert_eq!(tasks.len(), 5);
    let fills = engine.ledger("", "", 0).await.unwrap();
    assert_eq!(fills.len(), 5 * 4, "each fill booked once");
    assert_ledger_balances(&engine).await;
    engine.store().close().await;
}

both!(ledger_is_append_only_and_corrections_are_reversals);
async fn ledger_is_append_only_and_corrections_are_reversals(db: &Db) {
    let engine = engine(db).await;
    let r = engine
        .submit(TRACE, vec![good_swap(&engine, "ev-l", 0, 1_000_000)])
        .await
        .unwrap();
    let pool = engine.store().pool().clone();
    assert!(
        sqlx::query("UPDATE ledger_entries SET amount = '1'")
            .execute(&pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM ledger_entries")
            .execute(&pool)
            .await
            .is_err()
    );
    let posting = format!("{}:fill", r[0].task_id);
    engine
        .reverse_posting(TRACE, &posting, "carol", "wrong fill")
        .await
        .unwrap();
    let pos = engine.positions("strategy:momentum:acct-1").await.unwrap();
    assert!(
        pos.iter().all(|p| p
            .balance
            .as_ref()
            .unwrap()
            .magnitude
            .as_ref()
            .unwrap()
            .value
            == "0"),
        "{pos:?}"
    );
    assert_eq!(engine.ledger("", &r[0].task_id, 0).await.unwrap().len(), 8);
    assert_ledger_balances(&engine).await;
    engine.store().close().await;
}

both!(compare_and_set_refuses_stale_and_illegal_moves);
async fn compare_and_set_refuses_stale_and_illegal_moves(db: &Db) {
    let engine = engine(db).await;
    let r = engine
        .submit(TRACE, vec![good_swap(&engine, "ev-f", 0, 1_000_000)])
        .await
        .unwrap();
    let t = |from, to| Transition {
        task_id: r[0].task_id.clone(),
        from,
        to,
        reason_code: "test".into(),
        detail: String::new(),
        sim: None,
        trace_id: TRACE.into(),
        actor: "test".into(),
        posting: None,
        and_stage: false,
    };
    // It is SIMULATED: a CAS expecting INIT changes nothing.
    assert_eq!(
        engine
            .store()
            .apply(&[t(TaskState::Init, TaskState::Rejected)])
            .await
            .unwrap(),
        [false]
    );
    // Illegal edges never reach the database.
    assert!(
        engine
            .store()
            .apply(&[t(TaskState::Simulated, TaskState::Init)])
            .await
            .is_err()
    );
    assert!(
        engine
            .store()
            .apply(&[t(TaskState::Simulated, TaskState::Signed)])
            .await
            .is_err()
    );
    assert_eq!(
        engine
            .store()
            .apply(&[t(TaskState::Simulated, TaskState::Staged)])
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        engine
            .store()
            .apply(&[t(TaskState::Simulated, TaskState::Staged)])
            .await
            .unwrap(),
        [false],
        "only once"
    );
    let task = engine.get_task(&r[0].task_id).await.unwrap().unwrap();
    assert_eq!(task.state, W::Staged as i32);
    // Paging.
    let batch: Vec<_> = (1..6)
        .map(|i| good_swap(&engine, "ev-f", i, 1_000_000))
        .collect();
    engine.submit(TRACE, batch).await.unwrap();
    let (p1, tok) = engine.list_tasks("momentum", None, 4, "").await.unwrap();
    assert_eq!(p1.len(), 4);
    let (p2, tok2) = engine.list_tasks("momentum", None, 4, &tok).await.unwrap();
    assert_eq!(p2.len(), 2);
    assert!(tok2.is_empty());
    let (sim, _) = engine
        .list_tasks("", Some(TaskState::Simulated), 100, "")
        .await
        .unwrap();
    assert_eq!(sim.len(), 5);
    engine.store().close().await;
}

both!(recovery_expires_tasks_left_in_init);
async fn recovery_expires_tasks_left_in_init(db: &Db) {
    {
        let store = Store::connect(&db.url()).await.unwrap();
        store
            .insert_tasks(&[NewTask {
                task_id: "00000000-0000-7000-8000-000000000001".into(),
                idempotency_key: "k".repeat(64),
                mode: "shadow",
                strategy: "s".into(),
                account: "a".into(),
                proposal: Vec::new(),
                trace_id: TRACE.into(),
            }])
            .await
            .unwrap();
        store.close().await;
    }
    let engine = engine_with(
        db,
        EngineSettings {
            recovery: Recovery::Expire,
            ..EngineSettings::default()
        },
    )
    .await;
    let t = engine
        .get_task("00000000-0000-7000-8000-000000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.state, W::Expired as i32);
    assert_eq!(t.reason_code, "expired_on_recovery");
    engine.store().close().await;
}

both!(concurrent_batches_that_share_proposals_get_one_task_per_proposal);
/// Batches submitted at once, each repeating half of another's proposals (as a host retrying
/// beside a second host would): every proposal gets exactly one task, every batch that
/// carries it is answered with that task as it stands after simulation, and the ledger
/// balances. On SQLite these batches share commits (group commit); on PostgreSQL they race
/// on the idempotency key's unique index.
async fn concurrent_batches_that_share_proposals_get_one_task_per_proposal(db: &Db) {
    let engine = engine(db).await;
    let all: Vec<v1::Proposal> = (0..24u32)
        .map(|i| good_swap(&engine, "ev-group", i, 1_000_000_000_000 + u64::from(i)))
        .collect();
    let batches: Vec<Vec<v1::Proposal>> = (0..12usize)
        .map(|b| {
            (0..6)
                .map(|j| all[(b * 2 + j) % all.len()].clone())
                .collect()
        })
        .collect();
    let handles: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.submit(TRACE, batch).await })
        })
        .collect();
    let mut task_of: std::collections::HashMap<String, String> = Default::default();
    let mut answers = 0;
    for h in handles {
        for r in h.await.expect("submit task").expect("submit") {
            assert_eq!(state(&r), W::Simulated, "{r:?}");
            assert_eq!(r.reason_code, "ok", "{r:?}");
            let first = task_of
                .entry(r.idempotency_key.clone())
                .or_insert_with(|| r.task_id.clone());
            assert_eq!(*first, r.task_id, "one task per proposal");
            answers += 1;
        }
    }
    assert_eq!(answers, 72);
    assert_eq!(task_of.len(), all.len());
    let stored: i64 = engine
        .store()
        .count_tasks()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(stored, all.len() as i64, "no second task for any proposal");
    assert_ledger_balances(&engine).await;
}
