//! End to end: `udpchat-conform class FILE` against a class of our relay
//! and deliberately broken relays (support::broken_relay): exit 0, one
//! HTML page and one JSON document with the same numbers; the page
//! rendered by headless Chromium shows those numbers too.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use udpchat_conform::registry;

use crate::support::broken_relay::{BrokenRelay, Faults};
use crate::support::{Relay, TempFile};

const CONFORM_BIN: &str = env!("CARGO_BIN_EXE_udpchat-conform");

/// Runs `udpchat-conform class` on `file_text` (with `--timeout 5s` unless
/// `extra` has one); returns the output, the page and the JSON.
fn run_class(file_text: &str, extra: &[&str]) -> (Output, String, String) {
    let file = TempFile::new("class.txt");
    let html = TempFile::new("class.html");
    let json = TempFile::new("class.json");
    std::fs::write(&file.0, file_text).expect("write the class file");
    let out = Command::new(CONFORM_BIN)
        .arg("class")
        .arg(&file.0)
        .arg("--html")
        .arg(&html.0)
        .arg("--json")
        .arg(&json.0)
        .args(if extra.contains(&"--timeout") {
            &[][..]
        } else {
            &["--timeout", "5s"][..]
        })
        .args(extra)
        .output()
        .expect("run udpchat-conform class");
    let page = std::fs::read_to_string(&html.0).unwrap_or_default();
    let json = std::fs::read_to_string(&json.0).unwrap_or_default();
    (out, page, json)
}

/// The numbers the JSON gives student `name`: passed, failed, skipped and
/// must_passed, as written.
fn student_numbers(json: &str, name: &str) -> [String; 4] {
    let start = json
        .find(&format!("{{\"name\":\"{name}\""))
        .unwrap_or_else(|| panic!("{name} in {json}"));
    let rest = &json[start..];
    ["passed", "failed", "skipped", "must_passed"].map(|key| field(rest, key))
}

/// The first `"key":value` in `text` (a number, true, false or null).
fn field(text: &str, key: &str) -> String {
    let pattern = format!("\"{key}\":");
    let start = text.find(&pattern).unwrap_or_else(|| panic!("{key}")) + pattern.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The text of the element with `id` in an HTML document (up to the next tag).
fn element_text(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("id {id} in the page"));
    let rest = &html[start..];
    let open = rest.find('>').expect("tag end") + 1;
    let close = open + rest[open..].find('<').expect("next tag");
    rest[open..close].to_owned()
}

/// The page's numbers agree with the JSON: every student's totals and
/// verdict, every check's totals.
fn assert_page_matches_json(page: &str, json: &str, names: &[&str]) {
    for (s, name) in names.iter().enumerate() {
        let [passed, failed, skipped, must] = student_numbers(json, name);
        assert_eq!(
            element_text(page, &format!("s{s}-passed")),
            passed,
            "{name}"
        );
        assert_eq!(
            element_text(page, &format!("s{s}-failed")),
            failed,
            "{name}"
        );
        assert_eq!(
            element_text(page, &format!("s{s}-skipped")),
            skipped,
            "{name}"
        );
        let word = match must.as_str() {
            "true" => "yes",
            "false" => "no",
            _ => "not run",
        };
        assert_eq!(element_text(page, &format!("s{s}-must")), word, "{name}");
    }
    for (c, check) in registry::all().iter().enumerate() {
        let start = json
            .find(&format!("{{\"id\":\"{}\"", check.id))
            .expect("the check in the JSON");
        let rest = &json[start..];
        let want = format!(
            "{}/{}/{}",
            field(rest, "passed"),
            field(rest, "failed"),
            field(rest, "skipped")
        );
        assert_eq!(
            element_text(page, &format!("c{c}-totals")),
            want,
            "{}",
            check.id
        );
    }
    assert_eq!(
        element_text(page, "all-must"),
        format!(
            "{}/{}",
            field(json, "students_must_passed"),
            field(json, "students_total")
        )
    );
}

/// A class of four relays (ours, and three with one bug each) and a client
/// (ours): every target is checked, the page and the JSON agree, each broken
/// relay fails exactly its checks, and a name with markup is escaped.
#[test]
fn conform_class_grades_a_class_into_one_page_and_one_json() {
    // Default limits (4 members per address): the kit spreads its members
    // over 127.0.0.2-40, so they do not slow the run.
    let ours = Relay::start(&[]);
    let trims = BrokenRelay::start(Faults {
        trims_spaces: true,
        ..Faults::default()
    });
    let silent_leave = BrokenRelay::start(Faults {
        no_leave_notice: true,
        ..Faults::default()
    });
    let trusting = BrokenRelay::start(Faults {
        trusts_nick_in_m: true,
        ..Faults::default()
    });
    let file = format!(
        "# class 3b, homework 2\n\nalice relay {}\nbob relay {}  # trims spaces\n<b>carol</b> relay {}\ndan relay {}\n\nerin client {} --relay {{addr}} --nick erin\n",
        ours.addr,
        trims.addr,
        silent_leave.addr,
        trusting.addr,
        env!("CARGO_BIN_EXE_udpchat")
    );
    let started = Instant::now();
    let (out, page, json) = run_class(&file, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("class of 4 relays checked in {:?}", started.elapsed());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = registry::all().len();
    let structured = registry::all()
        .iter()
        .filter(|c| c.group == udpchat_conform::Group::Structured)
        .count();
    // Ours passes everything; the broken ones are classic only (the
    // structured group skipped) and fail their checks.
    assert_eq!(
        student_numbers(&json, "alice"),
        [total.to_string(), "0".into(), "0".into(), "true".into()],
        "{json}"
    );
    let classic = total - structured;
    for (name, failed) in [("bob", 1), ("<b>carol</b>", 1), ("dan", 2)] {
        assert_eq!(
            student_numbers(&json, name),
            [
                (classic - failed).to_string(),
                failed.to_string(),
                structured.to_string(),
                "false".into()
            ],
            "{name}: {json}"
        );
    }
    // Our client, a client line of the class: every client check passes
    // (its row counts only the client checks).
    assert_eq!(
        student_numbers(&json, "erin"),
        [
            registry::client().len().to_string(),
            "0".into(),
            "0".into(),
            "true".into()
        ],
        "{json}"
    );
    assert!(json.contains("\"students_total\":5,\"students_must_passed\":2"));
    // The page: self-contained, escaped, the failures' evidence linked.
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        !page.contains("<script") && !page.contains("src="),
        "{page}"
    );
    assert!(!page.contains("<b>carol</b>"));
    assert!(page.contains("&lt;b&gt;carol&lt;/b&gt;"));
    assert_eq!(page.matches("<td class=\"fail\"").count(), 4);
    assert!(page.contains("classic.text.spaces-kept"));
    assert!(page.contains("two leading"), "the evidence is on the page");
    assert_page_matches_json(
        &page,
        &json,
        &["alice", "bob", "<b>carol</b>", "dan", "erin"],
    );
    assert!(stdout.contains("[5/5] erin"), "{stdout}");
}

/// Bad class files: exit 2, the line named, no page written.
#[test]
fn conform_class_refuses_a_bad_file_naming_the_line() {
    let (out, page, _) = run_class("# ok\nalice relay 127.0.0.1:9\nbob relay\n", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 3: \"bob relay\" is not a target"),
        "{stderr}"
    );
    assert!(page.is_empty());
    let (out, _, _) = run_class("alice server 127.0.0.1:9\n", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 1: \"server\""), "{stderr}");
}

/// A relay that does not answer is a row that says so (every check not
/// run, "all MUST passed" no), and the class still exits 0.
#[test]
fn conform_class_reports_a_silent_relay_as_a_row() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let file = format!("ghost relay {}\n", silent.local_addr().expect("bound"));
    let (out, page, json) = run_class(&file, &["--timeout", "200ms", "--lang", "zh"]);
    assert_eq!(out.status.code(), Some(0));
    let total = registry::all().len();
    assert_eq!(
        student_numbers(&json, "ghost"),
        ["0".into(), "0".into(), total.to_string(), "false".into()]
    );
    assert!(json.contains("no answer from"), "{json}");
    assert!(page.contains("<html lang=\"zh\">"));
    assert_eq!(element_text(&page, "s0-must"), "否");
}

/// Headless Chromium renders the page of a small class, and the numbers
/// it shows (read from the DOM it dumps) are the JSON's. Skipped loudly
/// when Chromium is not installed (.ci/run installs it); a Chromium that
/// is there but fails fails the test.
#[test]
fn conform_class_page_renders_in_headless_chromium_with_the_json_numbers() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| on_path(b))
    else {
        eprintln!("!!!!!!!! SKIPPED conform_class_page_renders_in_headless_chromium_with_the_json_numbers: chromium is not installed (apt-get install chromium) !!!!!!!!");
        return;
    };
    let trims = BrokenRelay::start(Faults {
        trims_spaces: true,
        ..Faults::default()
    });
    let unpaged = BrokenRelay::start(Faults {
        who_unpaged: true,
        ..Faults::default()
    });
    let file = format!(
        "bob relay {}\ncarol relay {}\nerin client ./chat {{addr}}\n",
        trims.addr, unpaged.addr
    );
    let html = TempFile::new("chromium-class.html");
    let json = TempFile::new("chromium-class.json");
    let class_file = TempFile::new("chromium-class.txt");
    std::fs::write(&class_file.0, file).expect("write");
    let out = Command::new(CONFORM_BIN)
        .arg("class")
        .arg(&class_file.0)
        .arg("--html")
        .arg(&html.0)
        .arg("--json")
        .arg(&json.0)
        .args(["--timeout", "5s"])
        .output()
        .expect("run udpchat-conform class");
    assert_eq!(out.status.code(), Some(0));
    let json = std::fs::read_to_string(&json.0).expect("JSON written");
    let started = Instant::now();
    let dom = dump_dom(chromium, &html.0);
    eprintln!("chromium rendered the page in {:?}", started.elapsed());
    assert!(dom.contains("<table class=\"matrix\">"), "{dom}");
    assert_page_matches_json(&dom, &json, &["bob", "carol", "erin"]);
    assert_eq!(element_text(&dom, "s0-failed"), "1");
    assert_eq!(element_text(&dom, "s1-failed"), "1");
    assert_eq!(element_text(&dom, "all-must"), "0/3");
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

/// Chromium's DOM of the page after rendering (`--dump-dom`), with a
/// deadline: the process is killed (by its id) if it takes over a minute.
fn dump_dom(chromium: &str, page: &Path) -> String {
    let profile = TempFile::new("chromium-profile");
    let stdout = TempFile::new("chromium-dom.html");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.as_str()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout.0).expect("dom file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not render the page within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_dir_all(&profile.0);
    assert!(status.success(), "chromium failed: {status}");
    std::fs::read_to_string(&stdout.0).expect("the dumped DOM")
}
