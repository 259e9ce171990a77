//! Where `serve` writes its log: standard error, a few times a second, never from a
//! request's thread.
//!
//! The server logs a line per request. Written at once, each line was a `write` to a pipe
//! (journald's, under systemd) on the thread answering requests: a tenth of a lookup's
//! time, and a pipe journald drained slowly would stall every request that thread holds.
//! Here a line is appended to a buffer under a lock; a thread of its own writes the buffer
//! out [`FLUSH_EVERY`] after its first line, at once when it holds [`EAGER`] bytes or a
//! warning or error was logged, and when the [`Flushing`] guard is dropped as `serve`
//! returns; with nothing to write it sleeps. Lines keep their order. A buffer the pipe has
//! not taken for a long while stops at [`LIMIT`]: later lines are counted and dropped, and
//! the count is logged once the pipe takes lines again.
//! A panic's message is written by the panic hook itself, not through here.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Bytes in the buffer that have it written out without waiting.
const EAGER: usize = 256 * 1024;
/// Bytes the buffer may hold while the pipe takes nothing; beyond, lines are dropped.
const LIMIT: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
    /// A warning or an error waits: write now.
    urgent: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    buffer: Mutex<Buffer>,
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding the lock leaves whole lines behind: keep logging.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the log subscriber writes to (a [`MakeWriter`]).
#[derive(Clone)]
pub struct Logs(Arc<Shared>);

/// Writes out what is buffered and stops the writing thread when dropped.
pub struct Flushing {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A log writing to `out` through a buffer and the thread that writes it out.
pub fn buffered<W: Write + Send + 'static>(out: W) -> (Logs, Flushing) {
    writing_every(FLUSH_EVERY, out)
}

fn writing_every<W: Write + Send + 'static>(every: Duration, out: W) -> (Logs, Flushing) {
    let shared = Arc::new(Shared::default());
    let writing = shared.clone();
    let thread = std::thread::Builder::new()
        .name("scimd-log".into())
        .spawn(move || write_out(&writing, every, out))
        .expect("spawning the log thread");
    (
        Logs(shared.clone()),
        Flushing {
            shared,
            thread: Some(thread),
        },
    )
}

fn write_out<W: Write>(shared: &Shared, every: Duration, mut out: W) {
    let mut spare = Vec::new();
    loop {
        let (closed, dropped) = {
            // Idle until a line comes (the first after a write-out wakes this thread),
            // then gather lines for up to `every`.
            let buffer = shared
                .written
                .wait_while(shared.lock(), |b| b.bytes.is_empty() && !b.closed)
                .unwrap_or_else(PoisonError::into_inner);
            let (mut buffer, _) = shared
                .written
                .wait_timeout_while(buffer, every, |b| {
                    !(b.urgent || b.closed || b.bytes.len() >= EAGER)
                })
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut buffer.bytes, &mut spare);
            buffer.urgent = false;
            (buffer.closed, std::mem::take(&mut buffer.dropped))
        };
        // A failing standard error has nowhere to report to: the lines are lost.
        let _ = out.write_all(&spare);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "scimd: {dropped} log lines were dropped: standard error took nothing for a while"
            );
        }
        let _ = out.flush();
        spare.clear();
        if closed {
            return;
        }
    }
}

/// One log line being handed over.
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.shared.lock();
        if buffer.bytes.len() + line.len() > LIMIT {
            buffer.dropped += 1;
            return Ok(line.len());
        }
        let was = buffer.bytes.len();
        buffer.bytes.extend_from_slice(line);
        let wake = self.urgent || was == 0 || (was < EAGER && buffer.bytes.len() >= EAGER);
        buffer.urgent |= self.urgent;
        drop(buffer);
        if wake {
            self.shared.written.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.0,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.0,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

impl Drop for Flushing {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.written.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` the test reads back, that can be made to take nothing.
    #[derive(Clone, Default)]
    struct Pipe {
        taken: Arc<Mutex<Vec<u8>>>,
        blocked: Arc<Mutex<()>>,
    }

    impl Write for Pipe {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _open = self.blocked.lock().unwrap();
            self.taken.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Pipe {
        fn text(&self) -> String {
            String::from_utf8(self.taken.lock().unwrap().clone()).unwrap()
        }
    }

    fn line(logs: &Logs, level: Level, text: &str) {
        let mut w = match level {
            Level::INFO => logs.make_writer(),
            _ => Line {
                shared: &logs.0,
                urgent: level <= Level::WARN,
            },
        };
        w.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_come_out_in_order_and_all_are_out_when_the_guard_drops() {
        let pipe = Pipe::default();
        let (logs, flushing) = buffered(pipe.clone());
        for i in 0..10_000 {
            line(&logs, Level::INFO, &format!("line {i}\n"));
        }
        drop(flushing);
        let text = pipe.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_000);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(*l, format!("line {i}"));
        }
    }

    /// Waits up to a minute for `pipe` to have taken `text`.
    fn taken(pipe: &Pipe, text: &str) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if pipe.text().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn a_line_waits_for_the_interval_and_a_warning_does_not() {
        let pipe = Pipe::default();
        let (logs, _flushing) = buffered(pipe.clone());
        line(&logs, Level::INFO, "quiet\n");
        assert!(taken(&pipe, "quiet"));

        let pipe = Pipe::default();
        let (logs, flushing) = writing_every(Duration::from_secs(3600), pipe.clone());
        line(&logs, Level::INFO, "first\n");
        line(&logs, Level::WARN, "loud\n");
        assert!(taken(&pipe, "first\nloud\n"));
        line(&logs, Level::INFO, "last\n");
        std::thread::sleep(Duration::from_millis(100));
        assert!(!pipe.text().contains("last"), "written before the hour");
        drop(flushing);
        assert_eq!(pipe.text(), "first\nloud\nlast\n");
    }

    #[test]
    fn a_pipe_that_takes_nothing_never_blocks_a_logger_and_the_drops_are_counted() {
        let pipe = Pipe::default();
        let (logs, flushing) = buffered(pipe.clone());
        let block = pipe.blocked.lock().unwrap();
        // The thread takes what is buffered now and blocks writing it.
        line(&logs, Level::WARN, "before\n");
        std::thread::sleep(FLUSH_EVERY);
        let text = "x".repeat(1023) + "\n";
        let lines = 2 * LIMIT / text.len();
        let started = std::time::Instant::now();
        for _ in 0..lines {
            line(&logs, Level::INFO, &text);
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(block);
        drop(flushing);
        let out = pipe.text();
        let kept = out.matches(&text).count();
        assert!(kept > 0 && kept <= LIMIT / text.len(), "{kept}");
        let dropped = lines - kept;
        assert!(
            out.contains(&format!("scimd: {dropped} log lines were dropped")),
            "{}",
            &out[out.len() - 200..]
        );
        assert!(out.starts_with("before\n"));
    }
}
