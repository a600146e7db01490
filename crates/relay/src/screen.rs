//! Where the console's lines go: above the prompt while the line editor is
//! up, else plainly to standard output (answers, the room view) and
//! standard error (the log).
//!
//! rustyline's external printer hands a line to the editor through a
//! channel of one slot that the editor empties only while it waits for a
//! key, so printing through it can block. The event loop must never
//! block on the console: it puts lines into a bounded queue
//! ([`QUEUE`]) without waiting, and a printer thread of its own feeds them
//! to the editor, several at a time. If the queue is full (a flood of chat
//! faster than the terminal draws), lines are dropped and counted, and the
//! count is shown once there is room again.

use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustyline::ExternalPrinter;

/// Lines waiting for the printer thread at most.
const QUEUE: usize = 4096;

/// Lines drawn in one print at most.
const BATCH: usize = 256;

/// How long [`Screen::detach`] waits for queued lines to be drawn.
const DRAIN: Duration = Duration::from_secs(1);

/// A handle to the console's screen; cheap to clone, shared by the event
/// loop, the console thread and the logger.
#[derive(Clone, Default)]
pub struct Screen {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The queue to the printer thread while the editor is up.
    editor: Mutex<Option<Attached>>,
    /// Lines dropped because the queue was full, not yet reported.
    dropped: AtomicU64,
    /// The console waits in the background: no room view meanwhile.
    paused: AtomicBool,
}

struct Attached {
    queue: SyncSender<String>,
    thread: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Screen {
    /// Whether lines go above a line editor's prompt.
    pub fn has_editor(&self) -> bool {
        lock(&self.inner.editor).is_some()
    }

    /// From now on, lines go above the prompt through `printer`.
    pub fn attach(&self, printer: Box<dyn ExternalPrinter + Send>) -> io::Result<()> {
        let (queue, lines) = mpsc::sync_channel(QUEUE);
        let thread = thread::Builder::new()
            .name("console-printer".into())
            .spawn(move || print_lines(printer, &lines))?;
        *lock(&self.inner.editor) = Some(Attached { queue, thread });
        Ok(())
    }

    /// Lines go straight to stdout and stderr again, once the queued ones
    /// are drawn (waiting at most [`DRAIN`]).
    pub fn detach(&self) {
        let Some(Attached { queue, thread }) = lock(&self.inner.editor).take() else {
            return;
        };
        drop(queue); // the printer thread ends when the queue is empty
        let deadline = Instant::now() + DRAIN;
        while !thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
        self.report_dropped(None);
    }

    /// Whether the room view is on: an editor is up and in the foreground.
    pub fn shows_room(&self) -> bool {
        self.has_editor() && !self.inner.paused.load(Ordering::Relaxed)
    }

    /// The console waits in the background (`true`) or is back (`false`).
    /// Meanwhile the room is not shown: its lines would land in the
    /// middle of the shell's. Returns whether this changed anything.
    pub fn set_paused(&self, paused: bool) -> bool {
        self.inner.paused.swap(paused, Ordering::Relaxed) != paused
    }

    /// A console line (an answer, the room): above the prompt, or stdout.
    pub fn line(&self, text: &str) {
        self.send(text, Stream::Out);
    }

    /// A log line: above the prompt, or stderr.
    pub fn log(&self, text: &str) {
        self.send(text, Stream::Err);
    }

    fn send(&self, text: &str, stream: Stream) {
        let editor = lock(&self.inner.editor);
        match editor.as_ref() {
            // In the background the editor is stuck in a read that will
            // fail; printing through it would draw its prompt into the
            // shell's screen.
            Some(_) if self.inner.paused.load(Ordering::Relaxed) => {
                drop(editor);
                write_line(text, stream);
            }
            Some(attached) => {
                self.report_dropped(Some(&attached.queue));
                match attached.queue.try_send(text.to_owned()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        drop(editor);
                        write_line(text, stream);
                    }
                }
            }
            None => {
                drop(editor);
                write_line(text, stream);
            }
        }
    }

    /// Says how many lines were dropped, if any, once there is room.
    fn report_dropped(&self, queue: Option<&SyncSender<String>>) {
        let dropped = self.inner.dropped.swap(0, Ordering::Relaxed);
        if dropped == 0 {
            return;
        }
        let text = format!("({dropped} console lines not shown: they came faster than the terminal draws; the transcript and the log file have them)");
        match queue {
            Some(queue) => {
                if queue.try_send(text).is_err() {
                    self.inner.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
            }
            None => write_line(&text, Stream::Err),
        }
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// One locked write per line, so lines never interleave.
fn write_line(text: &str, stream: Stream) {
    match stream {
        Stream::Out => {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        Stream::Err => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{text}");
        }
    }
}

/// The printer thread: every line queued so far in one print, so a burst
/// redraws the prompt once.
fn print_lines(mut printer: Box<dyn ExternalPrinter + Send>, lines: &Receiver<String>) {
    while let Ok(first) = lines.recv() {
        let mut text = first;
        text.push('\n');
        // Bounded: a steady stream still gets drawn in pieces.
        for more in lines.try_iter().take(BATCH - 1) {
            text.push_str(&more);
            text.push('\n');
        }
        if printer.print(text.clone()).is_err() {
            write_line(text.trim_end_matches('\n'), Stream::Out);
        }
    }
}

/// The log's writer while the editor is up (`env_logger`'s
/// `Target::Pipe`): whole lines go to [`Screen::log`].
pub struct LogPipe {
    screen: Screen,
    partial: Vec<u8>,
}

impl LogPipe {
    /// A writer that hands each finished line to `screen`.
    pub fn new(screen: Screen) -> LogPipe {
        LogPipe {
            screen,
            partial: Vec::new(),
        }
    }
}

impl io::Write for LogPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            self.screen.log(text.trim_end_matches('\r'));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An external printer that records what it was given.
    struct Recording(Arc<Mutex<Vec<String>>>);

    impl ExternalPrinter for Recording {
        fn print(&mut self, msg: String) -> rustyline::Result<()> {
            lock(&self.0).push(msg);
            Ok(())
        }
    }

    #[test]
    fn lines_and_whole_log_lines_go_above_the_prompt_while_attached() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let screen = Screen::default();
        assert!(!screen.has_editor());
        screen
            .attach(Box::new(Recording(Arc::clone(&seen))))
            .unwrap();
        assert!(screen.has_editor());
        screen.line("alice: hi");
        let mut log = LogPipe::new(screen.clone());
        // A log record may arrive in pieces: only whole lines are printed.
        log.write_all(b"[WARN] refused 127.0.0.1:9").unwrap();
        log.write_all(b": not-joined\n").unwrap();
        wait_until(|| lock(&seen).concat().matches('\n').count() == 2);
        screen.detach();
        assert!(!screen.has_editor());
        let printed: String = lock(&seen).concat();
        assert_eq!(
            printed,
            "alice: hi\n[WARN] refused 127.0.0.1:9: not-joined\n"
        );
    }

    /// A printer that blocks until told to go on, like rustyline's while
    /// the editor is busy. It counts the prints it has begun.
    struct Stuck {
        gate: Arc<Mutex<()>>,
        begun: Arc<AtomicU64>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl ExternalPrinter for Stuck {
        fn print(&mut self, msg: String) -> rustyline::Result<()> {
            self.begun.fetch_add(1, Ordering::SeqCst);
            let _wait = lock(&self.gate);
            lock(&self.seen).push(msg);
            Ok(())
        }
    }

    /// Polls `done` until it holds, for at most 20 s (a busy machine).
    fn wait_until(done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(done(), "timed out");
    }

    #[test]
    fn a_stuck_editor_never_blocks_the_sender_and_drops_are_counted() {
        let gate = Arc::new(Mutex::new(()));
        let begun = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = lock(&gate);
        let screen = Screen::default();
        screen
            .attach(Box::new(Stuck {
                gate: Arc::clone(&gate),
                begun: Arc::clone(&begun),
                seen: Arc::clone(&seen),
            }))
            .unwrap();
        // The printer thread takes the first line and is stuck printing it.
        screen.line("first");
        wait_until(|| begun.load(Ordering::SeqCst) == 1);
        let started = Instant::now();
        for i in 0..QUEUE + 500 {
            screen.line(&format!("line {i}"));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // The queue holds QUEUE lines; the rest are counted, not waited for.
        assert_eq!(screen.inner.dropped.load(Ordering::Relaxed), 500);
        drop(closed);
        // Room again once the queued lines are drawn: the next line brings
        // the count with it.
        let drawn = || lock(&seen).concat().matches('\n').count();
        wait_until(|| drawn() == 1 + QUEUE);
        screen.line("after");
        wait_until(|| lock(&seen).concat().ends_with("after\n"));
        screen.detach();
        let printed: String = lock(&seen).concat();
        assert!(
            printed.contains("\n(500 console lines not shown"),
            "{printed}"
        );
        assert!(printed.ends_with("after\n"), "{printed}");
    }
}
