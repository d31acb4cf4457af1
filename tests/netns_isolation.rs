//! The zone rules hold at the network layer, not only on paper, for the processes
//! deploy/compose.yaml starts: Zone A can open the engine's port and cannot open the
//! signer's, because the only path between them runs through Zone B and Zone B does not
//! forward.
//!
//! Each zone is a separate Linux network namespace (`ip netns`), and each service in it a
//! separate process started with `ip netns exec`:
//!
//! ```text
//!   zone-a                    zone-b                          zone-c
//!   192.0.2.1/30 ──veth── 192.0.2.2/30  198.51.100.1/30 ──veth── 198.51.100.2/30
//!   stratbox host             stratbox engine :50051          stratbox signer :50061
//!                             redis-server :6379              signer-share-0 127.0.0.10:50070
//!                             postgres :5432 (forwarded)      signer-share-1 127.0.0.11:50070
//!                             net.ipv4.ip_forward = 0         signer-share-2 127.0.0.12:50070
//! ```
//!
//! The `stratbox` processes run the command lines compose.yaml writes for the `engine`,
//! `host`, `signer`, `signer-share-0/1/2` and `signer-keygen` services, read from the file
//! with the environment it gives them, and compose's own health checks decide when the
//! engine and the host are up. The signer signs with the 2-of-3 threshold key: the three
//! share processes start first (their Paillier primes seeded from the test cache, so the
//! ceremony does not spend minutes searching for primes), compose's one-shot
//! `stratbox signer keygen` runs once from zone-c, and then the signer starts with a
//! `[threshold]` config. Compose's service names (`engine`, `redis`, `postgres`, `signer`,
//! `signer-share-I`) resolve through a per-namespace `/etc/hosts` (`/etc/netns/NAME/hosts`,
//! which `ip netns exec` mounts) to the addresses below, as Docker's DNS would on the zone
//! networks. What differs from the file, and why:
//! - the engine's database name: one per test run on the test PostgreSQL server
//!   (`STRATBOX_TEST_POSTGRES`), reached from zone-b through a forwarder from
//!   `postgres:5432` to the server's Unix socket, since the server listens in the root
//!   namespace; the role `stratbox` of the URL is created there when missing;
//! - `/run/secrets/…` and `/strategies`: files and directories under the test's temp dir
//!   (the signer's certificates are made by `stratbox signer certs`);
//! - the signer's config file (compose's `signer_config` secret) is made here, with the
//!   test's certificates and a `[threshold]` section naming the cluster file and the
//!   coordinator identity of `stratbox signer cluster init`, and given through
//!   `STRATBOX_SIGNER_CONFIG`;
//! - compose's `fortress-keys` network (the shares and the signer only) is zone-c's
//!   loopback: each share listens on its own loopback address instead of compose's
//!   `0.0.0.0:50070` (three processes share one namespace, so they cannot all bind the
//!   same port), and its `--data-dir` is in the temp dir. Nothing outside zone-c can open
//!   a connection to a share; the test checks that from zone-a and zone-b, and that the
//!   shares do answer inside zone-c;
//! - Redis runs compose's `redis-server` command line with `--dir` in the temp dir.
//!
//! Addresses are from the documentation ranges TEST-NET-1 (192.0.2.0/24, A–B link) and
//! TEST-NET-2 (198.51.100.0/24, B–C link): they exist only inside these private namespaces
//! and can never be mistaken for, or leak onto, a real network. Zone A is even given a
//! route to Zone C via Zone B (what an attacker in Zone A would add), so the only thing
//! standing between A and C is Zone B's refusal to forward; the control test shows that
//! flipping that one switch opens the path, so the negative result is meaningful.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`), iproute2 (installed with
//! apt when missing), `redis-server` and `psql`. Where that is impossible the test FAILS,
//! unless `STRATBOX_SKIP_NETNS=1` is set outside CI, in which case it says loudly that it
//! did not run; under `CI` it always fails. Namespaces are named per run and removed on
//! drop, also when an assertion fails.

use crate::deploy;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROLE_ENV: &str = "STRATBOX_NETNS_ROLE";
const ADDR_ENV: &str = "STRATBOX_NETNS_ADDR";
const UNIX_ENV: &str = "STRATBOX_NETNS_UNIX";

const ZONE_A_ADDR: &str = "192.0.2.1";
const ZONE_B_A_SIDE: &str = "192.0.2.2";
const ZONE_B_C_SIDE: &str = "198.51.100.1";
const ZONE_C_ADDR: &str = "198.51.100.2";
/// Where `postgres` resolves in zone-b: a loopback address of its own, so the forwarder
/// can listen on compose's port without meeting anything else.
const POSTGRES_IN_B: &str = "127.0.0.2";
const ENGINE_PORT: u16 = 50051;
const SIGNER_PORT: u16 = 50061;
const REDIS_PORT: u16 = 6379;
const SHARE_PORT: u16 = 50070;
/// Where `signer-share-I` listens and resolves in zone-c: `127.0.0.{10 + I}`.
const SHARE_ADDRS: [&str; 3] = ["127.0.0.10", "127.0.0.11", "127.0.0.12"];
/// How long the key ceremony gets (primes seeded: the protocol only).
const KEYGEN_BOUND: Duration = Duration::from_secs(900);

/// How long a probe waits for a TCP handshake before calling the target unreachable.
const CONNECT_BOUND: Duration = Duration::from_secs(2);
/// How long a service gets to come up.
const START_BOUND: Duration = Duration::from_secs(90);

// ── the helper process ───────────────────────────────────────────────────────────────

/// Not a test of its own: the body of the probe and forwarder processes the tests start
/// inside the namespaces (`ip netns exec <ns> <this binary> zone_process --exact
/// --ignored`). Run by hand without its environment it fails.
#[test]
#[ignore = "helper process, started by the netns tests inside a namespace"]
fn zone_process() {
    let role = std::env::var(ROLE_ENV).unwrap_or_else(|_| {
        panic!("{ROLE_ENV} unset: this helper only runs inside the netns tests")
    });
    let addr: SocketAddr = std::env::var(ADDR_ENV)
        .unwrap_or_else(|_| panic!("{ADDR_ENV} unset"))
        .parse()
        .unwrap_or_else(|e| panic!("{ADDR_ENV}: {e}"));
    match role.as_str() {
        "probe" => probe(addr),
        "forward" => forward(
            addr,
            &PathBuf::from(std::env::var(UNIX_ENV).unwrap_or_else(|_| panic!("{UNIX_ENV} unset"))),
        ),
        other => panic!("unknown role {other}"),
    }
}

fn probe(addr: SocketAddr) {
    let mut stdout = std::io::stdout();
    match TcpStream::connect_timeout(&addr, CONNECT_BOUND) {
        Ok(mut stream) => {
            // An HTTP/2 server greets first; a TLS server waits for the client.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 128];
            let n = stream.read(&mut buf).unwrap_or(0);
            let _ = writeln!(stdout, "ZONE PROBE CONNECTED {}", hex::encode(&buf[..n]));
        }
        Err(e) => {
            let _ = writeln!(stdout, "ZONE PROBE FAILED {:?} {e}", e.kind());
        }
    }
    let _ = stdout.flush();
}

/// PostgreSQL's `postgres:5432` in zone-b: each TCP connection is carried to the server's
/// Unix socket, which a network namespace does not fence.
fn forward(addr: SocketAddr, socket: &Path) {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ZONE READY {addr}");
    let _ = stdout.flush();
    for tcp in listener.incoming().flatten() {
        let Ok(unix) = UnixStream::connect(socket) else {
            continue; // the client sees the connection close
        };
        let (Ok(mut tcp_r), Ok(mut unix_w)) = (tcp.try_clone(), unix.try_clone()) else {
            continue;
        };
        let (mut tcp_w, mut unix_r) = (tcp, unix);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut tcp_r, &mut unix_w);
            let _ = unix_w.shutdown(std::net::Shutdown::Write);
        });
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut unix_r, &mut tcp_w);
            let _ = tcp_w.shutdown(std::net::Shutdown::Write);
        });
    }
}

// ── namespaces ───────────────────────────────────────────────────────────────────────

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Output {
    run(Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args))
}

/// Three namespaces wired A–B–C, and every process started in them. Dropping it kills
/// those processes (by the ids we got when we started them) and deletes the namespaces,
/// which takes the veth pairs with them.
struct Zones {
    a: String,
    b: String,
    c: String,
    children: Vec<Child>,
    /// The engine's database on the test server, dropped with the zones.
    database: Option<(String, String)>,
}

impl Drop for Zones {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.a, &self.b, &self.c] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = std::fs::remove_dir_all(etc_netns(ns));
        }
        if let Some((admin, name)) = &self.database {
            let _ = Command::new("psql")
                .args([
                    admin.as_str(),
                    "-XAtqc",
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ])
                .output();
        }
    }
}

const NS_PREFIX: &str = "stratbox-netns-";

/// Namespaces left by an earlier run of this test that was killed before its drop ran:
/// the name carries the creating process id, so only those of dead processes go.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty()
            && pid.chars().all(|c| c.is_ascii_digit())
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
            let _ = std::fs::remove_dir_all(etc_netns(name));
        }
    }
}

/// `None`: the environment cannot run this and `STRATBOX_SKIP_NETNS=1` says that is fine,
/// which is never the case under CI.
fn cannot_run(why: &str) -> Option<Zones> {
    if stratbox_testenv::in_ci() {
        panic!(
            "the network-namespace isolation test cannot run here, and CI is set \
             (STRATBOX_SKIP_NETNS is not honoured under CI): {why}"
        );
    }
    if std::env::var("STRATBOX_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!(
            "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             SKIPPED (STRATBOX_SKIP_NETNS=1): zone isolation was NOT tested:\n{why}\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        None
    } else {
        panic!(
            "the network-namespace isolation test cannot run here: {why}\n\
             (run as root with CAP_NET_ADMIN, or set STRATBOX_SKIP_NETNS=1 to skip knowingly)"
        )
    }
}

fn ensure_iproute2() -> Result<(), String> {
    let present = || {
        Command::new("ip")
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if present() {
        return Ok(());
    }
    for args in [
        &["-o", "DPkg::Lock::Timeout=300", "update", "-q"][..],
        &[
            "-o",
            "DPkg::Lock::Timeout=300",
            "install",
            "-y",
            "-q",
            "iproute2",
        ][..],
    ] {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("`ip` is missing and apt-get cannot run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "apt-get {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    if present() {
        Ok(())
    } else {
        Err("iproute2 installed but `ip -V` still fails".to_owned())
    }
}

/// Build the three zones. `None` only when skipping was asked for (see `cannot_run`).
fn build_zones() -> Option<Zones> {
    if let Err(why) = ensure_iproute2() {
        return cannot_run(&why);
    }
    remove_stale_namespaces();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let run_id = format!("{NS_PREFIX}{}-{nanos}", std::process::id());
    let name = |zone: &str| format!("{run_id}-{zone}");

    // The first `ip netns add` doubles as the permission check.
    let a = name("zone-a");
    let out = run(Command::new("ip").args(["netns", "add", &a]));
    if !out.status.success() {
        return cannot_run(&format!(
            "`ip netns add` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // From here on the guard owns cleanup, so any panic below still removes everything.
    let zones = Zones {
        a,
        b: name("zone-b"),
        c: name("zone-c"),
        children: Vec::new(),
        database: None,
    };
    let (a, b, c) = (zones.a.as_str(), zones.b.as_str(), zones.c.as_str());
    ip(&["netns", "add", b]);
    ip(&["netns", "add", c]);

    // Links exist only A–B and B–C; interface names are per namespace, so they need not
    // be unique across concurrent runs.
    ip(&[
        "-n", a, "link", "add", "to-b", "type", "veth", "peer", "name", "to-a", "netns", b,
    ]);
    ip(&[
        "-n", c, "link", "add", "to-b", "type", "veth", "peer", "name", "to-c", "netns", b,
    ]);
    ip(&[
        "-n",
        a,
        "addr",
        "add",
        &format!("{ZONE_A_ADDR}/30"),
        "dev",
        "to-b",
    ]);
    ip(&[
        "-n",
        b,
        "addr",
        "add",
        &format!("{ZONE_B_A_SIDE}/30"),
        "dev",
        "to-a",
    ]);
    ip(&[
        "-n",
        b,
        "addr",
        "add",
        &format!("{ZONE_B_C_SIDE}/30"),
        "dev",
        "to-c",
    ]);
    ip(&[
        "-n",
        c,
        "addr",
        "add",
        &format!("{ZONE_C_ADDR}/30"),
        "dev",
        "to-b",
    ]);
    for (ns, devs) in [
        (a, &["lo", "to-b"][..]),
        (b, &["lo", "to-a", "to-c"]),
        (c, &["lo", "to-b"]),
    ] {
        for dev in devs {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
    }
    // The attacker's best case: A and C each have a route to the other through B.
    ip(&[
        "-n",
        a,
        "route",
        "add",
        "198.51.100.0/30",
        "via",
        ZONE_B_A_SIDE,
    ]);
    ip(&[
        "-n",
        c,
        "route",
        "add",
        "192.0.2.0/30",
        "via",
        ZONE_B_C_SIDE,
    ]);
    // Zone B does not forward. Set explicitly rather than trusting the namespace default.
    set_forwarding(b, false);
    // The service names of compose.yaml, as each zone would resolve them on its networks.
    write_hosts(
        a,
        &format!("127.0.0.1 localhost\n{ZONE_B_A_SIDE} engine redis\n"),
    );
    write_hosts(
        b,
        &format!(
            "127.0.0.1 localhost engine redis\n{POSTGRES_IN_B} postgres\n{ZONE_C_ADDR} signer\n"
        ),
    );
    write_hosts(
        c,
        &format!(
            "127.0.0.1 localhost signer\n{} signer-share-0\n{} signer-share-1\n{} signer-share-2\n",
            SHARE_ADDRS[0], SHARE_ADDRS[1], SHARE_ADDRS[2]
        ),
    );
    Some(zones)
}

fn set_forwarding(ns: &str, on: bool) {
    let value = if on { "1" } else { "0" };
    let out = in_ns(
        ns,
        "sysctl",
        &["-w", &format!("net.ipv4.ip_forward={value}")],
    );
    if !out.status.success() {
        // No procps: write the file; /proc/sys/net is per network namespace.
        let out = in_ns(
            ns,
            "sh",
            &[
                "-c",
                &format!("echo {value} > /proc/sys/net/ipv4/ip_forward"),
            ],
        );
        assert!(out.status.success(), "set ip_forward in {ns}");
    }
    let out = in_ns(ns, "cat", &["/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        value,
        "ip_forward in {ns}"
    );
}

fn links_in(ns: &str) -> Vec<String> {
    let out = run(Command::new("ip").args(["-n", ns, "-o", "link", "show"]));
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect();
    names.sort();
    names
}

/// Where `ip netns exec` finds files it mounts over `/etc` for one namespace.
fn etc_netns(ns: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(ns)
}

fn write_hosts(ns: &str, hosts: &str) {
    let dir = etc_netns(ns);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    std::fs::write(dir.join("hosts"), hosts).unwrap_or_else(|e| panic!("hosts for {ns}: {e}"));
}

fn helper(ns: &str, role: &str, addr: &str) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(exe)
        .args([
            // Its name in the one test binary (tests/it.rs): this module's path, then it.
            crate::support::libtest_name(module_path!(), "zone_process").as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_ENV, role)
        .env(ADDR_ENV, addr);
    cmd
}

#[derive(Debug, PartialEq)]
enum Probe {
    /// With the first bytes the server sent, hex (none for a TLS server).
    Connected {
        greeting: String,
    },
    Failed {
        reason: String,
    },
}

fn probe_from(ns: &str, addr: &str) -> Probe {
    let out = run(&mut helper(ns, "probe", addr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("ZONE PROBE ").map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!(
                "probe in {ns} reported nothing:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    match line.strip_prefix("CONNECTED") {
        Some(greeting) => Probe::Connected {
            greeting: greeting.trim().to_owned(),
        },
        None => Probe::Failed {
            reason: line.trim_start_matches("FAILED ").to_owned(),
        },
    }
}

// ── compose's command lines ──────────────────────────────────────────────────────────

/// A service's command line and environment as compose.yaml writes them.
struct ComposeService {
    command: Vec<String>,
    env: BTreeMap<String, String>,
    healthcheck: Vec<String>,
}

fn compose_service(name: &str) -> ComposeService {
    let services = deploy::compose_services(&deploy::compose());
    let svc = services
        .get(name)
        .unwrap_or_else(|| panic!("compose.yaml has no service {name}"));
    let test = deploy::string_list(&svc["healthcheck"]["test"]);
    ComposeService {
        command: deploy::string_list(&svc["command"]),
        env: deploy::compose_environment(svc),
        healthcheck: match test.first().map(String::as_str) {
            Some("CMD") => test[1..].to_vec(),
            _ => Vec::new(),
        },
    }
}

/// Replaces compose's `/run/secrets/` with a directory of the test.
fn secrets_in(args: &[String], dir: &Path) -> Vec<String> {
    args.iter()
        .map(|a| match a.strip_prefix("/run/secrets/") {
            Some(name) => dir.join(name).display().to_string(),
            None => a.clone(),
        })
        .collect()
}

fn path_str(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
        .to_owned()
}

/// A process in a zone: `ip netns exec NS PROGRAM ARGS` with exactly `env` (and `PATH`),
/// its output in `log`.
fn spawn_in(
    zones: &mut Zones,
    ns: &str,
    program: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    log: &Path,
    stdout: Stdio,
) -> usize {
    let log_file = std::fs::File::create(log).unwrap_or_else(|e| panic!("log: {e}"));
    let child = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .current_dir(log.parent().unwrap_or(Path::new("/")))
        .stdout(stdout)
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program} in {ns}: {e}"));
    zones.children.push(child);
    zones.children.len() - 1
}

/// Waits until `ready` holds, failing with `log` if the process `index` exits first.
fn wait_ready(zones: &mut Zones, index: usize, what: &str, log: &Path, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + START_BOUND;
    loop {
        if ready() {
            return;
        }
        let exited = zones.children[index].try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            panic!(
                "{what} did not come up ({}):\n{}",
                exited.map_or("timed out".to_owned(), |s| s.to_string()),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Runs a compose health check (`stratbox health …`) inside a zone.
fn healthcheck_in(ns: &str, check: &[String], env: &BTreeMap<String, String>) -> Output {
    assert_eq!(
        check.first().map(String::as_str),
        Some("stratbox"),
        "health check {check:?}"
    );
    run(Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_stratbox")])
        .args(&check[1..])
        .env_clear()
        .envs(env))
}

fn psql(url: &str, sql: &str) -> String {
    let out = run(Command::new("psql").args([url, "-XAtqc", sql]));
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// PostgreSQL for the engine: a database of this run, owned by compose's role, and the
/// forwarder that makes the server `postgres:5432` in zone-b. Returns the database name.
fn start_postgres(zones: &mut Zones) -> String {
    let admin = std::env::var("STRATBOX_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let socket_dir = psql(&admin, "SHOW unix_socket_directories");
    let socket_dir = socket_dir.split(',').next().unwrap_or_default().trim();
    let port = psql(&admin, "SHOW port");
    let socket = PathBuf::from(socket_dir).join(format!(".s.PGSQL.{port}"));
    psql(
        &admin,
        "DO $$ BEGIN CREATE ROLE stratbox LOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    );
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!("netns_{}_{nanos}", std::process::id());
    psql(
        &admin,
        &format!("CREATE DATABASE \"{name}\" OWNER stratbox"),
    );
    zones.database = Some((admin, name.clone()));

    let b = zones.b.clone();
    let mut child = helper(&b, "forward", &format!("{POSTGRES_IN_B}:5432"))
        .env(UNIX_ENV, &socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start the postgres forwarder: {e}"));
    let stdout = child.stdout.take();
    zones.children.push(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test zone_process ... " on the same line first.
            if line.contains("ZONE READY") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("the postgres forwarder in zone-b never bound"));
    name
}

/// Redis in zone-b: compose's `redis-server` command line, its data in the temp dir.
fn start_redis(zones: &mut Zones, workdir: &Path) {
    let dir = workdir.join("redis");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir redis: {e}"));
    let redis = compose_service("redis");
    assert_eq!(
        redis.command.first().map(String::as_str),
        Some("redis-server")
    );
    let mut args = redis.command[1..].to_vec();
    args.extend(["--dir".to_owned(), path_str(&dir)]);
    let b = zones.b.clone();
    let log = workdir.join("redis.log");
    let index = spawn_in(
        zones,
        &b,
        "redis-server",
        &args,
        &BTreeMap::new(),
        &log,
        Stdio::null(),
    );
    wait_ready(zones, index, "redis-server in zone-b", &log, || {
        matches!(
            probe_from(&b, &format!("127.0.0.1:{REDIS_PORT}")),
            Probe::Connected { .. }
        )
    });
}

/// The engine in zone-b: compose's command line with this run's database, up when
/// compose's health check for it passes.
fn start_engine(zones: &mut Zones, workdir: &Path, database: &str) {
    let engine = compose_service("engine");
    let secrets = workdir.join("engine-secrets");
    std::fs::create_dir_all(&secrets).unwrap_or_else(|e| panic!("mkdir: {e}"));
    write_engine_tls(workdir);
    let mut args = secrets_in(&engine.command, &secrets);
    let url = args
        .iter_mut()
        .skip_while(|a| *a != "--database")
        .nth(1)
        .unwrap_or_else(|| panic!("compose's engine has no --database: {:?}", engine.command));
    let (server, _) = url
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("--database {url}"));
    let adapted = format!("{server}/{database}");
    *url = adapted;
    let mut env = engine.env.clone();
    for value in env.values_mut() {
        *value = secrets_in(std::slice::from_ref(value), &secrets).remove(0);
    }
    // The password file compose mounts; trust authentication ignores the password.
    if let Some(pgpass) = env.get("PGPASSFILE") {
        write_private(
            Path::new(pgpass),
            &format!("postgres:5432:{database}:stratbox:unused\n"),
        );
    }
    eprintln!("zone-b: stratbox {}", args.join(" "));
    let b = zones.b.clone();
    let log = workdir.join("engine.log");
    let index = spawn_in(
        zones,
        &b,
        env!("CARGO_BIN_EXE_stratbox"),
        &args,
        &env,
        &log,
        Stdio::null(),
    );
    let check = secrets_in(&engine.healthcheck, &secrets);
    wait_ready(zones, index, "`stratbox engine` in zone-b", &log, || {
        healthcheck_in(&b, &check, &engine.env).status.success()
    });
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The engine's TLS port's files, as compose's secrets: its server certificate (for the name
/// `engine` hosts dial), the CA clients verify it with, and the client certificates of the
/// host and of the engine's health check, in `engine-secrets/` and `host-secrets/`. One
/// development CA serves as both of compose's engine CAs here: the zones are the subject.
fn write_engine_tls(workdir: &Path) {
    let certs = workdir.join("engine-certs");
    let ca = stratbox_signer::certs::DevCa::create(&certs).unwrap_or_else(|e| panic!("CA: {e}"));
    let hosts = [
        "engine".to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    let server = ca
        .issue_server(&certs, "engine", &hosts)
        .unwrap_or_else(|e| panic!("engine certificate: {e}"));
    let issue = |name: &str| {
        ca.issue_client(&certs, name, "approver")
            .unwrap_or_else(|e| panic!("{name} certificate: {e}"))
    };
    let (host, probe) = (issue("host"), issue("probe"));
    let engine_dir = workdir.join("engine-secrets");
    let host_dir = workdir.join("host-secrets");
    for (dir, secret, file) in [
        (&engine_dir, "engine_tls_cert", &server.cert),
        (&engine_dir, "engine_tls_key", &server.key),
        (&engine_dir, "engine_ca", &ca.cert),
        (&engine_dir, "engine_client_ca", &ca.cert),
        (&engine_dir, "engine_probe_client_cert", &probe.cert),
        (&engine_dir, "engine_probe_client_key", &probe.key),
        (&host_dir, "engine_ca", &ca.cert),
        (&host_dir, "host_engine_client_cert", &host.cert),
        (&host_dir, "host_engine_client_key", &host.key),
    ] {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::copy(file, dir.join(secret)).unwrap_or_else(|e| panic!("copy {secret}: {e}"));
    }
}

/// A strategy host in zone-a: compose's command line with its `/strategies` mount in the
/// temp dir; up when compose's health check for it passes from inside zone-a.
fn start_host(zones: &mut Zones, workdir: &Path) {
    let host = compose_service("host");
    let strategies = workdir.join("strategies");
    std::fs::create_dir_all(&strategies).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let secrets = workdir.join("host-secrets");
    let args: Vec<String> = secrets_in(&host.command, &secrets)
        .iter()
        .map(|a| {
            if a == "/strategies" {
                path_str(&strategies)
            } else {
                a.clone()
            }
        })
        .collect();
    eprintln!("zone-a: stratbox {}", args.join(" "));
    let a = zones.a.clone();
    let log = workdir.join("host.log");
    let index = spawn_in(
        zones,
        &a,
        env!("CARGO_BIN_EXE_stratbox"),
        &args,
        &host.env,
        &log,
        Stdio::null(),
    );
    let check = secrets_in(&host.healthcheck, &secrets);
    wait_ready(zones, index, "`stratbox host` in zone-a", &log, || {
        healthcheck_in(&a, &check, &host.env).status.success()
    });
    // Still running once its engine answered: it reached the bus and the engine.
    std::thread::sleep(Duration::from_secs(1));
    let exited = zones.children[index].try_wait().ok().flatten();
    assert!(
        exited.is_none(),
        "`stratbox host` in zone-a exited ({exited:?}):\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Runs `stratbox ARGS` here (no network) for the signer's files.
fn stratbox_here(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(args)
        .envs(env.iter().copied()));
    assert!(
        out.status.success(),
        "stratbox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const PASSPHRASE: &str = "netns test passphrase";

/// The target directory this test binary runs from (`target/release/deps/..` → `target`),
/// where the threshold crate's test primes are cached.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    exe.ancestors()
        .nth(3)
        .unwrap_or_else(|| panic!("no target dir above {}", exe.display()))
        .to_path_buf()
}

/// Replaces the value after `flag` in `args`.
fn replace_arg(args: &mut [String], flag: &str, value: String) {
    let at = args
        .iter()
        .position(|a| a == flag)
        .map(|i| i + 1)
        .filter(|i| *i < args.len())
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    args[at] = value;
}

/// The threshold key in zone-c: `stratbox signer cluster init` with compose's share names
/// (as deploy/gen-dev-secrets.sh runs it), the three share processes on compose's
/// `signer-share-I` command lines (primes seeded first), and compose's one-shot
/// `signer-keygen` ceremony. Returns the secrets directory holding the cluster file and
/// the coordinator identity under their compose secret names.
fn start_threshold_key(zones: &mut Zones, workdir: &Path) -> PathBuf {
    let dir = workdir.join("keys");
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let cluster_dir = dir.join("cluster");
    stratbox_here(
        &[
            "signer",
            "cluster",
            "init",
            "--out",
            &path_str(&cluster_dir),
            "--share",
            "signer-share-0:50070",
            "--share",
            "signer-share-1:50070",
            "--share",
            "signer-share-2:50070",
        ],
        &[],
    );
    let mut files = vec![
        ("threshold_cluster".to_owned(), "cluster.json".to_owned()),
        (
            "coordinator_cert".to_owned(),
            "coordinator.crt.pem".to_owned(),
        ),
        (
            "coordinator_key".to_owned(),
            "coordinator.key.pem".to_owned(),
        ),
    ];
    for i in 0..3 {
        files.push((format!("share_{i}_cert"), format!("share-{i}.crt.pem")));
        files.push((format!("share_{i}_key"), format!("share-{i}.key.pem")));
    }
    for (secret, file) in &files {
        std::fs::copy(cluster_dir.join(file), secrets.join(secret))
            .unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }

    let primes = stratbox_threshold::local::cached_test_primes(&target_dir())
        .unwrap_or_else(|e| panic!("test primes: {e}"));
    let passphrase = stratbox_threshold::Passphrase::new(PASSPHRASE)
        .unwrap_or_else(|e| panic!("passphrase: {e}"));
    let c = zones.c.clone();
    for (index, primes) in primes.iter().enumerate() {
        let name = format!("signer-share-{index}");
        let share = compose_service(&name);
        write_private(
            &secrets.join(format!("share_{index}_passphrase")),
            &format!("{PASSPHRASE}\n"),
        );
        let mut args = secrets_in(&share.command, &secrets);
        let data = dir.join(format!("share-{index}-data"));
        replace_arg(&mut args, "--data-dir", path_str(&data));
        let listen = format!("{}:{SHARE_PORT}", SHARE_ADDRS[index]);
        replace_arg(&mut args, "--listen", listen.clone());
        let index_u16 = u16::try_from(index).unwrap_or_else(|_| unreachable!());
        stratbox_threshold::local::seed_primes(&data, index_u16, &passphrase, primes)
            .unwrap_or_else(|e| panic!("seed primes for share {index}: {e}"));
        eprintln!("zone-c: stratbox {}", args.join(" "));
        let log = dir.join(format!("{name}.log"));
        let child = spawn_in(
            zones,
            &c,
            env!("CARGO_BIN_EXE_stratbox"),
            &args,
            &share.env,
            &log,
            Stdio::piped(),
        );
        let line = wait_for_line(zones, child, &format!("share {index} listening on"), &log);
        assert!(
            line.contains(&listen),
            "share {index} listens where the test put it: {line}"
        );
    }

    // The ceremony, once, from zone-c, with compose's command line.
    let keygen = compose_service("signer-keygen");
    let args = secrets_in(&keygen.command, &secrets);
    eprintln!("zone-c: stratbox {}", args.join(" "));
    let log = dir.join("signer-keygen.log");
    let child = spawn_in(
        zones,
        &c,
        env!("CARGO_BIN_EXE_stratbox"),
        &args,
        &keygen.env,
        &log,
        Stdio::piped(),
    );
    let stdout = zones.children[child].stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + KEYGEN_BOUND;
    let status = loop {
        if let Some(status) = zones.children[child].try_wait().ok().flatten() {
            break status;
        }
        if Instant::now() > deadline {
            panic!(
                "`stratbox signer keygen` did not finish in {KEYGEN_BOUND:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let out = reader.join().unwrap_or_default();
    assert!(
        status.success(),
        "`stratbox signer keygen` failed ({status}):\n{out}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let accounts: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("account "))
        .collect();
    assert!(
        !accounts.is_empty()
            && accounts.iter().all(|a| a
                .split_once(' ')
                .is_some_and(|(_, addr)| addr.starts_with("0x") && addr.len() == 42)),
        "keygen printed no accounts: {out}"
    );
    eprintln!("zone-c: threshold key made: {accounts:?}");
    secrets
}

/// Waits for a line containing `marker` on the stdout of child `index`; fails with `log`
/// if it does not come. Later lines are drained so the process never blocks on a pipe.
fn wait_for_line(zones: &mut Zones, index: usize, marker: &str, log: &Path) -> String {
    let stdout = zones.children[index].stdout.take();
    let (tx, rx) = mpsc::channel();
    let marker_owned = marker.to_owned();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&marker_owned) {
                let _ = tx.send(line.clone());
            }
        }
    });
    rx.recv_timeout(START_BOUND).unwrap_or_else(|_| {
        panic!(
            "no `{marker}` in zone-c:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })
}

/// The signer in zone-c: compose's command line with its secrets in the temp dir, and a
/// development config (certificates, a deny-everything policy, and the `[threshold]` key
/// made by [`start_threshold_key`]) made with the binary; up when it prints that it
/// listens.
fn start_signer(zones: &mut Zones, workdir: &Path) {
    let key_secrets = start_threshold_key(zones, workdir);
    let signer = compose_service("signer");
    let dir = workdir.join("signer");
    let certs = dir.join("certs");
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let out = stratbox_here(&["signer", "certs", "--out", &path_str(&certs)], &[]);
    let allowlist = out
        .split("# allowlist entries for the signer's config file:")
        .nth(1)
        .unwrap_or_else(|| panic!("`signer certs` printed no allowlist:\n{out}"));
    for (secret, file) in [
        ("signer_tls_cert", "signer.pem"),
        ("signer_tls_key", "signer.key"),
        ("signer_client_ca", "ca.pem"),
    ] {
        std::fs::copy(certs.join(file), secrets.join(secret))
            .unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    std::fs::write(
        dir.join("policy.toml"),
        "chain_ids = [31337]\nmax_fee_per_gas = \"100000000000\"\n\
         max_priority_fee_per_gas = \"10000000000\"\nmax_gas_limit = 1000000\n",
    )
    .unwrap_or_else(|e| panic!("policy: {e}"));
    let config = dir.join("signer.toml");
    // tls_* and listen are what compose's flags override. No presignatures kept ready:
    // nothing is signed here, and the two cores are better spent elsewhere.
    std::fs::write(
        &config,
        format!(
            "database = \"sqlite://{}\"\npolicy = \"policy.toml\"\n\
             admin_listen = \"127.0.0.1:0\"\ntls_cert = \"certs/signer.pem\"\n\
             tls_key = \"certs/signer.key\"\nclient_ca = \"certs/ca.pem\"\n\
             [threshold]\ncluster = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\npresign_pool = 0\n\n{allowlist}",
            path_str(&dir.join("signer.db")),
            path_str(&key_secrets.join("threshold_cluster")),
            path_str(&key_secrets.join("coordinator_cert")),
            path_str(&key_secrets.join("coordinator_key")),
        ),
    )
    .unwrap_or_else(|e| panic!("config: {e}"));

    let args = secrets_in(&signer.command, &secrets);
    let mut env = signer.env.clone();
    env.insert("STRATBOX_SIGNER_CONFIG".to_owned(), path_str(&config));
    eprintln!("zone-c: stratbox {}", args.join(" "));
    let c = zones.c.clone();
    let log = dir.join("signer.log");
    let index = spawn_in(
        zones,
        &c,
        env!("CARGO_BIN_EXE_stratbox"),
        &args,
        &env,
        &log,
        Stdio::piped(),
    );
    let line = wait_for_line(zones, index, "signer listening on", &log);
    assert!(
        line.contains(&format!("0.0.0.0:{SIGNER_PORT}")),
        "the signer listens where compose says: {line}"
    );
    assert!(
        line.contains("key: threshold"),
        "the signer does not sign with the threshold key: {line}"
    );
}

/// Zones with every service of compose.yaml's zones running in them.
fn zones_with_services(workdir: &Path) -> Option<Zones> {
    let mut zones = build_zones()?;
    // Zone A and Zone C each have one link, and it goes to Zone B.
    assert_eq!(links_in(&zones.a), ["lo", "to-b"]);
    assert_eq!(links_in(&zones.c), ["lo", "to-b"]);
    assert_eq!(links_in(&zones.b), ["lo", "to-a", "to-c"]);
    let database = start_postgres(&mut zones);
    start_redis(&mut zones, workdir);
    start_engine(&mut zones, workdir, &database);
    start_signer(&mut zones, workdir);
    start_host(&mut zones, workdir);
    Some(zones)
}

// ── the tests ────────────────────────────────────────────────────────────────────────

#[test]
fn zone_a_reaches_the_engine_and_cannot_reach_the_signer() {
    let workdir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let Some(zones) = zones_with_services(workdir.path()) else {
        return;
    };
    let signer = format!("{ZONE_C_ADDR}:{SIGNER_PORT}");

    // The signer is up and reachable from the engine's zone, by compose's name too: the
    // negative result below is about the path, not about a dead listener.
    assert!(
        matches!(probe_from(&zones.b, &signer), Probe::Connected { .. }),
        "zone-b -> signer"
    );

    // Zone A -> engine: open (the host's health check passed from zone-a already). The
    // engine is a gRPC (HTTP/2) server, whose first bytes are a SETTINGS frame (type 4).
    match probe_from(&zones.a, &format!("{ZONE_B_A_SIDE}:{ENGINE_PORT}")) {
        Probe::Connected { greeting } => assert!(
            greeting.is_empty() || greeting.get(6..8) == Some("04"),
            "zone-a -> engine: not an HTTP/2 server greeting: {greeting}"
        ),
        other => panic!("zone-a -> engine: {other:?}"),
    }
    // Zone A -> the bus: open; Zone A -> the database: closed (it is zone-b's alone).
    assert!(matches!(
        probe_from(&zones.a, &format!("{ZONE_B_A_SIDE}:{REDIS_PORT}")),
        Probe::Connected { .. }
    ));
    assert!(matches!(
        probe_from(&zones.a, &format!("{ZONE_B_A_SIDE}:5432")),
        Probe::Failed { .. }
    ));

    // Zone A -> signer: closed, although zone-a has a route to it via zone-b.
    let result = probe_from(&zones.a, &signer);
    assert!(
        matches!(result, Probe::Failed { .. }),
        "zone-a reached the signer: {result:?}"
    );
    eprintln!("zone-a -> signer: {result:?}");

    // The threshold key's shares answer inside zone-c (the signer's side of
    // `fortress-keys`), so the refusals below are about the path, not dead listeners...
    let shares: Vec<String> = SHARE_ADDRS
        .iter()
        .map(|a| format!("{a}:{SHARE_PORT}"))
        .collect();
    for share in &shares {
        assert!(
            matches!(probe_from(&zones.c, share), Probe::Connected { .. }),
            "zone-c -> share {share}"
        );
    }
    // ...and neither the host's zone nor the engine's can open a connection to any share
    // port: not at the share addresses, not at zone-c's address on the share port.
    let mut targets = shares.clone();
    targets.push(format!("{ZONE_C_ADDR}:{SHARE_PORT}"));
    for (zone, ns) in [("zone-a", &zones.a), ("zone-b", &zones.b)] {
        for target in &targets {
            let result = probe_from(ns, target);
            assert!(
                matches!(result, Probe::Failed { .. }),
                "{zone} reached a share at {target}: {result:?}"
            );
            eprintln!("{zone} -> share {target}: {result:?}");
        }
    }

    // And zone-b's forwarding is still off after all of it.
    let out = in_ns(&zones.b, "cat", &["/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

/// Control: the only barrier between A and C is zone-b's refusal to forward. Turning
/// forwarding on (the misconfiguration the deployment must never have) opens the very
/// connection the test above saw fail, so that failure was caused by the zone rule and
/// not by a broken route or a wrong address.
#[test]
fn control_forwarding_in_zone_b_would_open_the_signer_to_zone_a() {
    let workdir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let Some(zones) = zones_with_services(workdir.path()) else {
        return;
    };
    let signer = format!("{ZONE_C_ADDR}:{SIGNER_PORT}");
    assert!(matches!(
        probe_from(&zones.a, &signer),
        Probe::Failed { .. }
    ));
    set_forwarding(&zones.b, true);
    assert!(
        matches!(probe_from(&zones.a, &signer), Probe::Connected { .. }),
        "with forwarding on, zone-a -> signer"
    );
}
