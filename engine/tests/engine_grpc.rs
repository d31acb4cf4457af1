//! The engine over gRPC: server reflection lists the service (what grpcurl relies on; grpcurl
//! itself is not installed on this machine, so tonic-reflection's own client stands in), a
//! submit returns tasks, a replay returns the same ones, and reads work. Operator actions
//! (kill switch, restore) need an operator key and record the key's operator; an engine
//! served without operator keys refuses them. SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use common::*;
use stratbox_engine::{Role, server};
use stratbox_proto::U256;
use stratbox_proto::v1::{self, trading_engine_client::TradingEngineClient};
use stratbox_risk::PermissionLevel;
use tokio::sync::oneshot;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const OPS_KEY: &str = "ops-key-0123456789";
const EVE_KEY: &str = "eve-key-0123456789";
const HOST_KEY: &str = "host-key-0123456789";

fn trace() -> Option<v1::TraceContext> {
    Some(v1::TraceContext {
        trace_id: TRACE.into(),
        span_id: String::new(),
    })
}

async fn over_grpc(db: &Db) {
    let engine = engine(db).await;
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let operators = Arc::new(TestKeys(vec![
        (OPS_KEY, "ops", Role::Operator),
        (EVE_KEY, "eve", Role::Operator),
        (HOST_KEY, "host-1", Role::Host),
    ]));
    let serving = tokio::spawn(server::serve_grpc_with_access(
        engine.clone(),
        tonic::service::Routes::default(),
        Some(operators),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}");

    // Reflection: list services, then fetch the file that defines the engine's service.
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut refl = ServerReflectionClient::new(channel);
    let reqs = tokio_stream::iter(vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "stratbox.v1.TradingEngine".into(),
            )),
        },
    ]);
    let mut stream = refl
        .server_reflection_info(reqs)
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("expected a service list, got {first:?}");
    };
    let names: Vec<String> = list.service.iter().map(|s| s.name.clone()).collect();
    assert!(
        names.contains(&"stratbox.v1.TradingEngine".to_owned()),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("grpc.reflection.")),
        "{names:?}"
    );
    let second = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("expected descriptors, got {second:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // Submit, replay, read back.
    let mut client = TradingEngineClient::connect(url).await.unwrap();
    let mut garbage = good_swap(&engine, "g-1", 1, 1);
    garbage.expected_amount0 = Some(v1::Amount {
        value: "1e18".into(),
    });
    let batch = vec![good_swap(&engine, "g-1", 0, 5_000_000), garbage];
    // Submitting is a host's call: no key, or an operator's, is refused.
    let unauthenticated = client
        .submit_proposals(v1::SubmitProposalsRequest {
            trace: trace(),
            proposals: batch.clone(),
        })
        .await
        .expect_err("a submit without a key");
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    let operator = client
        .submit_proposals(with_key(
            v1::SubmitProposalsRequest {
                trace: trace(),
                proposals: batch.clone(),
            },
            OPS_KEY,
        ))
        .await
        .expect_err("a submit with an operator's key");
    assert_eq!(operator.code(), tonic::Code::PermissionDenied);
    let resp = client
        .submit_proposals(with_key(
            v1::SubmitProposalsRequest {
                trace: trace(),
                proposals: batch.clone(),
            },
            HOST_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.results.len(), 2);
    assert_eq!(state(&resp.results[0]), v1::TaskState::Simulated);
    assert_eq!(
        resp.results[1].reason_code, "bad_input",
        "user input is a result, not an RPC error"
    );
    assert!(
        resp.results[1].task_id.is_empty(),
        "malformed input leaves no task behind"
    );
    let replay = client
        .submit_proposals(with_key(
            v1::SubmitProposalsRequest {
                trace: None,
                proposals: batch,
            },
            HOST_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.results[0].task_id, resp.results[0].task_id);
    assert!(replay.results[0].duplicate);
    assert_eq!(
        replay.results[1], resp.results[1],
        "junk is answered alike every time"
    );
    let task = client
        .get_task(v1::GetTaskRequest {
            trace: trace(),
            task_id: resp.results[0].task_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(task.trace_id, TRACE);
    let missing = client
        .get_task(v1::GetTaskRequest {
            trace: trace(),
            task_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let listed = client
        .list_tasks(v1::ListTasksRequest {
            trace: trace(),
            strategy: "momentum".into(),
            state: v1::TaskState::Simulated as i32,
            limit: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tasks.len(), 1);
    let ledger = client
        .get_ledger(v1::GetLedgerRequest {
            trace: trace(),
            account: String::new(),
            task_id: resp.results[0].task_id.clone(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ledger.entries.len(), 4);
    let positions = client
        .get_positions(v1::GetPositionsRequest {
            trace: trace(),
            account: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        positions.positions.len(),
        4,
        "strategy and venue, two tokens each"
    );
    let markets = client
        .list_markets(v1::ListMarketsRequest { trace: trace() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(markets.markets.len(), 1);
    let kill = |operator: &str| v1::SetKillSwitchRequest {
        trace: trace(),
        reason: "drill".into(),
        operator: operator.into(),
        cancel_pending: false,
    };
    // Operator actions: no key, an unknown key, someone else's name: refused, nothing
    // changed.
    let e = client.set_kill_switch(kill("ops")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .set_kill_switch(with_key(kill("ops"), "not-a-key"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .set_kill_switch(with_key(kill("ops"), EVE_KEY))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(!engine.kill_switch().engaged);
    let bad_kill = client
        .set_kill_switch(with_key(
            v1::SetKillSwitchRequest {
                trace: trace(),
                reason: String::new(),
                operator: String::new(),
                cancel_pending: false,
            },
            OPS_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_kill.code(), tonic::Code::InvalidArgument);
    let k = client
        .set_kill_switch(with_key(kill("ops"), OPS_KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(k.engaged);
    assert_eq!(k.operator, "ops");
    let status = client
        .get_status(v1::GetStatusRequest { trace: trace() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.mode, "shadow");
    assert_eq!(status.chain_id, 31337);
    assert!(
        status
            .kill_switch
            .is_some_and(|k| k.engaged && k.operator == "ops")
    );
    let clear = || v1::ClearKillSwitchRequest {
        trace: trace(),
        operator: String::new(),
    };
    let e = client.clear_kill_switch(clear()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .clear_kill_switch(with_key(clear(), "not-a-key"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(engine.kill_switch().engaged, "still engaged");
    // The empty name field is fine: the key says who it is.
    let k = client
        .clear_kill_switch(with_key(clear(), EVE_KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(!k.engaged);
    assert_eq!(k.operator, "eve");
    let audit = engine.store().audit_for("kill_switch").await.unwrap();
    let actors: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str()))
        .collect();
    assert_eq!(
        actors,
        vec![("ops", "kill_switch_set"), ("eve", "kill_switch_cleared")]
    );
    assert!(audit.iter().all(|a| a.trace_id == TRACE));

    // Permissions: a read needs no key; a restore needs one and is audited under it.
    let p = client
        .get_permission(v1::GetPermissionRequest {
            trace: trace(),
            strategy: "momentum".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p.strategy.as_str(), p.level.as_str()), ("momentum", "L1"));
    let restore = |level: &str| v1::RestoreStrategyRequest {
        trace: trace(),
        strategy: "momentum".into(),
        level: level.into(),
    };
    let e = client.restore_strategy(restore("L1")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .restore_strategy(with_key(restore("L1"), "not-a-key"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .restore_strategy(with_key(restore("L1"), OPS_KEY))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        tonic::Code::FailedPrecondition,
        "not halted: {e:?}"
    );
    engine.set_permission_level("momentum", PermissionLevel::L0);
    for bad in ["L0", "L2", "L9", ""] {
        let e = client
            .restore_strategy(with_key(restore(bad), OPS_KEY))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e:?}");
    }
    assert_eq!(engine.permission_level("momentum"), PermissionLevel::L0);
    let p = client
        .restore_strategy(with_key(restore("l1"), OPS_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p.level.as_str(), p.restored_by.as_str()), ("L1", "ops"));
    assert!(p.restored_at_ms > 0);
    assert_eq!(engine.permission_level("momentum"), PermissionLevel::L1);
    let audit = engine.store().audit_for("strategy:momentum").await.unwrap();
    let last = audit.last().expect("a restore audit row");
    assert_eq!(
        (
            last.actor.as_str(),
            last.action.as_str(),
            last.from_state.as_str(),
            last.to_state.as_str(),
            last.detail.as_str(),
            last.trace_id.as_str()
        ),
        (
            "ops",
            "permission_level",
            "L0",
            "L1",
            "human_restore",
            TRACE
        )
    );
    assert_ledger_balances(&engine).await;

    execution_quality(&engine, &mut client).await;

    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    engine.store().close().await;
}

/// A strategy's execution quality: its tasks by state and refusals by reason from the
/// engine's own tasks; the slippage and markouts a host reports, per task, under the task's
/// own strategy, a later figure keeping the other.
async fn execution_quality(
    engine: &stratbox_engine::Engine,
    client: &mut TradingEngineClient<tonic::transport::Channel>,
) {
    let strategy = "quality";
    let mut good = good_swap(engine, "q-1", 0, 3_000_000);
    good.strategy = strategy.into();
    let mut greedy = good_swap(engine, "q-2", 0, 3_000_000);
    greedy.strategy = strategy.into();
    let want: U256 = greedy
        .expected_amount1
        .as_ref()
        .unwrap()
        .value
        .parse()
        .unwrap();
    greedy.expected_amount1 = amount(want * U256::from(2u8));
    let results = client
        .submit_proposals(with_key(
            v1::SubmitProposalsRequest {
                trace: trace(),
                proposals: vec![good, greedy],
            },
            HOST_KEY,
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(state(&results[0]), v1::TaskState::Simulated, "{results:?}");
    // The answer carries what a host tells the strategy: simulated amounts, gas and block.
    assert!(results[0].sim_amount0.is_some() && results[0].sim_amount1.is_some());
    assert!(results[0].sim_gas_used > 0);
    assert_eq!(results[0].decided_block, engine.watermark());
    assert_eq!(state(&results[1]), v1::TaskState::Rejected, "{results:?}");
    let refused_for = results[1].reason_code.clone();
    assert!(!refused_for.is_empty());
    let filled = results[0].task_id.clone();

    let report = |fills: Vec<v1::FillMeasure>| v1::ReportExecutionRequest {
        trace: trace(),
        fills,
    };
    let slipped = v1::FillMeasure {
        task_id: filled.clone(),
        slippage_bps: 7,
        has_slippage: true,
        ..Default::default()
    };
    let err = client
        .report_execution(report(vec![slipped.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "a host's call");
    let unknown = v1::FillMeasure {
        task_id: "no-such-task".into(),
        ..slipped.clone()
    };
    let recorded = client
        .report_execution(with_key(report(vec![slipped, unknown]), HOST_KEY))
        .await
        .unwrap()
        .into_inner()
        .recorded;
    assert_eq!(recorded, 1, "a task the engine does not hold is skipped");
    let marked = v1::FillMeasure {
        task_id: filled.clone(),
        markout_bps: -30,
        markout_blocks: 5,
        ..Default::default()
    };
    client
        .report_execution(with_key(report(vec![marked]), HOST_KEY))
        .await
        .unwrap();

    let q = client
        .get_execution_quality(v1::GetExecutionQualityRequest {
            trace: trace(),
            strategy: strategy.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut states: Vec<(i32, u64)> = q.states.iter().map(|s| (s.state, s.count)).collect();
    states.sort();
    let mut want_states = vec![
        (v1::TaskState::Simulated as i32, 1),
        (v1::TaskState::Rejected as i32, 1),
    ];
    want_states.sort();
    assert_eq!(states, want_states);
    assert_eq!(q.refusals.len(), 1);
    assert_eq!(
        (q.refusals[0].reason_code.as_str(), q.refusals[0].count),
        (refused_for.as_str(), 1)
    );
    let slippage = q.slippage.unwrap();
    assert_eq!(
        (slippage.count, slippage.p50),
        (1, 7),
        "kept when the markout came"
    );
    let markout = q.markout.unwrap();
    assert_eq!((markout.count, markout.p50, markout.min), (1, -30, -30));
    // Another strategy's figures are its own.
    let other = client
        .get_execution_quality(v1::GetExecutionQualityRequest {
            trace: trace(),
            strategy: "nobody".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.states.is_empty() && other.slippage.unwrap().count == 0);
    // A shadow task has no receipt.
    let task = client
        .get_task(v1::GetTaskRequest {
            trace: trace(),
            task_id: filled,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((task.receipt_block, task.gas_used), (0, 0));
    assert!(task.actual_amount0.is_none());
}

/// Served without operator keys (`serve_grpc`, as `stratbox up` and the benches do), the
/// engine refuses every operator action, whatever the request says; reads still work.
async fn no_operator_keys(db: &Db) {
    let engine = engine(db).await;
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve_grpc(engine.clone(), listener, async {
        let _ = stopped.await;
    }));
    let mut client = TradingEngineClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let e = client
        .set_kill_switch(with_key(
            v1::SetKillSwitchRequest {
                trace: trace(),
                reason: "drill".into(),
                operator: "ops".into(),
                cancel_pending: false,
            },
            OPS_KEY,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("operator keys"), "{}", e.message());
    assert!(!engine.kill_switch().engaged);
    engine
        .set_kill_switch(TRACE, "in-process", "ops")
        .await
        .unwrap();
    let e = client
        .clear_kill_switch(v1::ClearKillSwitchRequest {
            trace: trace(),
            operator: "ops".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(
        engine.kill_switch().engaged,
        "a Zone A caller cannot clear it"
    );
    engine.set_permission_level("momentum", PermissionLevel::L0);
    let e = client
        .restore_strategy(v1::RestoreStrategyRequest {
            trace: trace(),
            strategy: "momentum".into(),
            level: "L1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let p = client
        .get_permission(v1::GetPermissionRequest {
            trace: trace(),
            strategy: "momentum".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.level, "L0");
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    engine.store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_operator_keys_sqlite() {
    let db = sqlite().await;
    no_operator_keys(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_operator_keys_postgres() {
    let db = postgres().await;
    no_operator_keys(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sqlite() {
    let db = sqlite().await;
    over_grpc(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_postgres() {
    let db = postgres().await;
    over_grpc(&db).await;
    db.cleanup().await;
}
