//! Where a guest's stdout, stderr and `host.log` go: into `tracing`, line by line, inside
//! the span of the call that produced them (so each line carries the strategy, instance and
//! trace id), under one byte budget per call.
//!
//! The budget protects the log pipeline, not the guest: output past it is counted and
//! dropped, and the guest's write still succeeds. Failing the write instead would make
//! Rust's `println!` panic, turning a chatty strategy into a trapping one.

use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line forwarded; longer lines are cut (the cut part still costs budget).
const MAX_LINE_BYTES: usize = 1024;
/// Kept for trap messages: a Rust guest prints its panic message to stderr just before
/// it aborts with `unreachable`.
const LAST_STDERR_BYTES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

#[derive(Clone)]
pub(crate) struct OutputSink {
    state: Arc<Mutex<SinkState>>,
}

pub(crate) struct SinkState {
    budget_per_call: usize,
    budget_left: usize,
    dropped_bytes: u64,
    stdout_line: Vec<u8>,
    stderr_line: Vec<u8>,
    last_stderr: String,
}

impl OutputSink {
    pub(crate) fn new(budget_per_call: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(SinkState {
                budget_per_call,
                budget_left: budget_per_call,
                dropped_bytes: 0,
                stdout_line: Vec::new(),
                stderr_line: Vec::new(),
                last_stderr: String::new(),
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
    /// Charges `n` bytes to this call's budget; false if they must be dropped.
    pub(crate) fn charge(&mut self, n: usize) -> bool {
        if n <= self.budget_left {
            self.budget_left -= n;
            true
        } else {
            self.budget_left = 0;
            self.dropped_bytes += n as u64;
            false
        }
    }

    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        if !self.charge(bytes.len()) {
            return;
        }
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let (body, complete) = match piece.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (piece, false),
            };
            let line = match stream {
                Stream::Stdout => &mut self.stdout_line,
                Stream::Stderr => &mut self.stderr_line,
            };
            let room = MAX_LINE_BYTES.saturating_sub(line.len());
            line.extend_from_slice(&body[..body.len().min(room)]);
            if complete {
                self.flush_line(stream);
            }
        }
    }

    fn flush_line(&mut self, stream: Stream) {
        let line = match stream {
            Stream::Stdout => std::mem::take(&mut self.stdout_line),
            Stream::Stderr => std::mem::take(&mut self.stderr_line),
        };
        if line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        match stream {
            Stream::Stdout => {
                tracing::info!(target: "stratbox::guest", stream = "stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "stratbox::guest", stream = "stderr", "{text}");
                let mut end = text.len().min(LAST_STDERR_BYTES);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                self.last_stderr = text[..end].to_string();
            }
        }
    }

    /// Ends a call: forwards partial lines, reports what was dropped, refills the budget.
    pub(crate) fn end_call(&mut self) {
        self.flush_line(Stream::Stdout);
        self.flush_line(Stream::Stderr);
        if self.dropped_bytes > 0 {
            tracing::warn!(
                target: "stratbox::guest",
                dropped_bytes = self.dropped_bytes,
                "guest output over its per-call budget was dropped"
            );
            self.dropped_bytes = 0;
        }
        self.budget_left = self.budget_per_call;
    }

    /// The last stderr line of this call, taken (so a later trap does not reuse it).
    pub(crate) fn take_last_stderr(&mut self) -> String {
        self.flush_line(Stream::Stderr);
        std::mem::take(&mut self.last_stderr)
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
