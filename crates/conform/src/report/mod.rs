//! A finished run, and its three forms: the console report
//! ([`console::render`]), JSON ([`json::render`]) and JUnit XML
//! ([`junit::render`]), all written by hand (the workspace has no serde;
//! each is small, and each escapes everything it writes).

pub mod console;
pub mod html;
pub mod json;
pub mod junit;

use std::net::SocketAddr;
use std::time::Duration;

use crate::check::{CheckReport, Group, Level, Outcome};

/// The result of one run against one relay.
#[derive(Debug, Clone)]
pub struct Report {
    /// The relay under test.
    pub target: SocketAddr,
    /// Every check that ran (or was skipped), in order.
    pub results: Vec<CheckReport>,
    /// Groups skipped as a whole, and why (reported as one line).
    pub group_skips: Vec<(Group, String)>,
    /// How long the run took.
    pub duration: Duration,
    /// Datagrams the kit sent in all.
    pub datagrams_sent: u64,
    /// The faults of the lossy path, if the run had them.
    pub faults: Option<crate::lossy::FaultSettings>,
}

impl Report {
    /// Checks that passed.
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass))
    }

    /// Checks that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail { .. }))
    }

    /// Checks skipped (alone or with their group).
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip { .. }))
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }

    /// The ids of the failed checks, in order.
    pub fn failed_ids(&self) -> Vec<&'static str> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail { .. }))
            .map(|r| r.check.id)
            .collect()
    }

    /// Whether every MUST check passed or was skipped: the exit status is 0
    /// exactly then.
    pub fn must_passed(&self) -> bool {
        !self
            .results
            .iter()
            .any(|r| r.check.level == Level::Must && matches!(r.outcome, Outcome::Fail { .. }))
    }

    /// What was checked: `"client"` for a run of client checks, else
    /// `"relay"`.
    pub fn mode(&self) -> &'static str {
        if self
            .results
            .first()
            .is_some_and(|r| matches!(r.check.group, Group::Client | Group::ClientStructured))
        {
            "client"
        } else {
            "relay"
        }
    }

    /// Why `group` was skipped as a whole, if it was.
    pub fn group_skip(&self, group: Group) -> Option<&str> {
        self.group_skips
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, why)| why.as_str())
    }
}

/// The end of a relay or client run: the console report on stdout, the
/// JSON and JUnit files if asked for, and the exit status (0 when no MUST
/// check failed, 1 when one did, 2 when a file cannot be written).
pub fn finish(
    report: &Report,
    lang: udpchat_proto::Lang,
    json_file: Option<&std::path::Path>,
    junit_file: Option<&std::path::Path>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    print!("{}", console::render(report, lang));
    let files = [
        (json_file, json::render(report)),
        (junit_file, junit::render(report)),
    ];
    for (path, text) in files {
        if let Some(path) = path {
            if let Err(source) = std::fs::write(path, text) {
                let error = crate::Error::Write {
                    path: path.to_path_buf(),
                    source,
                };
                eprintln!("udpchat-conform: {error}");
                return ExitCode::from(2);
            }
        }
    }
    if report.must_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
