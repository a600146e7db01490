//! The class report as one self-contained HTML page: inline CSS, no
//! script, no external resource. A matrix of students × checks (columns
//! grouped by section, each marked MUST/SHOULD/MAY), each cell coloured
//! and marked with a symbol (readable without colour), a total per
//! student and per check, and below the matrix the evidence of every
//! failure, which its cell links to. Everything written is escaped.

use std::fmt::Write;

use udpchat_proto::Lang;

use crate::check::{Group, Outcome};
use crate::class::{Cell, ClassReport, StudentOutcome, TargetKind};
use crate::words::{group_heading, words};

/// `s` escaped for HTML text and attribute values; control characters
/// (which a page must not carry) are written as `\u{..}`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The page's fixed words in one language.
struct PageWords {
    title: &'static str,
    student: &'static str,
    all_must: &'static str,
    yes: &'static str,
    no: &'static str,
    not_run: &'static str,
    totals: &'static str,
    failures: &'static str,
    no_failures: &'static str,
    not_run_heading: &'static str,
    checks: &'static str,
    legend: &'static str,
    summary: &'static str,
}

fn page_words(lang: Lang) -> PageWords {
    match lang {
        Lang::En => PageWords {
            title: "udpchat-conform: class report",
            student: "Student",
            all_must: "all MUST passed",
            yes: "yes",
            no: "no",
            not_run: "not run",
            totals: "Totals (passed / failed / skipped)",
            failures: "Failures and their evidence",
            no_failures: "No check failed.",
            not_run_heading: "Not run",
            checks: "The checks",
            legend: "✓ passed · ✗ failed (click for the evidence) · – skipped or not run. Levels: MUST, SHOULD, MAY (PROTOCOL.md).",
            summary: "students passed every MUST check",
        },
        Lang::Zh => PageWords {
            title: "udpchat-conform：全班报告",
            student: "学生",
            all_must: "MUST 全部通过",
            yes: "是",
            no: "否",
            not_run: "未运行",
            totals: "合计（通过 / 失败 / 跳过）",
            failures: "失败项及其证据",
            no_failures: "没有检查失败。",
            not_run_heading: "未运行",
            checks: "检查列表",
            legend: "✓ 通过 · ✗ 失败（点击查看证据） · – 跳过或未运行。级别：MUST、SHOULD、MAY（见 PROTOCOL.md）。",
            summary: "名学生通过了所有 MUST 检查",
        },
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em;color:#111}
table.matrix{border-collapse:collapse;font-size:13px}
.matrix th,.matrix td{border:1px solid #999;padding:2px 4px;text-align:center}
.matrix th.name{text-align:left}
.matrix th.check{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;font-weight:normal}
.matrix th.group{background:#eee}
td.pass{background:#c8f0c8}
td.fail{background:#f6b8b8;font-weight:bold}
td.skip{background:#eeeeee;color:#555}
td.yes{background:#c8f0c8}
td.no{background:#f6b8b8}
td.num{font-variant-numeric:tabular-nums}
.lvl-MUST{font-weight:bold}
.lvl-SHOULD{font-style:italic}
section.failure{border-left:4px solid #c33;padding-left:.6em;margin:1em 0}
section.failure:target{background:#fff3c0}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:.4em}
small{color:#444}
";

/// The class report as an HTML page.
pub fn render(class: &ClassReport, lang: Lang) -> String {
    let w = words(lang);
    let p = page_words(lang);
    let lang_tag = match lang {
        Lang::En => "en",
        Lang::Zh => "zh",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{lang_tag}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(p.title),
        escape(p.title)
    );
    let _ = writeln!(
        out,
        "<p id=\"summary\"><span id=\"students-must-passed\">{}</span> / <span id=\"students-total\">{}</span> {} ({:.1} s)</p>",
        class.must_passed_count(),
        class.students.len(),
        escape(p.summary),
        class.duration.as_secs_f64()
    );
    let _ = writeln!(out, "<p class=\"legend\">{}</p>", escape(p.legend));

    // The head: the groups, then one column per check.
    out.push_str("<table class=\"matrix\">\n<thead>\n<tr>");
    let _ = write!(out, "<th rowspan=\"2\">{}</th>", escape(p.student));
    for group in Group::ALL {
        let n = class.checks.iter().filter(|c| c.group == group).count();
        if n > 0 {
            let _ = write!(
                out,
                "<th class=\"group\" colspan=\"{n}\">{}</th>",
                escape(group_heading(group, lang))
            );
        }
    }
    for word in [w.passed, w.failed, w.skipped, p.all_must] {
        let _ = write!(out, "<th rowspan=\"2\">{}</th>", escape(word));
    }
    out.push_str("</tr>\n<tr>");
    for check in &class.checks {
        let title = match lang {
            Lang::En => check.title.en,
            Lang::Zh => check.title.zh,
        };
        let _ = write!(
            out,
            "<th class=\"check\" title=\"{}\">{} <span class=\"lvl-{lvl}\">{lvl}</span> §{}</th>",
            escape(title),
            escape(check.id),
            escape(check.section),
            lvl = check.level.as_str()
        );
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");

    // One row per student.
    for (s, student) in class.students.iter().enumerate() {
        let target = match &student.target.kind {
            TargetKind::Relay { written, .. } => format!("relay {written}"),
            TargetKind::Client(words) => format!("client {}", words.join(" ")),
        };
        let _ = write!(
            out,
            "<tr id=\"student-{s}\"><th class=\"name\" scope=\"row\">{}<br><small>{}</small>",
            escape(&student.target.name),
            escape(&target)
        );
        if student.not_run().is_some() {
            let _ = write!(
                out,
                "<br><small><a href=\"#notrun-{s}\">{}</a></small>",
                escape(p.not_run)
            );
        }
        out.push_str("</th>");
        for (c, check) in class.checks.iter().enumerate() {
            match student.cell(check) {
                Cell::Pass => {
                    let _ = write!(
                        out,
                        "<td class=\"pass\" title=\"{}\">✓</td>",
                        escape(w.pass)
                    );
                }
                Cell::Fail => {
                    let _ = write!(
                        out,
                        "<td class=\"fail\" title=\"{}\"><a href=\"#f-{s}-{c}\">✗</a></td>",
                        escape(w.fail)
                    );
                }
                Cell::Skip => {
                    let why = skip_reason(&student.outcome, check.id).unwrap_or_default();
                    let _ = write!(
                        out,
                        "<td class=\"skip\" title=\"{}: {}\">–</td>",
                        escape(w.skip),
                        escape(&why)
                    );
                }
            }
        }
        let t = student.totals(&class.checks);
        let (must_class, must_word) = match student.must_passed() {
            Some(true) => ("yes", p.yes),
            Some(false) => ("no", p.no),
            None => ("skip", p.not_run),
        };
        let _ = writeln!(
            out,
            "<td class=\"num\" id=\"s{s}-passed\">{}</td><td class=\"num\" id=\"s{s}-failed\">{}</td><td class=\"num\" id=\"s{s}-skipped\">{}</td><td class=\"{must_class}\" id=\"s{s}-must\">{}</td></tr>",
            t.passed,
            t.failed,
            t.skipped,
            escape(must_word)
        );
    }
    out.push_str("</tbody>\n<tfoot>\n<tr>");
    let _ = write!(out, "<th class=\"name\">{}</th>", escape(p.totals));
    for (c, check) in class.checks.iter().enumerate() {
        let t = class.check_totals(check);
        let _ = write!(
            out,
            "<td class=\"num\" id=\"c{c}-totals\">{}/{}/{}</td>",
            t.passed, t.failed, t.skipped
        );
    }
    let _ = writeln!(
        out,
        "<td colspan=\"3\"></td><td class=\"num\" id=\"all-must\">{}/{}</td></tr>\n</tfoot>\n</table>",
        class.must_passed_count(),
        class.students.len()
    );

    // The evidence of every failure.
    let _ = writeln!(out, "<h2>{}</h2>", escape(p.failures));
    let mut any = false;
    for (s, student) in class.students.iter().enumerate() {
        let StudentOutcome::Ran(report) = &student.outcome else {
            continue;
        };
        for (c, check) in class.checks.iter().enumerate() {
            let Some(Outcome::Fail {
                expected,
                problem,
                transcript,
            }) = report
                .results
                .iter()
                .find(|r| r.check.id == check.id)
                .map(|r| &r.outcome)
            else {
                continue;
            };
            any = true;
            let title = match lang {
                Lang::En => check.title.en,
                Lang::Zh => check.title.zh,
            };
            let _ = writeln!(
                out,
                "<section class=\"failure\" id=\"f-{s}-{c}\">\n<h3>{} — {} [{} §{}] {}</h3>",
                escape(&student.target.name),
                escape(check.id),
                check.level.as_str(),
                escape(check.section),
                escape(title)
            );
            let _ = writeln!(
                out,
                "<p><b>{}:</b> {}</p>\n<p><b>{}:</b> {}</p>",
                escape(w.expected),
                escape(expected),
                escape(w.problem),
                escape(problem)
            );
            let _ = write!(
                out,
                "<details open><summary>{} ({})</summary><pre>",
                escape(w.datagrams),
                transcript.len()
            );
            for line in transcript {
                let _ = writeln!(out, "{}", escape(&line.to_string()));
            }
            let _ = writeln!(
                out,
                "</pre></details>\n<p><a href=\"#student-{s}\">↑ {}</a></p>\n</section>",
                escape(&student.target.name)
            );
        }
    }
    if !any {
        let _ = writeln!(out, "<p>{}</p>", escape(p.no_failures));
    }

    // Students whose checks did not run, and why.
    let not_run: Vec<_> = class
        .students
        .iter()
        .enumerate()
        .filter_map(|(s, st)| st.not_run().map(|why| (s, st, why)))
        .collect();
    if !not_run.is_empty() {
        let _ = writeln!(out, "<h2>{}</h2>\n<ul>", escape(p.not_run_heading));
        for (s, student, why) in not_run {
            let _ = writeln!(
                out,
                "<li id=\"notrun-{s}\"><b>{}</b>: {}</li>",
                escape(&student.target.name),
                escape(why)
            );
        }
        out.push_str("</ul>\n");
    }

    // The columns explained.
    let _ = writeln!(
        out,
        "<h2>{}</h2>\n<table class=\"matrix\">",
        escape(p.checks)
    );
    for check in &class.checks {
        let title = match lang {
            Lang::En => check.title.en,
            Lang::Zh => check.title.zh,
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"lvl-{lvl}\">{lvl}</td><td>§{}</td><td style=\"text-align:left\">{}</td></tr>",
            escape(check.id),
            escape(check.section),
            escape(title),
            lvl = check.level.as_str()
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

/// Why `id` was skipped for this student, if it was.
fn skip_reason(outcome: &StudentOutcome, id: &str) -> Option<String> {
    match outcome {
        StudentOutcome::Ran(report) => report.results.iter().find_map(|r| match &r.outcome {
            Outcome::Skip { why } if r.check.id == id => Some(why.clone()),
            _ => None,
        }),
        StudentOutcome::NoAnswer(why) => Some(why.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::check::CheckReport;
    use crate::class::{Student, Target};
    use crate::probe::{Direction, TranscriptLine};
    use crate::registry;
    use crate::report::Report;

    const EVIL: &str = "<script>alert('x')</script>";

    /// Three students: one who fails check 1 (with `<script>` in the
    /// evidence and the name), one who passes all, one client that never
    /// started. The columns: the relay checks, then the client checks.
    const NEVER_STARTED: &str = "the client exited before it joined (exit status 1)";
    fn class() -> ClassReport {
        let relay_checks = registry::all();
        let checks: Vec<_> = relay_checks
            .iter()
            .copied()
            .chain(registry::client())
            .collect();
        let addr = SocketAddr::from(([127, 0, 0, 1], 4000));
        let report = |fail: bool| Report {
            target: addr,
            results: relay_checks
                .iter()
                .enumerate()
                .map(|(i, check)| CheckReport {
                    check,
                    outcome: if fail && i == 1 {
                        Outcome::Fail {
                            expected: format!("OK {EVIL}"),
                            problem: "silence & more".to_owned(),
                            transcript: vec![TranscriptLine {
                                direction: Direction::Sent,
                                who: "ann".to_owned(),
                                bytes: format!("M ann {EVIL}").into_bytes(),
                            }],
                        }
                    } else if i == 2 {
                        Outcome::Skip {
                            why: "\"not implemented\"".to_owned(),
                        }
                    } else {
                        Outcome::Pass
                    },
                    duration: Duration::ZERO,
                })
                .collect(),
            group_skips: Vec::new(),
            duration: Duration::ZERO,
            datagrams_sent: 0,
            faults: None,
        };
        let target = |name: &str, line, kind| Target {
            name: name.to_owned(),
            kind,
            line,
        };
        let relay = TargetKind::Relay {
            written: "127.0.0.1:4000".to_owned(),
            addr,
        };
        ClassReport {
            students: vec![
                Student {
                    target: target(EVIL, 1, relay.clone()),
                    outcome: StudentOutcome::Ran(report(true)),
                },
                Student {
                    target: target("bob", 2, relay),
                    outcome: StudentOutcome::Ran(report(false)),
                },
                Student {
                    target: target("carol", 3, TargetKind::Client(vec!["./chat".to_owned()])),
                    outcome: StudentOutcome::NoAnswer(NEVER_STARTED.to_owned()),
                },
            ],
            checks,
            duration: Duration::from_millis(1),
        }
    }

    #[test]
    fn escaping_covers_markup_quotes_and_controls() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("esc\u{1b}[2J"), "esc\\u{1b}[2J");
    }

    #[test]
    fn no_script_from_a_name_or_the_evidence_reaches_the_page() {
        let page = render(&class(), Lang::En);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        // The evidence: expected, problem and the datagram.
        assert!(page.contains("OK &lt;script&gt;"), "{page}");
        assert!(page.contains("silence &amp; more"));
        assert!(page.contains("M ann &lt;script&gt;"), "{page}");
        assert!(!page.contains("http"), "no external resource");
    }

    #[test]
    fn totals_per_student_and_per_check() {
        let class = class();
        // Relay checks; the client checks are the columns after them.
        let n = registry::all().len();
        let nc = registry::client().len();
        let page = render(&class, Lang::En);
        let cell = |id: &str| {
            let start = page.find(&format!("id=\"{id}\"")).expect(id);
            let rest = &page[start..];
            let open = rest.find('>').expect("tag") + 1;
            let close = rest.find('<').expect("end");
            rest[open..close].to_owned()
        };
        assert_eq!(cell("s0-passed"), (n - 2).to_string());
        assert_eq!(cell("s0-failed"), "1");
        assert_eq!(cell("s0-skipped"), "1");
        assert_eq!(cell("s0-must"), "no");
        assert_eq!(cell("s1-passed"), (n - 1).to_string());
        assert_eq!(cell("s1-must"), "yes");
        // The client row counts only the client checks; the relay columns
        // count only the relays.
        assert_eq!(cell("s2-skipped"), nc.to_string());
        assert_eq!(cell("s2-passed"), "0");
        assert_eq!(cell("s2-must"), "no");
        assert_eq!(cell("c0-totals"), "2/0/0");
        assert_eq!(cell("c1-totals"), "1/1/0");
        assert_eq!(cell("c2-totals"), "0/0/2");
        assert_eq!(cell(&format!("c{n}-totals")), "0/0/1");
        assert_eq!(cell("all-must"), "1/3");
        // The failing cell links to its evidence, which is on the page.
        assert!(page.contains("<a href=\"#f-0-1\">✗</a>"));
        assert!(page.contains("id=\"f-0-1\""));
        assert_eq!(page.matches("class=\"fail\"").count(), 1);
        assert!(page.contains(NEVER_STARTED));
    }

    #[test]
    fn the_json_has_the_same_numbers() {
        let class = class();
        let json = crate::class::json::render(&class);
        let n = registry::all().len();
        let nc = registry::client().len();
        assert!(json.contains(&format!(
            "\"name\":\"<script>alert('x')</script>\",\"kind\":\"relay\",\"target\":\"127.0.0.1:4000\",\"line\":1,\"status\":\"ran\",\"passed\":{},\"failed\":1,\"skipped\":1,\"must_passed\":false",
            n - 2
        )), "{json}");
        assert!(json.contains(&format!(
            "\"status\":\"no-answer\",\"passed\":0,\"failed\":0,\"skipped\":{nc},\"must_passed\":false"
        )));
        assert!(json.contains("\"students_total\":3,\"students_must_passed\":1"));
    }

    #[test]
    fn chinese_pages_use_chinese_words() {
        let page = render(&class(), Lang::Zh);
        assert!(page.contains("<html lang=\"zh\">"));
        assert!(page.contains("MUST 全部通过"));
        assert!(page.contains(">否</td>"));
    }
}
