//! Risk limits changed while the engine runs: a tightening applies at once (a proposal
//! that passed is now refused by the limit), a loosening waits for the timelock (refused
//! proposals stay refused while it is pending) and then applies without a restart; pending
//! changes survive a restart and can be cancelled; a restart with a looser risk file queues
//! the loosening instead of applying it; only an authenticated operator may change
//! anything. Over gRPC, on SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use stratbox_engine::engine::Cancelled;
use stratbox_engine::{Engine, EngineSettings, RiskConfig, Role, server};
use stratbox_proto::v1::{self, trading_engine_client::TradingEngineClient};
use tokio::sync::oneshot;
use tonic::transport::Channel;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OPS_KEY: &str = "ops-key-0123456789";
const EVE_KEY: &str = "eve-key-0123456789";
const HOST_KEY: &str = "host-key-0123456789";

fn trace() -> Option<v1::TraceContext> {
    Some(v1::TraceContext {
        trace_id: TRACE.into(),
        span_id: String::new(),
    })
}

/// An engine served over gRPC with operator keys for `ops` and `eve` and a host key.
struct Served {
    engine: Engine,
    client: TradingEngineClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

impl Served {
    async fn start(db: &Db, settings: EngineSettings) -> Served {
        let engine = engine_with(db, settings).await;
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let keys = Arc::new(TestKeys(vec![
            (OPS_KEY, "ops", Role::Operator),
            (EVE_KEY, "eve", Role::Operator),
            (HOST_KEY, "host-1", Role::Host),
        ]));
        let serving = tokio::spawn(server::serve_grpc_with_access(
            engine.clone(),
            tonic::service::Routes::default(),
            Some(keys),
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        let client = TradingEngineClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        Served {
            engine,
            client,
            stop: Some(stop),
            serving,
        }
    }

    /// Stops serving and closes the engine's database, as a process exit would.
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        drop(self.client);
        let _ = self.serving.await;
        self.engine.store().close().await;
    }

    async fn submit(&mut self, p: v1::Proposal) -> v1::ProposalResult {
        let mut r = self
            .client
            .submit_proposals(with_key(
                v1::SubmitProposalsRequest {
                    trace: trace(),
                    proposals: vec![p],
                },
                HOST_KEY,
            ))
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    async fn limits(&mut self) -> v1::RiskLimits {
        self.client
            .get_risk_limits(v1::GetRiskLimitsRequest { trace: trace() })
            .await
            .unwrap()
            .into_inner()
    }

    async fn propose(
        &mut self,
        cfg: &RiskConfig,
        key: &str,
    ) -> Result<v1::ProposeRiskLimitsResponse, tonic::Status> {
        self.client
            .propose_risk_limits(with_key(propose_req(cfg), key))
            .await
            .map(tonic::Response::into_inner)
    }
}

fn propose_req(cfg: &RiskConfig) -> v1::ProposeRiskLimitsRequest {
    v1::ProposeRiskLimitsRequest {
        trace: trace(),
        limits_json: serde_json::to_string(cfg).unwrap(),
        reason: "drill".into(),
        operator: String::new(),
    }
}

fn settings(timelock: Duration, risk: RiskConfig) -> EngineSettings {
    EngineSettings {
        risk_timelock: timelock,
        risk,
        ..EngineSettings::default()
    }
}

/// Limits with the slippage cap at `bps` (the test proposals accept 50 bps).
fn slippage(bps: u32) -> RiskConfig {
    let mut c = RiskConfig::default();
    c.limits.max_slippage_bps = bps;
    c
}

fn effective(l: &v1::RiskLimits) -> RiskConfig {
    serde_json::from_str(&l.limits_json).expect("limits_json")
}

fn assert_passed(r: &v1::ProposalResult) {
    assert_eq!(state(r), v1::TaskState::Simulated, "{r:?}");
}

fn assert_slippage_refused(r: &v1::ProposalResult) {
    assert_eq!(state(r), v1::TaskState::Rejected, "{r:?}");
    assert_eq!(r.reason_code, "limit_slippage", "{r:?}");
}

/// (actor, action) of every risk-limit audit row, in order.
async fn audit(engine: &Engine) -> Vec<(String, String, String)> {
    engine
        .store()
        .audit_for("risk_limits")
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.actor, a.action, a.detail))
        .collect()
}

fn actions(a: &[(String, String, String)]) -> Vec<(&str, &str)> {
    a.iter()
        .map(|(actor, action, _)| (actor.as_str(), action.as_str()))
        .collect()
}

/// Tighten: in effect before the call returns. Loosen: pending, refusals stand while it
/// is, and it applies on its own when due (no restart).
async fn tighten_at_once_loosen_after_timelock(db: &Db) {
    let mut s = Served::start(db, settings(Duration::from_secs(2), RiskConfig::default())).await;
    let swap = |s: &Served, event: &str| good_swap(&s.engine, event, 0, 1_000_000_000_000);
    let p = swap(&s, "before");
    assert_passed(&s.submit(p).await);

    // Tighten the slippage cap under the proposals' 50 bps.
    let done = s.propose(&slippage(40), OPS_KEY).await.unwrap();
    assert!(done.pending.is_none(), "nothing loosened: {done:?}");
    let applied = done.applied.expect("a tightening applies at once");
    assert_eq!(applied.state, "APPLIED");
    assert_eq!(applied.operator, "ops");
    assert_eq!(applied.fields.len(), 1);
    assert_eq!(applied.fields[0].field, "limits.max_slippage_bps");
    assert_eq!(
        (
            applied.fields[0].old_value.as_str(),
            applied.fields[0].new_value.as_str()
        ),
        ("100", "40")
    );
    assert!(!applied.fields[0].loosens);
    let p = swap(&s, "tightened");
    assert_slippage_refused(&s.submit(p).await);

    // Loosen it back, and tighten the gas cap in the same change: the gas part applies at
    // once, the slippage part waits.
    let mut next = slippage(100);
    next.gas.max_gas_price_gwei = 400;
    let done = s.propose(&next, EVE_KEY).await.unwrap();
    let applied = done.applied.expect("the gas cap tightens at once");
    assert_eq!(applied.fields.len(), 1);
    assert_eq!(applied.fields[0].field, "gas.max_gas_price_gwei");
    let pending = done.pending.expect("the slippage cap loosens later");
    assert_eq!(pending.state, "PENDING");
    assert_eq!(pending.operator, "eve");
    assert_eq!(pending.fields.len(), 1);
    assert!(pending.fields[0].loosens);
    assert!(pending.effective_at_ms > pending.proposed_at_ms);
    let limits = done.limits.expect("limits");
    assert_eq!(effective(&limits).limits.max_slippage_bps, 40);
    assert_eq!(effective(&limits).gas.max_gas_price_gwei, 400);
    assert_eq!(limits.timelock_ms, 2_000);
    let p = swap(&s, "pending");
    let r = s.submit(p).await;
    // Pending before the submit and, read after it, still pending: the submit was judged
    // by the tight cap.
    let still = s.limits().await;
    if still.pending.iter().any(|c| c.id == pending.id) {
        assert_slippage_refused(&r);
    }

    // Due: applied by the engine's timer, no restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    let limits = loop {
        let l = s.limits().await;
        if l.pending.is_empty() {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "the pending change never applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(effective(&limits).limits.max_slippage_bps, 100);
    assert_eq!(effective(&limits).gas.max_gas_price_gwei, 400);
    // The gates judge by it at once (the timer installs what it stores).
    let p = swap(&s, "loosened");
    assert_passed(&s.submit(p).await);

    let a = audit(&s.engine).await;
    assert_eq!(
        actions(&a),
        [
            ("engine", "risk_limits_initial"),
            ("ops", "risk_limits_tightened"),
            ("eve", "risk_limits_tightened"),
            ("eve", "risk_limits_queued"),
            ("engine", "risk_limits_applied"),
        ]
    );
    assert!(
        a[1].2.contains("limits.max_slippage_bps 100 -> 40"),
        "{a:?}"
    );
    assert!(
        a[3].2.contains("limits.max_slippage_bps 40 -> 100"),
        "{a:?}"
    );
    assert!(a[3].2.contains("effective at "), "{a:?}");
    assert!(
        a[4].2.contains("limits.max_slippage_bps 40 -> 100"),
        "{a:?}"
    );
    s.stop().await;
}

/// A pending loosening survives a restart (still pending, still refusing) and is
/// cancelled; a restart with a risk file looser than the stored limits queues the
/// loosening and applies only what it tightens.
async fn restart_cancel_and_risk_file(db: &Db) {
    let hour = Duration::from_secs(3_600);
    let mut s = Served::start(db, settings(hour, RiskConfig::default())).await;
    s.propose(&slippage(40), OPS_KEY).await.unwrap();
    let pending = s
        .propose(&slippage(100), OPS_KEY)
        .await
        .unwrap()
        .pending
        .expect("pending");
    s.stop().await;

    // Restarted with the default file (slippage 100): the same loosening is pending
    // already, so nothing new is queued; the stored cap (40) is what judges.
    let mut s = Served::start(db, settings(hour, RiskConfig::default())).await;
    let l = s.limits().await;
    assert_eq!(
        effective(&l).limits.max_slippage_bps,
        40,
        "not the file's 100"
    );
    assert_eq!(l.pending.len(), 1, "{l:?}");
    assert_eq!(l.pending[0].id, pending.id);
    assert_eq!(l.pending[0].effective_at_ms, pending.effective_at_ms);
    let p = good_swap(&s.engine, "after-restart", 0, 1_000_000_000_000);
    assert_slippage_refused(&s.submit(p).await);

    // Cancel: not by a host, not an unknown id; then by an operator.
    let cancel = |id: u64| v1::CancelRiskChangeRequest {
        trace: trace(),
        id,
        reason: "changed my mind".into(),
        operator: String::new(),
    };
    let e = s
        .client
        .cancel_risk_change(with_key(cancel(pending.id), HOST_KEY))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = s
        .client
        .cancel_risk_change(with_key(cancel(9_999), OPS_KEY))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let c = s
        .client
        .cancel_risk_change(with_key(cancel(pending.id), EVE_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.state, "CANCELLED");
    assert_eq!(c.decided_by, "eve");
    let e = s
        .client
        .cancel_risk_change(with_key(cancel(pending.id), OPS_KEY))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(s.limits().await.pending.is_empty());
    let p = good_swap(&s.engine, "after-cancel", 0, 1_000_000_000_000);
    assert_slippage_refused(&s.submit(p).await);
    s.stop().await;

    // Restarted with a file that loosens the slippage cap (100, the default, over the
    // stored 40) and tightens the gas cap: gas applies, slippage is queued.
    let mut file = RiskConfig::default();
    file.gas.max_gas_price_gwei = 300;
    let mut s = Served::start(db, settings(hour, file.clone())).await;
    let l = s.limits().await;
    assert_eq!(effective(&l).limits.max_slippage_bps, 40);
    assert_eq!(effective(&l).gas.max_gas_price_gwei, 300);
    assert_eq!(l.pending.len(), 1, "{l:?}");
    assert_eq!(l.pending[0].source, "risk-file");
    assert_eq!(l.pending[0].operator, "engine");
    assert_eq!(l.pending[0].fields[0].field, "limits.max_slippage_bps");
    let queued = l.pending[0].id;
    let p = good_swap(&s.engine, "looser-file", 0, 1_000_000_000_000);
    assert_slippage_refused(&s.submit(p).await);
    s.stop().await;

    // The same file again: queued once, not twice.
    let mut s = Served::start(db, settings(hour, file)).await;
    let l = s.limits().await;
    assert_eq!(l.pending.len(), 1, "{l:?}");
    assert_eq!(l.pending[0].id, queued);

    // Cancelled in process too (the engine's own call).
    match s
        .engine
        .cancel_risk_change(TRACE, "ops", i64::try_from(queued).unwrap(), "keep 40")
        .await
        .unwrap()
    {
        Cancelled::Done(c) => assert_eq!(c.state, "CANCELLED"),
        other => panic!("{other:?}"),
    }
    let a = audit(&s.engine).await;
    assert_eq!(
        actions(&a),
        [
            ("engine", "risk_limits_initial"),
            ("ops", "risk_limits_tightened"),
            ("ops", "risk_limits_queued"),
            ("eve", "risk_limits_cancelled"),
            ("engine", "risk_limits_tightened"),
            ("engine", "risk_limits_queued"),
            ("ops", "risk_limits_cancelled"),
        ]
    );
    assert!(a[3].2.contains("cancelled by eve"), "{a:?}");
    assert!(
        a[4].2.contains("gas.max_gas_price_gwei 500 -> 300"),
        "{a:?}"
    );
    assert!(
        a[5].2.contains("limits.max_slippage_bps 40 -> 100"),
        "{a:?}"
    );
    s.stop().await;
}

/// Only an operator's key changes limits; bad limits are refused with the reason; nothing
/// refused leaves a trace.
async fn only_operators_and_valid_limits(db: &Db) {
    let mut s = Served::start(
        db,
        settings(Duration::from_secs(3_600), RiskConfig::default()),
    )
    .await;
    let before = s.limits().await;
    let tight = slippage(40);
    let e = s
        .client
        .propose_risk_limits(propose_req(&tight))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "no key: {e:?}");
    let e = s.propose(&tight, "not-a-key").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "unknown key: {e:?}");
    let e = s.propose(&tight, HOST_KEY).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "host key: {e:?}");
    let mut named = propose_req(&tight);
    named.operator = "ops".into();
    let e = s
        .client
        .propose_risk_limits(with_key(named, EVE_KEY))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        tonic::Code::PermissionDenied,
        "someone else's name: {e:?}"
    );

    // Bad limits: an unknown field, a float amount, an invalid value, no change at all.
    let raw = |json: &str| v1::ProposeRiskLimitsRequest {
        trace: trace(),
        limits_json: json.into(),
        reason: String::new(),
        operator: String::new(),
    };
    for (json, says) in [
        (r#"{"limits": {"max_slipage_bps": 10}}"#, "max_slipage_bps"),
        (
            r#"{"permission": {"levels": {"l3": {"max_notional": 1.5e18}}}}"#,
            "floating point",
        ),
        (
            r#"{"limits": {"max_slippage_bps": 10.5}}"#,
            "floating point",
        ),
        (
            r#"{"limits": {"max_slippage_bps": 20000}}"#,
            "more than 100%",
        ),
    ] {
        let e = s
            .client
            .propose_risk_limits(with_key(raw(json), OPS_KEY))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{json}: {e:?}");
        assert!(e.message().contains(says), "{json}: {}", e.message());
    }
    let e = s
        .propose(&RiskConfig::default(), OPS_KEY)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("nothing to change"), "{}", e.message());

    let after = s.limits().await;
    assert_eq!(after.version, before.version, "nothing refused was stored");
    assert_eq!(after.limits_json, before.limits_json);
    assert_eq!(
        actions(&audit(&s.engine).await),
        [("engine", "risk_limits_initial")]
    );
    s.stop().await;

    // Served without operator keys (in process): refused whatever the request says.
    let engine = engine_with(
        db,
        settings(Duration::from_secs(3_600), RiskConfig::default()),
    )
    .await;
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
        .propose_risk_limits(with_key(propose_req(&tight), OPS_KEY))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let _ = stop.send(());
    drop(client);
    let _ = serving.await;
    engine.store().close().await;
}

both!(tighten_at_once_loosen_after_timelock);
both!(restart_cancel_and_risk_file);
both!(only_operators_and_valid_limits);
