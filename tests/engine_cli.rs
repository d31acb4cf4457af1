//! `stratbox engine` as a process: on embedded defaults (SQLite under ./.stratbox/) and on a
//! fresh PostgreSQL database. It answers `stratbox health`; a submit needs a host's key; a
//! keyed submit for a registered strategy gets a task back and a replay the same task;
//! junk (an unregistered strategy, a 3 MB reason, a mistyped checksummed address) is
//! refused with its reason and leaves no task behind; Ctrl-C (SIGINT) stops it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use stratbox_proto::v1::{self, trading_engine_client::TradingEngineClient};

use crate::support;
use support::{add_key, component, stratbox, upload};

fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii"),
    );
    r
}

async fn run_engine(database: Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = stratbox();
    cmd.current_dir(dir.path())
        .args(["engine", "--listen", "127.0.0.1:0", "--oracle-from-pool"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(db) = &database {
        cmd.args(["--database", db]);
    }
    let mut child = cmd.spawn().expect("spawn stratbox engine");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a line").expect("utf-8");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    if database.is_none() {
        assert!(
            dir.path().join(".stratbox/engine.db").exists(),
            "embedded default is SQLite under ./.stratbox/"
        );
    } else {
        assert!(line.contains("(postgres)"), "{line}");
    }
    let url = format!("http://{addr}");
    let health = stratbox()
        .args(["health", "--engine", &url])
        .output()
        .expect("stratbox health");
    assert!(
        health.status.success(),
        "health: {}",
        String::from_utf8_lossy(&health.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "SERVING");
    let db = database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/.stratbox/engine.db", dir.path().display()));
    let ops = add_key("operator", "ops", &db);
    let host = add_key("host-key", "host-1", &db);
    upload(&url, &ops, "cli", &component(dir.path(), "tally"));
    let mut client = TradingEngineClient::connect(url.clone())
        .await
        .expect("connect");
    let markets = client
        .list_markets(v1::ListMarketsRequest { trace: None })
        .await
        .expect("markets")
        .into_inner();
    let pool = markets.markets[0].pool.clone();
    let status = client
        .get_status(v1::GetStatusRequest { trace: None })
        .await
        .expect("status")
        .into_inner();
    let proposal = v1::Proposal {
        strategy: "cli".into(),
        strategy_version: "1".into(),
        account: "acct".into(),
        event_id: "e-1".into(),
        last_sync_block: status.last_sync_block,
        action: Some(v1::proposal::Action::Swap(v1::SwapAction {
            pool,
            zero_for_one: true,
            amount_in: Some(v1::Amount {
                value: "1000000".into(),
            }),
            sqrt_price_limit_x96: None,
        })),
        expected_amount0: Some(v1::Amount {
            value: "1000000".into(),
        }),
        expected_amount1: Some(v1::Amount { value: "0".into() }),
        max_slippage_bps: 50,
        ..Default::default()
    };
    let req = || v1::SubmitProposalsRequest {
        trace: None,
        proposals: vec![proposal.clone()],
    };
    let e = client
        .submit_proposals(req())
        .await
        .expect_err("a submit without a host key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = client
        .submit_proposals(keyed(req(), &ops))
        .await
        .expect_err("a submit with an operator's key");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let first = client
        .submit_proposals(keyed(req(), &host))
        .await
        .expect("submit")
        .into_inner()
        .results;
    assert_eq!(first[0].state, v1::TaskState::Simulated as i32, "{first:?}");
    let again = client
        .submit_proposals(keyed(req(), &host))
        .await
        .expect("replay")
        .into_inner()
        .results;
    assert_eq!(again[0].task_id, first[0].task_id);
    assert!(again[0].duplicate);

    // Junk: answered with its reason, never stored, however often it is replayed.
    let mut ghost = proposal.clone();
    ghost.strategy = "ghost".into();
    let mut long = proposal.clone();
    long.event_id = "e-long".into();
    long.reason = "x".repeat(3 << 20);
    let mut checksum = proposal.clone();
    checksum.event_id = "e-checksum".into();
    if let Some(v1::proposal::Action::Swap(s)) = &mut checksum.action {
        // The EIP-55 example address with one letter's case flipped.
        s.pool = Some(v1::Address {
            value: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD".into(),
        });
    }
    let mut unknown_pool = proposal.clone();
    unknown_pool.event_id = "e-pool".into();
    if let Some(v1::proposal::Action::Swap(s)) = &mut unknown_pool.action {
        s.pool = Some(v1::Address {
            value: format!("0x{}", "ab".repeat(20)),
        });
    }
    let junk = vec![ghost, long, checksum];
    for _ in 0..3 {
        let answers = client
            .submit_proposals(keyed(
                v1::SubmitProposalsRequest {
                    trace: None,
                    proposals: junk.clone(),
                },
                &host,
            ))
            .await
            .expect("junk is answered, not an RPC error")
            .into_inner()
            .results;
        let codes: Vec<&str> = answers.iter().map(|r| r.reason_code.as_str()).collect();
        assert_eq!(
            codes,
            ["unknown_strategy", "bad_input", "bad_input"],
            "{answers:?}"
        );
        assert!(answers.iter().all(|r| r.task_id.is_empty()), "{answers:?}");
        assert!(
            answers[2].detail.contains("checksum"),
            "{}",
            answers[2].detail
        );
    }
    let pool_answer = client
        .submit_proposals(keyed(
            v1::SubmitProposalsRequest {
                trace: None,
                proposals: vec![unknown_pool],
            },
            &host,
        ))
        .await
        .expect("submit")
        .into_inner()
        .results;
    assert_eq!(
        pool_answer[0].reason_code, "unknown_pool",
        "{pool_answer:?}"
    );
    let tasks = client
        .list_tasks(v1::ListTasksRequest::default())
        .await
        .expect("list")
        .into_inner()
        .tasks;
    assert_eq!(
        tasks.len(),
        2,
        "one task for the good proposal and one for the unknown pool, none for junk: {tasks:?}"
    );

    let stopped = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_on_embedded_defaults() {
    run_engine(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_on_postgres() {
    let name = format!("stratbox_test_cli_{}", std::process::id());
    stratbox_engine::store::create_postgres_database(&support::postgres_admin(), &name)
        .await
        .expect("create db");
    run_engine(Some(stratbox_engine::store::with_database(
        &support::postgres_admin(),
        &name,
    )))
    .await;
    let _ = stratbox_engine::store::drop_postgres_database(&support::postgres_admin(), &name).await;
}
