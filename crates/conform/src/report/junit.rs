//! The report as JUnit XML, the format CI systems show: one `testsuite`
//! per group, one `testcase` per check (`failure` with the evidence,
//! `skipped` with the reason).

use std::fmt::Write;

use super::Report;
use crate::check::{Group, Outcome};

/// `s` escaped for XML text and attribute values. Characters XML 1.0
/// cannot hold at all (C0 controls but tab, LF and CR; U+FFFE, U+FFFF) are
/// written as `\u{..}` instead.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The whole report as a JUnit XML document.
pub fn render(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"udpchat-conform {} {}{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        report.mode(),
        escape(&report.target.to_string()),
        report
            .faults
            .map(|f| format!(" {f}"))
            .unwrap_or_default(),
        report.results.len(),
        report.failed(),
        report.skipped(),
        report.duration.as_secs_f64()
    );
    for group in Group::ALL {
        let results: Vec<_> = report
            .results
            .iter()
            .filter(|r| r.check.group == group)
            .collect();
        if results.is_empty() {
            continue;
        }
        let failures = results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail { .. }))
            .count();
        let skipped = results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Skip { .. }))
            .count();
        let time: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            group.id(),
            results.len()
        );
        for r in results {
            let c = r.check;
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
                group.id(),
                escape(&format!(
                    "{} [{} {}] {}",
                    c.id,
                    c.level.as_str(),
                    c.section,
                    c.title.en
                )),
                r.duration.as_secs_f64()
            );
            match &r.outcome {
                Outcome::Pass => {}
                Outcome::Skip { why } => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", escape(why));
                }
                Outcome::Fail {
                    expected,
                    problem,
                    transcript,
                } => {
                    let mut body = format!("expected: {expected}\ngot: {problem}\ndatagrams:\n");
                    for line in transcript {
                        let _ = writeln!(body, "  {line}");
                    }
                    let _ = write!(
                        out,
                        "<failure message=\"{}\" type=\"{}\">{}</failure>",
                        escape(problem),
                        c.level.as_str(),
                        escape(&body)
                    );
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_controls_are_escaped() {
        assert_eq!(
            escape("<a & 'b'>\"c\""),
            "&lt;a &amp; &apos;b&apos;&gt;&quot;c&quot;"
        );
        assert_eq!(escape("esc \u{1b} tab\t"), "esc \\u{1b} tab\t");
    }
}
