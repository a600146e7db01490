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
    let checking = match report.mode() {
        "client" => w.checking_client,
        _ => w.checking,
    };
    let _ = writeln!(out, "{checking} {}", report.target);
    if let Some(faults) = &report.faults {
        let _ = writeln!(out, "{}: {faults}", w.faults);
    }
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::check::CheckReport;
    use crate::probe::{Direction, TranscriptLine};
    use crate::registry;

    fn report() -> Report {
        let all = registry::all();
        let structured: Vec<_> = all
            .iter()
            .filter(|c| c.group == Group::Structured)
            .collect();
        let mut results = vec![
            CheckReport {
                check: all[0],
                outcome: Outcome::Pass,
                duration: Duration::from_millis(3),
            },
            CheckReport {
                check: all[1],
                outcome: Outcome::Fail {
                    expected: "OK".to_owned(),
                    problem: "silence".to_owned(),
                    transcript: vec![TranscriptLine {
                        direction: Direction::Sent,
                        who: "ann".to_owned(),
                        bytes: b"M ann \x1b[2J".to_vec(),
                    }],
                },
                duration: Duration::from_millis(3),
            },
        ];
        for check in &structured {
            results.push(CheckReport {
                check,
                outcome: Outcome::Skip {
                    why: "no COOKIE".to_owned(),
                },
                duration: Duration::ZERO,
            });
        }
        Report {
            target: SocketAddr::from(([127, 0, 0, 1], 10024)),
            results,
            group_skips: vec![(Group::Structured, "no COOKIE".to_owned())],
            duration: Duration::from_millis(6),
            datagrams_sent: 1,
            faults: None,
        }
    }

    #[test]
    fn a_skipped_group_is_one_line_and_the_summary_is_last() {
        let report = report();
        let text = render(&report, Lang::En);
        let skipped = report.skipped();
        assert!(
            text.contains(&format!("  SKIP  {skipped} checks skipped: no COOKIE\n")),
            "{text}"
        );
        assert_eq!(text.matches("SKIP").count(), 1, "{text}");
        assert_eq!(
            text.lines().last(),
            Some(format!("1 passed, 1 failed, {skipped} skipped").as_str())
        );
        assert!(text.contains("a MUST check failed"));
    }

    #[test]
    fn evidence_is_shown_without_raw_control_characters() {
        let text = render(&report(), Lang::En);
        assert!(text.contains("ann -> \"M ann \\u{1b}[2J\""), "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn chinese_reports_use_chinese_words() {
        let text = render(&report(), Lang::Zh);
        assert!(text.contains("通过  classic.join.ok"), "{text}");
        assert!(text.contains("失败  "), "{text}");
        assert!(text
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("1 项通过，1 项失败")));
    }
}
