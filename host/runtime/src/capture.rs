//! Where a guest's stdout, stderr and `host.log` go: into `tracing`, line by line, inside
//! the span of the call that produced them (so each line carries the strategy, instance and
//! trace id), escaped (see [`crate::display`]), under one byte budget per call.
//!
//! The budget protects the log pipeline, not the guest: output past it is counted (by
//! reason, in [`OutputCounters`]) and dropped, and the guest's write still succeeds.
//! Failing the write instead would make Rust's `println!` panic, turning a chatty strategy
//! into a trapping one.
//!
//! Apart from the budget, the sink keeps the last lines of this call's stderr: a Rust guest
//! prints its panic message there just before it aborts with `unreachable`, and a trap is
//! reported with that message (see [`SinkState::take_guest_message`]).

use crate::display::escape;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line forwarded; longer lines are cut (the cut part still costs budget).
const MAX_LINE_BYTES: usize = 1024;
/// Stderr kept per call for error messages, whatever the budget: the newest lines, at most
/// this many bytes together.
const STDERR_TAIL_BYTES: usize = 2048;
/// Longest message taken from stderr into an error.
const GUEST_MESSAGE_BYTES: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Guest output the host did not forward, over the life of one strategy instance (shared
/// by every store it builds), for its stats.
#[derive(Debug, Default)]
pub(crate) struct OutputCounters {
    /// Writes and `host.log` messages dropped because the call's budget was spent.
    pub(crate) over_budget: AtomicU64,
    /// Their bytes.
    pub(crate) over_budget_bytes: AtomicU64,
}

impl OutputCounters {
    /// `(writes and messages, bytes)` dropped over budget so far.
    pub(crate) fn over_budget(&self) -> (u64, u64) {
        (
            self.over_budget.load(Ordering::Relaxed),
            self.over_budget_bytes.load(Ordering::Relaxed),
        )
    }
}

#[derive(Clone)]
pub(crate) struct OutputSink {
    state: Arc<Mutex<SinkState>>,
}

pub(crate) struct SinkState {
    budget_per_call: usize,
    budget_left: usize,
    /// Dropped in this call, reported when it ends.
    dropped_writes: u64,
    dropped_bytes: u64,
    counters: Arc<OutputCounters>,
    stdout_line: Vec<u8>,
    stderr_line: Vec<u8>,
    /// The stderr line being assembled for the tail, budget or not.
    tail_line: Vec<u8>,
    /// This call's newest stderr lines.
    stderr_tail: VecDeque<String>,
    stderr_tail_bytes: usize,
}

impl OutputSink {
    pub(crate) fn new(budget_per_call: usize, counters: Arc<OutputCounters>) -> Self {
        Self {
            state: Arc::new(Mutex::new(SinkState {
                budget_per_call,
                budget_left: budget_per_call,
                dropped_writes: 0,
                dropped_bytes: 0,
                counters,
                stdout_line: Vec::new(),
                stderr_line: Vec::new(),
                tail_line: Vec::new(),
                stderr_tail: VecDeque::new(),
                stderr_tail_bytes: 0,
            })),
        }
    }

    /// Only the thread running the store ever takes this lock, so it is never contended;
    /// a poisoned lock only means an earlier log line panicked, and the state is still
    /// usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stream(&self, stream: Stream) -> GuestStdout {
        GuestStdout {
            sink: self.clone(),
            stream,
        }
    }
}

impl SinkState {
    /// Charges `n` bytes to this call's budget; false (and counted as dropped) if they do
    /// not fit. Decided on the length alone, before anything is copied.
    pub(crate) fn charge(&mut self, n: usize) -> bool {
        if n <= self.budget_left {
            self.budget_left -= n;
            true
        } else {
            self.budget_left = 0;
            self.dropped_writes += 1;
            self.dropped_bytes += n as u64;
            self.counters.over_budget.fetch_add(1, Ordering::Relaxed);
            self.counters
                .over_budget_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            false
        }
    }

    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        if stream == Stream::Stderr {
            let mut line = std::mem::take(&mut self.tail_line);
            feed_lines(&mut line, bytes, |l| self.keep_tail_line(&l));
            self.tail_line = line;
        }
        if !self.charge(bytes.len()) {
            return;
        }
        let buffer = match stream {
            Stream::Stdout => &mut self.stdout_line,
            Stream::Stderr => &mut self.stderr_line,
        };
        let mut line = std::mem::take(buffer);
        feed_lines(&mut line, bytes, |l| forward(stream, &l));
        match stream {
            Stream::Stdout => self.stdout_line = line,
            Stream::Stderr => self.stderr_line = line,
        }
    }

    /// Adds one stderr line to the tail, dropping the oldest past [`STDERR_TAIL_BYTES`].
    fn keep_tail_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line).trim_end().to_owned();
        if text.is_empty() {
            return;
        }
        self.stderr_tail_bytes += text.len();
        self.stderr_tail.push_back(text);
        while self.stderr_tail_bytes > STDERR_TAIL_BYTES {
            match self.stderr_tail.pop_front() {
                Some(old) => self.stderr_tail_bytes -= old.len(),
                None => break,
            }
        }
    }

    fn flush_line(&mut self, stream: Stream) {
        let line = match stream {
            Stream::Stdout => std::mem::take(&mut self.stdout_line),
            Stream::Stderr => std::mem::take(&mut self.stderr_line),
        };
        forward(stream, &line);
    }

    /// Ends a call: forwards partial lines, reports what was dropped, refills the budget,
    /// forgets this call's stderr.
    pub(crate) fn end_call(&mut self) {
        self.flush_line(Stream::Stdout);
        self.flush_line(Stream::Stderr);
        if self.dropped_writes > 0 {
            tracing::warn!(
                target: "stratbox::guest",
                reason = "over_budget",
                dropped_writes = self.dropped_writes,
                dropped_bytes = self.dropped_bytes,
                budget_bytes = self.budget_per_call,
                "guest output over its per-call budget was dropped"
            );
            self.dropped_writes = 0;
            self.dropped_bytes = 0;
        }
        self.budget_left = self.budget_per_call;
        self.tail_line.clear();
        self.stderr_tail.clear();
        self.stderr_tail_bytes = 0;
    }

    /// What the guest said about its own end on stderr in this call, taken (so a later
    /// trap does not reuse it): a Rust panic's message with its location
    /// (`panicked at src/lib.rs:10:5: the message`), else the last stderr line. Bounded
    /// to [`GUEST_MESSAGE_BYTES`]; raw (the error's `Display` escapes it).
    pub(crate) fn take_guest_message(&mut self) -> String {
        let partial = std::mem::take(&mut self.tail_line);
        self.keep_tail_line(&partial);
        let lines: Vec<String> = self.stderr_tail.drain(..).collect();
        self.stderr_tail_bytes = 0;
        let message = match lines.iter().rposition(|l| l.contains(" panicked at ")) {
            Some(at) => {
                let mut parts = Vec::new();
                // `thread '<unnamed>' panicked at FILE:LINE:COL:` -> `panicked at FILE:LINE:COL:`
                let first = &lines[at];
                parts.push(
                    first
                        .find("panicked at ")
                        .map_or(first.as_str(), |i| &first[i..]),
                );
                parts.extend(
                    lines[at + 1..]
                        .iter()
                        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
                        .map(String::as_str),
                );
                parts.join(" ")
            }
            None => lines.last().cloned().unwrap_or_default(),
        };
        let mut end = message.len().min(GUEST_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message[..end].to_owned()
    }
}

/// Appends `bytes` to the partial `line`, handing each completed line (without its
/// newline, cut at [`MAX_LINE_BYTES`]) to `complete`.
fn feed_lines(line: &mut Vec<u8>, bytes: &[u8], mut complete: impl FnMut(Vec<u8>)) {
    for piece in bytes.split_inclusive(|b| *b == b'\n') {
        let (body, done) = match piece.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (piece, false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&body[..body.len().min(room)]);
        if done {
            complete(std::mem::take(line));
        }
    }
}

/// One line of guest output into tracing, escaped.
fn forward(stream: Stream, line: &[u8]) {
    if line.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(line);
    let text = escape(&text);
    match stream {
        Stream::Stdout => tracing::info!(target: "stratbox::guest", stream = "stdout", "{text}"),
        Stream::Stderr => tracing::warn!(target: "stratbox::guest", stream = "stderr", "{text}"),
    }
}

/// The stdout/stderr a guest is given.
pub(crate) struct GuestStdout {
    sink: OutputSink,
    stream: Stream,
}

impl IsTerminal for GuestStdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(GuestStdout {
            sink: self.sink.clone(),
            stream: self.stream,
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(GuestStdout {
            sink: self.sink.clone(),
            stream: self.stream,
        })
    }
}

/// Writes never block and never fail: see the module docs.
const WRITE_PERMIT: usize = 64 << 10;

impl OutputStream for GuestStdout {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.sink.lock().write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStdout {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestStdout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.sink.lock().write(self.stream, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
