//! Lines a child process prints, collected by one background thread per
//! stream, readable at any time, and waited for with a deadline.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::WAIT;

/// The lines of one stream so far (shared with its reader thread).
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Starts a thread that reads `stream` to its end, line by line.
    pub fn read(stream: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&raw)
                            .trim_end_matches(['\n', '\r'])
                            .to_owned();
                        sink.0.lock().expect("lines lock").push(line);
                    }
                }
            }
        });
        lines
    }

    /// Everything so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("lines lock").clone()
    }

    /// Everything so far, one line after another.
    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// How many lines so far.
    pub fn len(&self) -> usize {
        self.0.lock().expect("lines lock").len()
    }

    /// Waits until a line at index `from` or later satisfies `pred`;
    /// returns its index and the line. Panics after [`WAIT`].
    pub fn wait_from(
        &self,
        from: usize,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> (usize, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.all();
            if let Some((i, line)) = all.iter().enumerate().skip(from).find(|(_, l)| pred(l)) {
                return (i, line.clone());
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; got {all:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a line satisfies `pred`; returns it.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_from(0, what, pred).1
    }

    /// Waits until some line contains `needle`.
    pub fn wait_contains(&self, needle: &str) -> String {
        self.wait_for(needle, |l| l.contains(needle))
    }
}
