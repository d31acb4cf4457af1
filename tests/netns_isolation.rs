//! The zone rules hold at the network layer, not only on paper: Zone A can open the
//! engine's port and cannot open the signer's, because the only path between them runs
//! through Zone B and Zone B does not forward.
//!
//! Each zone is a separate Linux network namespace (`ip netns`), and each service in it a
//! separate process started with `ip netns exec`:
//!
//! ```text
//!   zone-a                    zone-b                          zone-c
//!   192.0.2.1/30 ──veth── 192.0.2.2/30  198.51.100.1/30 ──veth── 198.51.100.2/30
//!   (probe)                   engine :50051                   signer stand-in :50061
//!                             net.ipv4.ip_forward = 0
//! ```
//!
//! Addresses are from the documentation ranges TEST-NET-1 (192.0.2.0/24, A–B link) and
//! TEST-NET-2 (198.51.100.0/24, B–C link): they exist only inside these private namespaces
//! and can never be mistaken for, or leak onto, a real network. Zone A is even given a
//! route to Zone C via Zone B (what an attacker in Zone A would add), so the only thing
//! standing between A and C is Zone B's refusal to forward; the control test shows that
//! flipping that one switch opens the path, so the negative result is meaningful.
//!
//! Processes:
//! - Zone B, engine port: the real `stratbox engine --listen 0.0.0.0:50051` when
//!   `stratbox engine --help` offers `--listen`; until the engine command exists it is a
//!   TCP stand-in (this test binary re-run as the `zone_process` helper, which accepts and
//!   writes a banner). Which one ran is printed. `STRATBOX_NETNS_ENGINE=standin` forces
//!   the stand-in; `STRATBOX_NETNS_ENGINE_ARGS` appends arguments to the real engine.
//! - Zone C, signer port: always the TCP stand-in, because `stratbox signer` is a later
//!   issue.
//! - Probes: the same helper, connecting with a 2 s bound and reporting on stdout.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`) and iproute2, which it
//! installs with apt when missing. Where that is impossible the test FAILS, unless
//! `STRATBOX_SKIP_NETNS=1` is set, in which case it says loudly that it did not run.
//! Namespaces are named per run and removed on drop, also when an assertion fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROLE_ENV: &str = "STRATBOX_NETNS_ROLE";
const ADDR_ENV: &str = "STRATBOX_NETNS_ADDR";
const BANNER_ENV: &str = "STRATBOX_NETNS_BANNER";

const ENGINE_BANNER: &str = "stratbox-engine-stand-in";
const SIGNER_BANNER: &str = "stratbox-signer-stand-in";

const ZONE_A_ADDR: &str = "192.0.2.1";
const ZONE_B_A_SIDE: &str = "192.0.2.2";
const ZONE_B_C_SIDE: &str = "198.51.100.1";
const ZONE_C_ADDR: &str = "198.51.100.2";
const ENGINE_PORT: u16 = 50051;
const SIGNER_PORT: u16 = 50061;

/// How long a probe waits for a TCP handshake before calling the target unreachable.
const CONNECT_BOUND: Duration = Duration::from_secs(2);

// ── the helper process ───────────────────────────────────────────────────────────────

/// Not a test of its own: the body of the listener and probe processes the tests start
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
        "listen" => listen(addr, &std::env::var(BANNER_ENV).unwrap_or_default()),
        "probe" => probe(addr),
        other => panic!("unknown role {other}"),
    }
}

fn listen(addr: SocketAddr, banner: &str) {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ZONE READY {addr}");
    let _ = stdout.flush();
    // A failed accept (e.g. the peer reset first) is the peer's problem: keep serving.
    for mut stream in listener.incoming().flatten() {
        let _ = stream.write_all(format!("{banner}\n").as_bytes());
    }
}

fn probe(addr: SocketAddr) {
    let mut stdout = std::io::stdout();
    match TcpStream::connect_timeout(&addr, CONNECT_BOUND) {
        Ok(mut stream) => {
            // The stand-ins announce themselves; a real gRPC server sends nothing first.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 128];
            let n = stream.read(&mut buf).unwrap_or(0);
            let banner = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
            let _ = writeln!(stdout, "ZONE PROBE CONNECTED {banner}");
        }
        Err(e) => {
            let _ = writeln!(stdout, "ZONE PROBE FAILED {:?} {e}", e.kind());
        }
    }
    let _ = stdout.flush();
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
}

impl Drop for Zones {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.a, &self.b, &self.c] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
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
        }
    }
}

/// Ok(None): the environment cannot run this and STRATBOX_SKIP_NETNS=1 says that is fine.
fn cannot_run(why: &str) -> Option<Zones> {
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

fn helper(ns: &str, role: &str, addr: &str, banner: &str) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(exe)
        .args([
            "zone_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_ENV, role)
        .env(ADDR_ENV, addr)
        .env(BANNER_ENV, banner);
    cmd
}

/// Start a stand-in listener and wait for it to say it is bound.
fn start_stand_in(zones: &mut Zones, ns: &str, addr: &str, banner: &str) {
    let mut child = helper(ns, "listen", addr, banner)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start stand-in in {ns}: {e}"));
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
        .unwrap_or_else(|_| panic!("stand-in {banner} in {ns} never bound {addr}"));
}

#[derive(Debug, PartialEq)]
enum Probe {
    Connected { banner: String },
    Failed { reason: String },
}

fn probe_from(ns: &str, addr: &str) -> Probe {
    let out = run(&mut helper(ns, "probe", addr, ""));
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
        Some(banner) => Probe::Connected {
            banner: banner.trim().to_owned(),
        },
        None => Probe::Failed {
            reason: line.trim_start_matches("FAILED ").to_owned(),
        },
    }
}

/// Which engine process stands in Zone B: the real command once it can listen.
fn real_engine_args() -> Option<Vec<String>> {
    if std::env::var("STRATBOX_NETNS_ENGINE").as_deref() == Ok("standin") {
        return None;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["engine", "--help"])
        .output()
        .ok()?;
    let help = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !help.contains("--listen") {
        return None;
    }
    let mut args = vec![
        "engine".to_owned(),
        "--listen".to_owned(),
        format!("0.0.0.0:{ENGINE_PORT}"),
    ];
    if let Ok(extra) = std::env::var("STRATBOX_NETNS_ENGINE_ARGS") {
        args.extend(extra.split_whitespace().map(str::to_owned));
    }
    Some(args)
}

/// Start the engine in Zone B; returns the banner a probe should read from it (empty for
/// the real engine, which is a gRPC server and speaks only when spoken to).
fn start_engine(zones: &mut Zones, workdir: &std::path::Path) -> String {
    let b = zones.b.clone();
    let Some(args) = real_engine_args() else {
        eprintln!("zone-b engine: TCP stand-in (`stratbox engine --listen` not available yet)");
        start_stand_in(zones, &b, &format!("0.0.0.0:{ENGINE_PORT}"), ENGINE_BANNER);
        return ENGINE_BANNER.to_owned();
    };
    eprintln!("zone-b engine: real `stratbox {}`", args.join(" "));
    let log = workdir.join("engine.log");
    let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("engine log: {e}"));
    let log_err = log_file
        .try_clone()
        .unwrap_or_else(|e| panic!("engine log: {e}"));
    let child = Command::new("ip")
        .args(["netns", "exec", &b, env!("CARGO_BIN_EXE_stratbox")])
        .args(&args)
        .current_dir(workdir)
        .stdout(log_file)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("start stratbox engine in zone-b: {e}"));
    zones.children.push(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Probe::Connected { .. } = probe_from(&b, &format!("127.0.0.1:{ENGINE_PORT}")) {
            return String::new();
        }
        let exited = zones
            .children
            .last_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if exited.is_some() || Instant::now() > deadline {
            panic!(
                "`stratbox engine` did not come up in zone-b ({}):\n{}\n\
                 (STRATBOX_NETNS_ENGINE=standin runs the TCP stand-in instead)",
                exited.map_or("timed out".to_owned(), |s| s.to_string()),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
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

/// Zones, engine in B, signer stand-in in C; returns the guard and the engine banner.
fn zones_with_services(workdir: &std::path::Path) -> Option<(Zones, String)> {
    let mut zones = build_zones()?;
    // Zone A and Zone C each have one link, and it goes to Zone B.
    assert_eq!(links_in(&zones.a), ["lo", "to-b"]);
    assert_eq!(links_in(&zones.c), ["lo", "to-b"]);
    assert_eq!(links_in(&zones.b), ["lo", "to-a", "to-c"]);
    let engine_banner = start_engine(&mut zones, workdir);
    let c = zones.c.clone();
    start_stand_in(
        &mut zones,
        &c,
        &format!("0.0.0.0:{SIGNER_PORT}"),
        SIGNER_BANNER,
    );
    Some((zones, engine_banner))
}

// ── the tests ────────────────────────────────────────────────────────────────────────

#[test]
fn zone_a_reaches_the_engine_and_cannot_reach_the_signer() {
    let workdir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let Some((zones, engine_banner)) = zones_with_services(workdir.path()) else {
        return;
    };
    let signer = format!("{ZONE_C_ADDR}:{SIGNER_PORT}");

    // The signer is up and reachable from the engine's zone: the negative result below
    // is about the path, not about a dead listener.
    assert_eq!(
        probe_from(&zones.b, &signer),
        Probe::Connected {
            banner: SIGNER_BANNER.to_owned()
        },
        "zone-b -> signer"
    );

    // Zone A -> engine: open. The stand-in greets with a known banner; the real engine is
    // a gRPC (HTTP/2) server, whose first bytes are a SETTINGS frame (type 4).
    let reached = probe_from(&zones.a, &format!("{ZONE_B_A_SIDE}:{ENGINE_PORT}"));
    match (&reached, engine_banner.is_empty()) {
        (Probe::Connected { banner }, true) => assert!(
            banner.is_empty() || banner.as_bytes().get(3) == Some(&4),
            "zone-a -> engine: not an HTTP/2 server greeting: {banner:?}"
        ),
        _ => assert_eq!(
            reached,
            Probe::Connected {
                banner: engine_banner
            },
            "zone-a -> engine"
        ),
    }

    // Zone A -> signer: closed, although zone-a has a route to it via zone-b.
    let result = probe_from(&zones.a, &signer);
    assert!(
        matches!(result, Probe::Failed { .. }),
        "zone-a reached the signer: {result:?}"
    );
    eprintln!("zone-a -> signer: {result:?}");

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
    let Some((zones, _)) = zones_with_services(workdir.path()) else {
        return;
    };
    let signer = format!("{ZONE_C_ADDR}:{SIGNER_PORT}");
    assert!(matches!(
        probe_from(&zones.a, &signer),
        Probe::Failed { .. }
    ));
    set_forwarding(&zones.b, true);
    assert_eq!(
        probe_from(&zones.a, &signer),
        Probe::Connected {
            banner: SIGNER_BANNER.to_owned()
        },
        "with forwarding on, zone-a -> signer"
    );
}
