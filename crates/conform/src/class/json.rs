//! The class as one JSON object: the checks (columns) with their totals,
//! and the students (rows) with theirs and each one's full relay report
//! (the same object `relay --json` writes). The HTML page shows the same
//! numbers.

use std::fmt::Write;

use super::{ClassReport, StudentOutcome, TargetKind};
use crate::report::json::{render as report_json, string};

/// The class report as JSON, ending in a newline.
pub fn render(class: &ClassReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"tool\":\"udpchat-conform\",\"mode\":\"class\",\"students_total\":{},\"students_must_passed\":{},\"duration_ms\":{},\"checks\":[",
        class.students.len(),
        class.must_passed_count(),
        class.duration.as_millis()
    );
    for (i, check) in class.checks.iter().enumerate() {
        let t = class.check_totals(check);
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(
            out,
            "{comma}{{\"id\":{},\"section\":{},\"level\":{},\"group\":{},\"title\":{},\"title_zh\":{},\"passed\":{},\"failed\":{},\"skipped\":{}}}",
            string(check.id),
            string(check.section),
            string(check.level.as_str()),
            string(check.group.id()),
            string(check.title.en),
            string(check.title.zh),
            t.passed,
            t.failed,
            t.skipped
        );
    }
    out.push_str("],\"students\":[");
    for (i, student) in class.students.iter().enumerate() {
        let t = student.totals(&class.checks);
        let comma = if i > 0 { "," } else { "" };
        let (kind, target) = match &student.target.kind {
            TargetKind::Relay { written, .. } => ("relay", written.clone()),
            TargetKind::Client(words) => ("client", words.join(" ")),
        };
        let must = match student.must_passed() {
            Some(true) => "true",
            Some(false) => "false",
            None => "null",
        };
        let status = match &student.outcome {
            StudentOutcome::Ran(_) => "ran",
            StudentOutcome::NoAnswer(_) => "no-answer",
        };
        let _ = write!(
            out,
            "{comma}{{\"name\":{},\"kind\":\"{kind}\",\"target\":{},\"line\":{},\"status\":\"{status}\",\"passed\":{},\"failed\":{},\"skipped\":{},\"must_passed\":{must}",
            string(&student.target.name),
            string(&target),
            student.target.line,
            t.passed,
            t.failed,
            t.skipped
        );
        match &student.outcome {
            StudentOutcome::Ran(report) => {
                let _ = write!(out, ",\"report\":{}}}", report_json(report).trim_end());
            }
            StudentOutcome::NoAnswer(why) => {
                let _ = write!(out, ",\"why\":{}}}", string(why));
            }
        }
    }
    out.push_str("]}\n");
    out
}
