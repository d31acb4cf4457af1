//! `stratbox engine` as a process: on embedded defaults (SQLite under ./.stratbox/) and on a
//! fresh PostgreSQL database; a gRPC submit gets a task back, a replay the same task, and
//! Ctrl-C (SIGINT) stops it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use stratbox_proto::v1::{self, trading_engine_client::TradingEngineClient};

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn run_engine(database: Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratbox"));
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
    let mut client = TradingEngineClient::connect(format!("http://{addr}"))
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
    let first = client
        .submit_proposals(req())
        .await
        .expect("submit")
        .into_inner()
        .results;
    assert_eq!(first[0].state, v1::TaskState::Simulated as i32, "{first:?}");
    let again = client
        .submit_proposals(req())
        .await
        .expect("replay")
        .into_inner()
        .results;
    assert_eq!(again[0].task_id, first[0].task_id);
    assert!(again[0].duplicate);

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
    stratbox_engine::store::create_postgres_database(ADMIN, &name)
        .await
        .expect("create db");
    run_engine(Some(stratbox_engine::store::with_database(ADMIN, &name))).await;
    let _ = stratbox_engine::store::drop_postgres_database(ADMIN, &name).await;
}
