//! The readable report: grouped by section, one line per check, the
//! evidence under each failure, a group skipped as one line, and last the
//! line `N passed, M failed, K skipped`.

use std::fmt::Write;

use udpchat_proto::Lang;

use super::Report;
use crate::check::{Group, Outcome};
use crate::words::{group_heading, summary_line, words};

/// How many datagrams of a failed check's transcript are shown (the last
/// ones: the evidence is at the end); JSON and JUnit have them all.
const SHOWN: usize = 12;

/// The report as text, every line ending in `\n`.
pub fn render(report: &Report, lang: Lang) -> String {
    let w = words(lang);
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", w.checking, report.target);
    for group in Group::ALL {
        let results: Vec<_> = report
            .results
            .iter()
            .filter(|r| r.check.group == group)
            .collect();
        if results.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", group_heading(group, lang));
        if let Some(why) = report.group_skip(group) {
            let _ = writeln!(
                out,
                "  {}  {} {}: {why}",
                w.skip,
                results.len(),
                w.group_skipped
            );
            continue;
        }
        for r in results {
            let title = match lang {
                Lang::En => r.check.title.en,
                Lang::Zh => r.check.title.zh,
            };
            let head = format!(
                "{} [{} {}] {title}",
                r.check.id,
                r.check.level.as_str(),
                r.check.section
            );
            match &r.outcome {
                Outcome::Pass => {
                    let _ = writeln!(out, "  {}  {head}", w.pass);
                }
                Outcome::Skip { why } => {
                    let _ = writeln!(out, "  {}  {head}", w.skip);
                    let _ = writeln!(out, "        {}: {why}", w.why);
                }
                Outcome::Fail {
                    expected,
                    problem,
                    transcript,
                } => {
                    let _ = writeln!(out, "  {}  {head}", w.fail);
                    let _ = writeln!(out, "        {}: {expected}", w.expected);
                    let _ = writeln!(out, "        {}: {problem}", w.problem);
                    let _ = writeln!(out, "        {}:", w.datagrams);
                    let skip = transcript.len().saturating_sub(SHOWN);
                    if skip > 0 {
                        let _ = writeln!(out, "          ... ({skip})");
                    }
                    for line in &transcript[skip..] {
                        let _ = writeln!(out, "          {line}");
                    }
                }
            }
        }
    }
    let _ = writeln!(out);
    let verdict = if report.must_passed() {
        w.verdict_ok
    } else {
        w.verdict_bad
    };
    let _ = writeln!(out, "{verdict} ({:.1} s)", report.duration.as_secs_f64());
    let _ = writeln!(
        out,
        "{}",
        summary_line(report.passed(), report.failed(), report.skipped(), lang)
    );
    out
}
