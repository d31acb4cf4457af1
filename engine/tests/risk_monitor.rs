//! The risk monitor that never sleeps, on SQLite and on PostgreSQL: every block the engine
//! marks every book and applies the hard limits whether or not its strategy proposes. A
//! book that stops proposing and then loses past the daily-loss limit is halted by the
//! block that moved the price, stored and audited like a breach on a proposal, and the
//! halt survives a restart; in `staged` mode the halted book's exposure is offered back
//! by a reduce-only unwind that goes through the gates and the simulation to STAGED, once;
//! and staleness is judged by time as well as by block lag.
//!
//! No chain node here (the embedded revm chain): the live path, which would take a STAGED
//! unwind on to the signer, is not run, and the staged test books its buys' fills as the
//! live path books a receipt ([`Engine::book_live_fill`]), with the account funded on the
//! embedded chain with what those fills would have delivered.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use prost::Message;
use stratbox_engine::engine::{BlockReport, UNWIND_KEY_PREFIX};
use stratbox_engine::ledger::{Leg, fill_posting, strategy_account, venue_account};
use stratbox_engine::proposal::hex_address;
use stratbox_engine::{Engine, EngineSettings, ExecutionMode, sim_address};
use stratbox_proto::U256;
use stratbox_proto::v1::{self, TaskState as W};
use stratbox_risk::{PermissionLevel, ReasonCode};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319d";
const STRATEGY: &str = "quiet";
const ACCOUNT: &str = "acct-1";

/// Announces the chain's current block to the engine as the follower does: watermark,
/// oracle quotes, then the risk monitor's pass.
async fn announce(engine: &Engine) -> BlockReport {
    let block = engine.chain().block_number();
    engine.set_watermark(block);
    feed_oracles(engine, 0);
    engine.on_block(block).await
}

/// A new block with no trade in it.
async fn empty_block(engine: &Engine) -> BlockReport {
    engine
        .update_chain(|chain| chain.next_block())
        .expect("next block");
    announce(engine).await
}

/// (actor, action, from, to, detail) of the audit rows of `subject`.
async fn audit(engine: &Engine, subject: &str) -> Vec<(String, String, String, String, String)> {
    engine
        .store()
        .audit_for(subject)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| (a.actor, a.action, a.from_state, a.to_state, a.detail))
        .collect()
}

fn metric(engine: &Engine, line_start: &str) -> Option<String> {
    engine
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .map(str::to_owned)
}

both!(a_quiet_losing_book_is_halted_within_one_block_and_stays_halted);
async fn a_quiet_losing_book_is_halted_within_one_block_and_stays_halted(db: &Db) {
    let engine = engine(db).await;
    // The strategy proposes: five buys of 4% of capital (~19% of equity in token0).
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
    // Blocks go by with the price unchanged: marked, nothing breached.
    let report = empty_block(&engine).await;
    assert!(report.halts.is_empty(), "{report:?}");
    assert_eq!(engine.permission_level(STRATEGY), PermissionLevel::L1);

    // Then it goes quiet, and a whale's sale moves the price 33% against its token0 in
    // one block: ~7% lost today, over the 5% daily-loss limit. No proposal follows.
    crash(&engine);
    assert_eq!(
        engine.permission_level(STRATEGY),
        PermissionLevel::L1,
        "nothing judges the book until the engine learns of the block"
    );
    let report = announce(&engine).await;
    assert_eq!(report.halts.len(), 1, "{report:?}");
    assert_eq!(report.halts[0].strategy, STRATEGY);
    assert_eq!(report.halts[0].book, strategy_account(STRATEGY, ACCOUNT));
    assert_eq!(report.halts[0].code, ReasonCode::LimitDailyLoss);
    assert!(report.unwinds.is_empty(), "shadow mode only halts");
    assert_eq!(engine.permission_level(STRATEGY), PermissionLevel::L0);
    let view = engine.permission(STRATEGY);
    assert_eq!(
        view.breach.map(|b| b.code),
        Some(ReasonCode::LimitDailyLoss)
    );
    // Stored with its audit row before `on_block` returned, as a proposal's breach is.
    let rows = audit(&engine, &format!("strategy:{STRATEGY}")).await;
    assert!(
        rows.contains(&(
            "engine".into(),
            "permission_level".into(),
            "L1".into(),
            "L0".into(),
            "hard_limit_breach: limit_daily_loss".into()
        )),
        "{rows:?}"
    );
    assert_eq!(
        metric(
            &engine,
            "stratbox_engine_risk_monitor_halts_total{limit=\"limit_daily_loss\"}"
        )
        .as_deref(),
        Some("stratbox_engine_risk_monitor_halts_total{limit=\"limit_daily_loss\"} 1")
    );
    // Later blocks neither halt it again nor write anything more.
    let report = empty_block(&engine).await;
    assert!(report.halts.is_empty(), "{report:?}");
    assert_eq!(
        audit(&engine, &format!("strategy:{STRATEGY}")).await.len(),
        rows.len()
    );
    // Its next proposal is refused for the halt, and only five tasks exist: the halt
    // came from no proposal.
    let r = engine
        .submit(TRACE, vec![buy(&engine, STRATEGY, "after", e(1, 18))])
        .await
        .unwrap();
    assert_eq!(r[0].reason_code, "permission_level", "{:?}", r[0]);
    engine.store().close().await;

    // A restart on the same database (no flush on the way out: the halt was stored when it
    // was made) keeps it halted.
    let restarted = common::engine(db).await;
    assert_eq!(restarted.permission_level(STRATEGY), PermissionLevel::L0);
    assert_eq!(
        restarted.permission(STRATEGY).breach.map(|b| b.code),
        Some(ReasonCode::LimitDailyLoss)
    );
    let r = restarted
        .submit(
            TRACE,
            vec![buy(&restarted, STRATEGY, "restarted", e(1, 18))],
        )
        .await
        .unwrap();
    assert_eq!(r[0].reason_code, "permission_level", "{:?}", r[0]);
    restarted.store().close().await;
}

both!(a_staged_halt_proposes_one_reduce_only_unwind);
async fn a_staged_halt_proposes_one_reduce_only_unwind(db: &Db) {
    let engine = engine_with(
        db,
        EngineSettings {
            mode: ExecutionMode::Staged,
            ..EngineSettings::default()
        },
    )
    .await;
    // At L2 its trades go as far as STAGED in this engine.
    engine.set_permission_level(STRATEGY, PermissionLevel::L2);
    let pool = pool(&engine);
    let info = engine.chain().pool(&pool).expect("pool");
    let from = sim_address(ACCOUNT);
    // The account really holds the quote token it buys with (staged trades are simulated
    // from what the account holds, with no shadow funding).
    engine
        .update_chain(|chain| chain.fund(from.into(), info.token1.into(), e(1, 24)))
        .expect("chain")
        .expect("fund token1");

    // Two buys of 9.5% of capital (~19% of equity in token0; two, so that the second
    // fill's judging the first as lost, by its fee, does not demote it out of `staged`).
    let mut bought = U256::ZERO;
    for i in 0..2 {
        let p = buy(&engine, STRATEGY, &format!("buy-{i}"), e(95, 21));
        let r = engine.submit(TRACE, vec![p.clone()]).await.unwrap();
        assert_eq!(state(&r[0]), W::Staged, "buy {i}: {:?}", r[0]);
        // Its receipt, booked as the live path books a confirmed trade.
        let amount = |a: &Option<v1::Amount>| -> U256 {
            a.as_ref().expect("amount").value.parse().expect("amount")
        };
        let (out0, in1) = (amount(&p.expected_amount0), amount(&p.expected_amount1));
        let posting = fill_posting(
            format!("{}:fill", r[0].task_id),
            r[0].task_id.clone(),
            "live swap".into(),
            &strategy_account(STRATEGY, ACCOUNT),
            &venue_account(&pool),
            &[
                Leg {
                    asset: hex_address(&info.token0),
                    amount: out0,
                    to_strategy: true,
                },
                Leg {
                    asset: hex_address(&info.token1),
                    amount: in1,
                    to_strategy: false,
                },
            ],
        )
        .expect("posting");
        engine.book_live_fill(STRATEGY, ACCOUNT, &posting);
        bought += out0;
    }
    // What those trades delivered to the account on chain.
    engine
        .update_chain(|chain| chain.fund(from.into(), info.token0.into(), bought))
        .expect("chain")
        .expect("fund token0");
    let report = announce(&engine).await;
    assert!(report.halts.is_empty(), "{report:?}");
    assert_eq!(engine.permission_level(STRATEGY), PermissionLevel::L2);

    crash(&engine);
    let report = announce(&engine).await;
    assert_eq!(report.halts.len(), 1, "{report:?}");
    assert_eq!(report.halts[0].code, ReasonCode::LimitDailyLoss);
    assert_eq!(engine.permission_level(STRATEGY), PermissionLevel::L0);
    // One unwind, through the gates and the simulation to where a staged trade goes
    // without a live path: STAGED.
    assert_eq!(report.unwinds.len(), 1, "{report:?}");
    let u = &report.unwinds[0];
    assert_eq!(state(u), W::Staged, "{u:?}");
    let task = engine
        .store()
        .get_task(&u.task_id)
        .await
        .expect("read")
        .expect("unwind task");
    assert!(task.idempotency_key.starts_with(UNWIND_KEY_PREFIX));
    assert_eq!(task.mode, "staged");
    assert_eq!(
        (task.strategy.as_str(), task.account.as_str()),
        (STRATEGY, ACCOUNT)
    );
    // Reduce-only: it sells exactly the book's token0 for the quote token.
    let p = v1::Proposal::decode(task.proposal.as_slice()).expect("proposal");
    let Some(v1::proposal::Action::Swap(s)) = &p.action else {
        panic!("an unwind is a swap: {p:?}");
    };
    assert!(s.zero_for_one, "it sells token0");
    assert_eq!(
        s.amount_in.as_ref().map(|a| a.value.clone()),
        Some(bought.to_string())
    );
    assert!(
        p.reason.starts_with("engine unwind: limit_daily_loss"),
        "{}",
        p.reason
    );
    let sim = task.sim.expect("simulated");
    assert_eq!(
        sim.amount0, bought,
        "the simulation sold what the book holds"
    );
    // The trace says who and why: every move of the task by the risk monitor, and an
    // `unwind_proposed` row on the strategy.
    let moves = audit(&engine, &u.task_id).await;
    assert!(
        moves
            .iter()
            .filter(|m| m.1 == "task_transition")
            .all(|m| m.0 == "risk-monitor"),
        "{moves:?}"
    );
    assert!(moves.iter().any(|m| m.3 == "STAGED"), "{moves:?}");
    let rows = audit(&engine, &format!("strategy:{STRATEGY}")).await;
    assert!(
        rows.iter().any(|r| r.0 == "risk-monitor"
            && r.1 == "unwind_proposed"
            && r.4.contains(&u.task_id)
            && r.4.contains("limit_daily_loss")),
        "{rows:?}"
    );
    assert_eq!(
        metric(&engine, "stratbox_engine_unwinds_total{state=\"STAGED\"}").as_deref(),
        Some("stratbox_engine_unwinds_total{state=\"STAGED\"} 1")
    );

    // The exception is the engine's alone: the halted strategy proposing the very same
    // sale is refused.
    let sell = swap_action(pool, true, bought);
    let q = quote(&engine, ACCOUNT, &sell);
    let own = proposal(
        &engine, STRATEGY, "own-sell", 0, &sell, q.amount0, q.amount1, 50,
    );
    let r = engine.submit(TRACE, vec![own]).await.unwrap();
    assert_eq!(r[0].reason_code, "permission_level", "{:?}", r[0]);

    // Halted again while that unwind is still open (STAGED): no second unwind.
    engine.set_permission_level(STRATEGY, PermissionLevel::L2);
    let report = empty_block(&engine).await;
    assert_eq!(report.halts.len(), 1, "still in breach: {report:?}");
    assert!(
        report.unwinds.is_empty(),
        "one unwind in flight: {report:?}"
    );
    engine.store().close().await;
}

both!(no_block_for_too_long_is_stale_until_the_next_block);
async fn no_block_for_too_long_is_stale_until_the_next_block(db: &Db) {
    let max = Duration::from_millis(1_500);
    let engine = engine_with(
        db,
        EngineSettings {
            max_block_age: Some(max),
            ..EngineSettings::default()
        },
    )
    .await;
    empty_block(&engine).await;
    let r = engine
        .submit(TRACE, vec![good_swap(&engine, "fresh", 0, 1_000_000)])
        .await
        .unwrap();
    assert_eq!(state(&r[0]), W::Simulated, "{:?}", r[0]);
    // No block for longer than the limit: at lag 0, refused all the same.
    tokio::time::sleep(max + Duration::from_millis(300)).await;
    let p = good_swap(&engine, "stale", 0, 1_000_000);
    assert_eq!(p.last_sync_block, engine.watermark(), "no block lag");
    let r = engine.submit(TRACE, vec![p]).await.unwrap();
    assert_eq!(state(&r[0]), W::Rejected);
    assert_eq!(r[0].reason_code, "stale_watermark", "{:?}", r[0]);
    assert!(r[0].detail.contains("no new block"), "{:?}", r[0]);
    // The next block makes the data fresh again.
    empty_block(&engine).await;
    let r = engine
        .submit(TRACE, vec![good_swap(&engine, "recovered", 0, 1_000_000)])
        .await
        .unwrap();
    assert_eq!(state(&r[0]), W::Simulated, "{:?}", r[0]);
    engine.store().close().await;
}
