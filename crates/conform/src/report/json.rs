//! The report as JSON (one object; the format is documented in README.md).

use std::fmt::Write;

use super::Report;
use crate::check::Outcome;
use crate::probe::Direction;

/// `s` as a JSON string literal, quotes included (RFC 8259: `"` and `\`
/// escaped, every control character as `\uXXXX` or its short form).
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole report as one JSON object, ending in a newline.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"tool\":\"udpchat-conform\",\"mode\":{},\"target\":{},\"passed\":{},\"failed\":{},\"skipped\":{},\"must_passed\":{},\"duration_ms\":{},\"datagrams_sent\":{},",
        string(report.mode()),
        string(&report.target.to_string()),
        report.passed(),
        report.failed(),
        report.skipped(),
        report.must_passed(),
        report.duration.as_millis(),
        report.datagrams_sent,
    );
    match &report.faults {
        Some(f) => {
            let _ = write!(
                out,
                "\"faults\":{{\"loss\":{},\"dup\":{},\"reorder\":{},\"seed\":{}}},",
                f.loss, f.dup, f.reorder, f.seed
            );
        }
        None => out.push_str("\"faults\":null,"),
    }
    out.push_str("\"group_skips\":[");
    for (i, (group, why)) in report.group_skips.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(
            out,
            "{comma}{{\"group\":{},\"why\":{}}}",
            string(group.id()),
            string(why)
        );
    }
    out.push_str("],\"checks\":[");
    for (i, r) in report.results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let c = r.check;
        let _ = write!(
            out,
            "{{\"id\":{},\"section\":{},\"level\":{},\"group\":{},\"title\":{},\"title_zh\":{},\"duration_ms\":{},",
            string(c.id),
            string(c.section),
            string(c.level.as_str()),
            string(c.group.id()),
            string(c.title.en),
            string(c.title.zh),
            r.duration.as_millis()
        );
        match &r.outcome {
            Outcome::Pass => out.push_str("\"outcome\":\"pass\"}"),
            Outcome::Skip { why } => {
                let _ = write!(out, "\"outcome\":\"skip\",\"why\":{}}}", string(why));
            }
            Outcome::Fail {
                expected,
                problem,
                transcript,
            } => {
                let _ = write!(
                    out,
                    "\"outcome\":\"fail\",\"expected\":{},\"problem\":{},\"transcript\":[",
                    string(expected),
                    string(problem)
                );
                for (j, line) in transcript.iter().enumerate() {
                    let comma = if j > 0 { "," } else { "" };
                    let direction = match line.direction {
                        Direction::Sent => "sent",
                        Direction::Received => "received",
                    };
                    let utf8 = std::str::from_utf8(&line.bytes).is_ok();
                    let _ = write!(
                        out,
                        "{comma}{{\"direction\":\"{direction}\",\"who\":{},\"bytes\":{},\"utf8\":{utf8},\"text\":{}}}",
                        string(&line.who),
                        line.bytes.len(),
                        string(&String::from_utf8_lossy(&line.bytes))
                    );
                }
                out.push_str("]}");
            }
        }
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("x\n\u{1b}[2J\u{7f}"), r#""x\n\u001b[2J\u007f""#);
        assert_eq!(string("你好 👋"), "\"你好 👋\"");
    }
}
