//! The fixed words of the reports, in English and Chinese (`--lang`).
//! Check titles come in both languages from the checks themselves; the
//! evidence (what was expected, what happened, the datagrams) stays in
//! English, the language of PROTOCOL.md.

use udpchat_proto::Lang;

use crate::check::Group;

/// The report's words in one language.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// `PASS`.
    pub pass: &'static str,
    /// `FAIL`.
    pub fail: &'static str,
    /// `SKIP`.
    pub skip: &'static str,
    /// Before what was expected.
    pub expected: &'static str,
    /// Before what happened.
    pub problem: &'static str,
    /// Before the datagrams.
    pub datagrams: &'static str,
    /// Before a skip's reason.
    pub why: &'static str,
    /// The first line: what is checked.
    pub checking: &'static str,
    /// The first line in client mode: the kit plays the relay at.
    pub checking_client: &'static str,
    /// `checks skipped as a group`.
    pub group_skipped: &'static str,
    /// For the summary line.
    pub passed: &'static str,
    /// For the summary line.
    pub failed: &'static str,
    /// For the summary line.
    pub skipped: &'static str,
    /// Last words when every MUST passed.
    pub verdict_ok: &'static str,
    /// Last words when a MUST failed.
    pub verdict_bad: &'static str,
    /// Before the fault settings of a run with faults.
    pub faults: &'static str,
}

/// The words of `lang`.
pub fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            pass: "PASS",
            fail: "FAIL",
            skip: "SKIP",
            expected: "expected",
            problem: "got",
            datagrams: "datagrams",
            why: "why",
            checking: "udpchat-conform: checking the relay at",
            checking_client: "udpchat-conform: checking a client, playing its relay at",
            group_skipped: "checks skipped",
            passed: "passed",
            failed: "failed",
            skipped: "skipped",
            verdict_ok: "every MUST check passed",
            verdict_bad: "a MUST check failed",
            faults: "repair under faults (only the checks of repair run), lossy path",
        },
        Lang::Zh => Words {
            pass: "通过",
            fail: "失败",
            skip: "跳过",
            expected: "应为",
            problem: "实际",
            datagrams: "数据报",
            why: "原因",
            checking: "udpchat-conform：正在检查服务器",
            checking_client: "udpchat-conform：正在检查客户端，扮演其服务器，地址",
            group_skipped: "项检查已跳过",
            passed: "项通过",
            failed: "项失败",
            skipped: "项跳过",
            verdict_ok: "所有 MUST 检查均已通过",
            verdict_bad: "有 MUST 检查未通过",
            faults: "故障下的修复（只运行修复相关的检查），有损路径",
        },
    }
}

/// A group's heading.
pub fn group_heading(group: Group, lang: Lang) -> &'static str {
    match (group, lang) {
        (Group::Classic, Lang::En) => "Classic dialect (sections 2, 3, 6, 9, 10)",
        (Group::Classic, Lang::Zh) => "经典协议（第 2、3、6、9、10 节）",
        (Group::Extensions, Lang::En) => "Extensions (section 7)",
        (Group::Extensions, Lang::Zh) => "扩展命令（第 7 节）",
        (Group::Structured, Lang::En) => "Structured dialect (section 8)",
        (Group::Structured, Lang::Zh) => "结构化协议（第 8 节）",
        (Group::Client, Lang::En) => "The client (sections 2, 3, 6, 9, 10, 12)",
        (Group::Client, Lang::Zh) => "客户端（第 2、3、6、9、10、12 节）",
        (Group::ClientStructured, Lang::En) => "A structured client (section 8)",
        (Group::ClientStructured, Lang::Zh) => "结构化客户端（第 8 节）",
    }
}

/// The summary line: `N passed, M failed, K skipped`.
pub fn summary_line(passed: usize, failed: usize, skipped: usize, lang: Lang) -> String {
    let w = words(lang);
    match lang {
        Lang::En => format!(
            "{passed} {}, {failed} {}, {skipped} {}",
            w.passed, w.failed, w.skipped
        ),
        Lang::Zh => format!(
            "{passed} {}，{failed} {}，{skipped} {}",
            w.passed, w.failed, w.skipped
        ),
    }
}
