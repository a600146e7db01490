//! What a check is (its stable id, the PROTOCOL.md section it tests, its
//! level, its title) and how one run of it ends.

use std::fmt;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::probe::TranscriptLine;

/// How strongly PROTOCOL.md asks for what a check tests (RFC 2119 words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// MUST: a failure makes the exit status 1.
    Must,
    /// SHOULD: reported, but does not change the exit status.
    Should,
    /// MAY: optional behaviour; reported only.
    May,
}

impl Level {
    /// The word as the report writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        }
    }
}

/// The groups a report is divided into. A group can be skipped as a whole
/// (a classic-only relay skips [`Group::Structured`] with one line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `N`, `M`, `Q` and the wire rules every relay keeps (sections 2, 3, 6, 9).
    Classic,
    /// `WHO`, `MSG`, `PING`, `NICK` (section 7).
    Extensions,
    /// `HELLO`, `SAY`, `EVENT`, ... (section 8).
    Structured,
    /// What a client sends and prints (`udpchat-conform client`).
    Client,
    /// What a structured client does (`udpchat-conform client`): skipped
    /// as one group for a client that joins with `N`.
    ClientStructured,
}

impl Group {
    /// Every group, in report order.
    pub const ALL: [Group; 5] = [
        Group::Classic,
        Group::Extensions,
        Group::Structured,
        Group::Client,
        Group::ClientStructured,
    ];

    /// A stable name for machine-readable reports.
    pub fn id(self) -> &'static str {
        match self {
            Group::Classic => "classic",
            Group::Extensions => "extensions",
            Group::Structured => "structured",
            Group::Client => "client",
            Group::ClientStructured => "client-structured",
        }
    }
}

/// A text in English and Chinese.
#[derive(Debug, Clone, Copy)]
pub struct Title {
    /// English.
    pub en: &'static str,
    /// Simplified Chinese.
    pub zh: &'static str,
}

/// Why a check did not pass: the early exit of a check function (`?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPassed {
    /// The relay did something PROTOCOL.md forbids, or not what it requires.
    Fail {
        /// What PROTOCOL.md says should have happened.
        expected: String,
        /// What happened instead, in one sentence.
        problem: String,
    },
    /// The check could not be carried out (and says why): not a failure.
    Skip(String),
}

impl NotPassed {
    /// A failure: `expected` (what should have happened), `problem` (what did).
    pub fn fail(expected: impl Into<String>, problem: impl Into<String>) -> NotPassed {
        NotPassed::Fail {
            expected: expected.into(),
            problem: problem.into(),
        }
    }
}

/// What one check function returns: `Ok(())` is a pass.
pub type CheckResult = Result<(), NotPassed>;

/// One conformance check.
pub struct Check {
    /// Stable id, e.g. `classic.join.ok`; PROTOCOL.md names it in its
    /// table *Conformance checks* (a test keeps the two in step).
    pub id: &'static str,
    /// The PROTOCOL.md section it tests, e.g. `"6"` or `"3 Message text"`.
    pub section: &'static str,
    /// MUST, SHOULD or MAY.
    pub level: Level,
    /// Which part of the report it belongs to.
    pub group: Group,
    /// One line saying what it checks.
    pub title: Title,
    /// Runs it: fresh sockets, unique nicknames, every wait bounded.
    pub run: fn(&mut Ctx) -> CheckResult,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("id", &self.id).finish()
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Pass,
    /// It failed, with the evidence.
    Fail {
        /// What PROTOCOL.md says should have happened.
        expected: String,
        /// What happened instead.
        problem: String,
        /// Every datagram sent and received during the check, in order.
        transcript: Vec<TranscriptLine>,
    },
    /// It was not carried out, and why.
    Skip {
        /// Why (e.g. the relay does not speak the structured dialect).
        why: String,
    },
}

/// The result of one check in a report.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The check.
    pub check: &'static Check,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub duration: Duration,
}
