//! What tests across the workspace share about the machine they run on.
//!
//! A test that needs PostgreSQL, Redis, Node or solc must not turn green because the thing
//! is missing: a suite that "passes" on a machine without Redis says nothing about the bus.
//! So the services' addresses come from one place (`STRATBOX_TEST_POSTGRES`,
//! `STRATBOX_TEST_REDIS`), are probed before use so a missing server fails with a sentence
//! rather than a connection error deep in a test, and the few tests that may skip on a
//! developer's machine (a tool that is optional there) go through [`unavailable`], which
//! fails instead when `CI=true`.
//!
//! Self-contained on purpose (only tokio, for [`wait_until`]): any test crate can use it
//! without pulling a zone in.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The variable naming the PostgreSQL server tests create their databases on.
pub const POSTGRES_VAR: &str = "STRATBOX_TEST_POSTGRES";
/// The variable naming the Redis server tests publish on.
pub const REDIS_VAR: &str = "STRATBOX_TEST_REDIS";
/// What `scripts/setup --services` starts, used when the variable is unset.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
/// What `scripts/setup --services` starts, used when the variable is unset.
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The cargo target directory the running test binary was built into (`CARGO_TARGET_DIR`,
/// else three levels above `target/<profile>/deps/<test>`): where tests keep caches that
/// are expensive to make and safe to share between runs, such as the threshold key tests'
/// Paillier primes.
pub fn target_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(std::path::Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
}

/// Whether this run is CI's: `CI` set to anything but empty, `0` or `false` (the
/// convention of the CI services that set it). Under CI nothing may skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    })
}

/// A test cannot run here because `what` is missing (`why` says how it was found missing).
///
/// Under `CI=true` this panics, failing the test with the reason. Elsewhere it prints
/// `SKIPPED: …` on stderr and returns, and the caller returns: only for things a developer's
/// machine may lack without the test suite being wrong there (a recompiler, say), never for
/// the services `scripts/test` starts.
#[track_caller]
pub fn unavailable(what: &str, why: &str) {
    if in_ci() {
        panic!("CI=true: {what} is required and missing ({why}); tests never skip under CI");
    }
    eprintln!("SKIPPED: {what} is not available ({why}); under CI=true this test fails");
}

/// The PostgreSQL admin URL (`STRATBOX_TEST_POSTGRES`, default [`DEFAULT_POSTGRES`]),
/// after checking the server accepts connections; a test that needs PostgreSQL fails here,
/// naming the server and the variable, when it does not.
#[track_caller]
pub fn postgres_url() -> String {
    let url = env_or(POSTGRES_VAR, DEFAULT_POSTGRES);
    require("PostgreSQL", POSTGRES_VAR, &url, 5432);
    url
}

/// The Redis URL (`STRATBOX_TEST_REDIS`, default [`DEFAULT_REDIS`]), after checking the
/// server accepts connections; fails like [`postgres_url`] when it does not.
#[track_caller]
pub fn redis_url() -> String {
    let url = env_or(REDIS_VAR, DEFAULT_REDIS);
    require("Redis", REDIS_VAR, &url, 6379);
    url
}

/// `url` (a PostgreSQL URL such as [`postgres_url`]'s) with its database replaced by
/// `name`, keeping user, host, port and query: where a test's own database lives.
pub fn postgres_database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// Polls `condition` until it yields a value, failing the test with `what` once `timeout`
/// has passed: tests wait for the state they need, never for a guessed time.
pub async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = condition().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn env_or(var: &str, default: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => default.to_owned(),
    }
}

/// Probes once per URL and process: tests ask for the URL many times.
#[track_caller]
fn require(what: &str, var: &str, url: &str, default_port: u16) {
    static PROBED: Mutex<Option<HashMap<String, Result<(), String>>>> = Mutex::new(None);
    let known = PROBED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(url)
        .cloned();
    // Probed outside the lock: two threads may both probe once, which is harmless.
    let outcome = known.unwrap_or_else(|| {
        let outcome = probe(url, default_port);
        PROBED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(url.to_owned(), outcome.clone());
        outcome
    });
    if let Err(why) = outcome {
        let ci = if in_ci() {
            "CI=true: tests never skip under CI. "
        } else {
            ""
        };
        panic!(
            "{ci}{what} is required and unavailable at {} ({var}): {why}. \
             Start it with `scripts/setup --services` or point {var} at one.",
            redact(url)
        );
    }
}

/// A TCP connection to the URL's host and port: enough to tell "no server" apart from a
/// test's own failure, without linking a client library here.
fn probe(url: &str, default_port: u16) -> Result<(), String> {
    let addrs = socket_addrs(url, default_port)?;
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("connect to {addr}: {e}"),
        }
    }
    Err(last)
}

fn socket_addrs(url: &str, default_port: u16) -> Result<Vec<SocketAddr>, String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unreadable host in {}", redact(url)))?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("unreadable port {p:?} in {}", redact(url)))?,
        None => default_port,
    };
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| format!("cannot resolve {host}: {e}"))
}

/// The URL without a password, for messages: test URLs may carry one.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            if user.len() < authority.len() - host.len() - 1 {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                url.to_owned()
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_urls_with_users_queries_and_defaults() {
        let a = socket_addrs(
            "postgres://postgres@127.0.0.1:5433/test?sslmode=disable",
            5432,
        );
        assert_eq!(a, Ok(vec!["127.0.0.1:5433".parse().unwrap()]));
        let a = socket_addrs("redis://127.0.0.1", 6379);
        assert_eq!(a, Ok(vec!["127.0.0.1:6379".parse().unwrap()]));
        let a = socket_addrs("redis://[::1]:7000/0", 6379);
        assert_eq!(a, Ok(vec!["[::1]:7000".parse().unwrap()]));
        assert!(socket_addrs("redis://127.0.0.1:notaport", 6379).is_err());
    }

    #[test]
    fn a_closed_port_is_unavailable() {
        // Port 1 (tcpmux) is not served on a test machine.
        assert!(probe("redis://127.0.0.1:1", 6379).is_err());
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn a_database_replaces_the_admin_database() {
        assert_eq!(
            postgres_database_url("postgres://p@h:1/test?x=1", "t1"),
            "postgres://p@h:1/t1?x=1"
        );
        assert_eq!(
            postgres_database_url("postgres://p@h:1", "t1"),
            "postgres://p@h:1/t1"
        );
    }
}
