//! Class mode: `udpchat-conform class FILE` checks every student's program
//! named in a class file, one after the other (each at the same bounded
//! rate as relay mode), and writes one HTML page (a matrix of students ×
//! checks, [`crate::report::html`]) and one JSON document ([`json`]).
//!
//! Layout: [`file`] (reading the class file), this module (running it and
//! the totals), [`json`] (the class as JSON).

pub mod file;
pub mod json;

use std::time::Duration;

use crate::check::{Check, Group, Outcome};
use crate::registry;
use crate::report::Report;
use crate::runner::{run, Options};

pub use file::{parse, FileError, Target, TargetKind};

/// How one student's program was checked.
#[derive(Debug, Clone)]
pub enum StudentOutcome {
    /// The checks ran: the report.
    Ran(Report),
    /// The program did not answer at all (or the kit could not open a
    /// socket): every check counts as failed to run, and "all MUST passed" is no.
    NoAnswer(String),
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct Student {
    /// The target as the class file names it.
    pub target: Target,
    /// How it went.
    pub outcome: StudentOutcome,
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// The check passed.
    Pass,
    /// The check failed.
    Fail,
    /// The check was skipped, or not run.
    Skip,
}

impl Student {
    /// The cell of `check` (skip if the check did not run for this student).
    pub fn cell(&self, check: &Check) -> Cell {
        match &self.outcome {
            StudentOutcome::Ran(report) => report
                .results
                .iter()
                .find(|r| r.check.id == check.id)
                .map_or(Cell::Skip, |r| match r.outcome {
                    Outcome::Pass => Cell::Pass,
                    Outcome::Fail { .. } => Cell::Fail,
                    Outcome::Skip { .. } => Cell::Skip,
                }),
            _ => Cell::Skip,
        }
    }

    /// Whether `check` is one for this kind of program: the `client.*`
    /// checks for a client, the others for a relay. A class of both has
    /// both kinds of columns; a row counts only its own.
    pub fn applies(&self, check: &Check) -> bool {
        let client_check = matches!(check.group, Group::Client | Group::ClientStructured);
        client_check == matches!(self.target.kind, TargetKind::Client(_))
    }

    /// Passed, failed and skipped checks, over those of `checks` that
    /// apply to this student.
    pub fn totals(&self, checks: &[&Check]) -> Totals {
        let mut totals = Totals::default();
        for check in checks.iter().filter(|c| self.applies(c)) {
            totals.add(self.cell(check));
        }
        totals
    }

    /// Whether every MUST check passed: `None` if nothing could be run
    /// (a kind of target the kit cannot check yet); a program that did
    /// not answer has not passed.
    pub fn must_passed(&self) -> Option<bool> {
        match &self.outcome {
            StudentOutcome::Ran(report) => Some(report.must_passed()),
            StudentOutcome::NoAnswer(_) => Some(false),
        }
    }

    /// Why the checks did not run, if they did not.
    pub fn not_run(&self) -> Option<&str> {
        match &self.outcome {
            StudentOutcome::Ran(_) => None,
            StudentOutcome::NoAnswer(why) => Some(why),
        }
    }
}

/// Counts of passes, failures and skips.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped or not run.
    pub skipped: usize,
}

impl Totals {
    fn add(&mut self, cell: Cell) {
        match cell {
            Cell::Pass => self.passed += 1,
            Cell::Fail => self.failed += 1,
            Cell::Skip => self.skipped += 1,
        }
    }
}

/// The whole class: every student in file order, and the checks (the columns).
#[derive(Debug, Clone)]
pub struct ClassReport {
    /// Rows.
    pub students: Vec<Student>,
    /// Columns, in report order.
    pub checks: Vec<&'static Check>,
    /// How long the whole class took.
    pub duration: Duration,
}

impl ClassReport {
    /// Passed, failed and skipped students for `check` (a column's totals).
    pub fn check_totals(&self, check: &Check) -> Totals {
        let mut totals = Totals::default();
        for student in self.students.iter().filter(|s| s.applies(check)) {
            totals.add(student.cell(check));
        }
        totals
    }

    /// How many students passed every MUST check.
    pub fn must_passed_count(&self) -> usize {
        self.students
            .iter()
            .filter(|s| s.must_passed() == Some(true))
            .count()
    }
}

/// The least wait for a client's answers (client mode's own default).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks every target in turn, calling `progress` before each.
pub fn run_class(
    targets: &[Target],
    timeout: Duration,
    mut progress: impl FnMut(usize, &Target),
) -> ClassReport {
    let started = std::time::Instant::now();
    let mut students = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        progress(i, target);
        let outcome = match &target.kind {
            TargetKind::Relay { addr, .. } => {
                match run(&Options {
                    target: *addr,
                    timeout,
                    only: Vec::new(),
                }) {
                    Ok(report) => StudentOutcome::Ran(report),
                    Err(e) => StudentOutcome::NoAnswer(e.to_string()),
                }
            }
            TargetKind::Client(command) => match crate::client::run(&crate::client::Options {
                command: command.clone(),
                timeout: timeout.max(CLIENT_TIMEOUT),
                name: None,
                only: Vec::new(),
            }) {
                Ok(report) => StudentOutcome::Ran(report),
                Err(e) => StudentOutcome::NoAnswer(e.to_string()),
            },
        };
        log::info!("{}: checked", target.name);
        students.push(Student {
            target: target.clone(),
            outcome,
        });
    }
    // The relay checks, then the client checks if the class has a client.
    let mut checks = registry::all();
    if targets
        .iter()
        .any(|t| matches!(t.kind, TargetKind::Client(_)))
    {
        checks.extend(registry::client());
    }
    ClassReport {
        students,
        checks,
        duration: started.elapsed(),
    }
}

/// `udpchat-conform class`: reads the file, checks every target, writes
/// the page (and the JSON). Exit 0 when every target was checked, 2 for a
/// bad file or an unwritable report.
pub fn main(args: &crate::cli::ClassArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let fail = |message: String| {
        eprintln!("udpchat-conform: {message}");
        ExitCode::from(2)
    };
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => {
            return fail(format!(
                "cannot read the class file {}: {e}",
                args.file.display()
            ))
        }
    };
    let targets = match parse(&text) {
        Ok(targets) => targets,
        Err(e) => return fail(format!("{}: {e}", args.file.display())),
    };
    let lang = args.lang.into();
    let total = targets.len();
    let class = run_class(&targets, args.timeout, |i, target| {
        println!("[{}/{total}] {}", i + 1, target.name);
    });
    for student in &class.students {
        let t = student.totals(&class.checks);
        let w = crate::words::words(lang);
        let verdict = match &student.outcome {
            StudentOutcome::Ran(report) if report.must_passed() => w.verdict_ok.to_owned(),
            StudentOutcome::Ran(_) => w.verdict_bad.to_owned(),
            StudentOutcome::NoAnswer(why) => {
                let not_checked = match lang {
                    udpchat_proto::Lang::En => "not checked",
                    udpchat_proto::Lang::Zh => "未检查",
                };
                format!("{not_checked}: {why}")
            }
        };
        println!(
            "{}: {}, {verdict}",
            student.target.name,
            crate::words::summary_line(t.passed, t.failed, t.skipped, lang)
        );
    }
    let mut files = vec![(&args.html, crate::report::html::render(&class, lang))];
    if let Some(json) = &args.json {
        files.push((json, json::render(&class)));
    }
    for (path, text) in files {
        if let Err(source) = std::fs::write(path, text) {
            return fail(
                crate::Error::Write {
                    path: path.clone(),
                    source,
                }
                .to_string(),
            );
        }
    }
    println!("{}", args.html.display());
    ExitCode::SUCCESS
}
