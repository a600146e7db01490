//! The client as a chat app, in a real terminal under tmux, read with
//! `capture-pane -e` (colours and attributes kept) and, for the bell, the
//! raw bytes it wrote (`pipe-pane`): a colour per nickname, our own name
//! bold, a mention and a private message highlighted and ringing the bell
//! (only those, and never with `--no-bell`), Tab completion, history,
//! Ctrl-C clearing the line, `/clear`, `NO_COLOR`, Chinese with `--lang
//! zh` or `LANG=zh_CN.UTF-8`, and `RUST_LOG` kept out of the chat.

use std::thread;
use std::time::{Duration, Instant};

use udpchat_cli::render::nick_color;

use crate::support::process::{fresh_state_dir, TempDir};
use crate::support::{Client, Relay, TempFile, Tmux, WAIT};

/// `udpchat ARGS` in a terminal of its own (100 × 20), with `env`
/// (`NAME=value ...`) on top of a neutral environment: no NO_COLOR, no
/// locale but C.UTF-8, unless `env` says otherwise. The resume state goes
/// to a temporary directory, dropped with the returned guard.
fn start(name: &str, env: &str, args: &str) -> (Tmux, TempDir) {
    let state = fresh_state_dir(name);
    let command = format!(
        "env -u NO_COLOR -u LC_ALL -u LC_MESSAGES LANG=C.UTF-8 {env} UDPCHAT_STATE_DIR={} {} {args}",
        state.0.display(),
        env!("CARGO_BIN_EXE_udpchat")
    );
    (Tmux::start(name, 100, 20, &command), state)
}

fn skip(test: &str) -> bool {
    if Tmux::available() {
        return false;
    }
    eprintln!("SKIPPED {test}: tmux is not installed (apt-get install tmux)");
    true
}

/// The last non-empty line of the screen (where the prompt is).
fn prompt_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end()
}

/// The parameters of every SGR sequence (`ESC [ ... m`) in `s`, in order.
fn sgr_params(s: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find("\x1b[") {
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        if after[end..].starts_with('m') {
            found.push(after[..end].to_owned());
        }
        rest = &after[end..];
    }
    found
}

/// The SGR parameters in force where `text` starts on the first line of
/// the escaped screen that contains it: those of the run of escape
/// sequences right before it (tmux writes a change of attributes just
/// before the cell it applies to), split into numbers.
fn attributes_before(escaped: &str, line_has: &str, text: &str) -> Vec<u16> {
    let line = escaped
        .lines()
        .find(|l| l.contains(line_has))
        .unwrap_or_else(|| panic!("no line with {line_has:?} in:\n{escaped}"));
    let at = line
        .find(text)
        .unwrap_or_else(|| panic!("no {text:?} in {line:?}"));
    // Back over the escape sequences that end right at `text`.
    let mut start = at;
    while let Some(esc) = line[..start].rfind("\x1b[") {
        let seq = &line[esc + 2..start];
        if seq.ends_with('m')
            && seq[..seq.len() - 1]
                .chars()
                .all(|c| c.is_ascii_digit() || c == ';')
        {
            start = esc;
        } else {
            break;
        }
    }
    sgr_params(&line[start..at])
        .iter()
        .flat_map(|p| {
            p.split(';')
                .map(|n| n.parse::<u16>().unwrap_or(0))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The 256-colour foreground in `attrs` (`38;5;N`), if any.
fn foreground(attrs: &[u16]) -> Option<u16> {
    attrs
        .windows(3)
        .find(|w| w[0] == 38 && w[1] == 5)
        .map(|w| w[2])
}

/// The bytes in `path` (empty if it is not there yet).
fn recorded(path: &TempFile) -> Vec<u8> {
    std::fs::read(&path.0).unwrap_or_default()
}

fn bells(path: &TempFile) -> usize {
    recorded(path).iter().filter(|&&b| b == 0x07).count()
}

#[test]
fn each_nickname_has_its_own_stable_colour_and_ours_is_bold() {
    if skip("each_nickname_has_its_own_stable_colour_and_ours_is_bold") {
        return;
    }
    assert_ne!(
        nick_color("bob"),
        nick_color("carol"),
        "pick two nicknames with different colours for this test"
    );
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let (tmux, _state) = start("colours", "", &format!("--relay {addr} --nick alice"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");
    let mut bob = Client::joined(&addr, "bob");
    let mut carol = Client::joined(&addr, "carol");
    bob.say("first from bob");
    tmux.wait_screen("bob's first line", |s| s.contains("first from bob"));
    carol.say("one from carol");
    tmux.wait_screen("carol's line", |s| s.contains("one from carol"));
    bob.say("second from bob");
    tmux.type_line("mine");
    let screen = tmux.wait_screen("every line", |s| {
        s.contains("second from bob") && s.contains("(you): mine")
    });
    let escaped = tmux.screen_escaped();
    let colour = |line_has: &str, nick: &str| {
        let attrs = attributes_before(&escaped, line_has, nick);
        (foreground(&attrs), attrs)
    };
    let (bob_1, _) = colour("first from bob", "bob");
    let (bob_2, _) = colour("second from bob", "bob");
    let (carol_1, _) = colour("one from carol", "carol");
    let (alice, alice_attrs) = colour("(you): mine", "alice");
    assert_eq!(bob_1, Some(u16::from(nick_color("bob"))), "{escaped:?}");
    assert_eq!(
        bob_1, bob_2,
        "the same nickname, the same colour: {escaped:?}"
    );
    assert_eq!(carol_1, Some(u16::from(nick_color("carol"))), "{escaped:?}");
    assert_ne!(bob_1, carol_1, "{escaped:?}");
    assert_eq!(alice, Some(u16::from(nick_color("alice"))), "{escaped:?}");
    assert!(
        alice_attrs.contains(&1),
        "our own name is bold: {alice_attrs:?}"
    );
    // The text itself is plain: only the name is coloured.
    assert!(screen.contains("bob: first from bob"), "{screen}");
    let text = attributes_before(&escaped, "first from bob", "first from bob");
    assert_eq!(foreground(&text), None, "{text:?}");
}

#[test]
fn a_mention_and_a_private_message_are_highlighted_and_ring_the_bell_once_each() {
    if skip("a_mention_and_a_private_message_are_highlighted_and_ring_the_bell_once_each") {
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let (alice, _a) = start("bell", "", &format!("--relay {addr} --nick alice"));
    let (dora, _d) = start(
        "nobell",
        "",
        &format!("--relay {addr} --nick dora --no-bell"),
    );
    let alice_out = TempFile::new("alice-tty");
    let dora_out = TempFile::new("dora-tty");
    alice.record_output(alice_out.as_str());
    dora.record_output(dora_out.as_str());
    alice.wait_screen("alice's prompt", |s| prompt_line(s) == "alice>");
    dora.wait_screen("dora's prompt", |s| prompt_line(s) == "dora>");

    let mut bob = Client::joined(&addr, "bob");
    bob.say("hello everyone");
    for tmux in [&alice, &dora] {
        tmux.wait_screen("an ordinary line", |s| s.contains("bob: hello everyone"));
    }
    // Our own lines, even naming ourselves, never ring.
    alice.type_line("alice is here");
    alice.wait_screen("our own line", |s| s.contains("(you): alice is here"));
    bob.say("look, ALICE. and Dora too");
    bob.say("/msg alice a secret for alice");
    bob.say("/msg dora a secret for dora");
    bob.say("the end");
    alice.wait_screen("everything", |s| {
        s.contains("a secret for alice") && s.contains("bob: the end")
    });
    dora.wait_screen("everything", |s| {
        s.contains("a secret for dora") && s.contains("bob: the end")
    });

    // Exactly two bells for alice (the mention, the private message), none
    // for dora; wait for the recording, then a moment more for a third.
    let deadline = Instant::now() + WAIT;
    while bells(&alice_out) < 2 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            String::from_utf8_lossy(&recorded(&alice_out))
        );
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        bells(&alice_out),
        2,
        "{:?}",
        String::from_utf8_lossy(&recorded(&alice_out))
    );
    let dora_bytes = String::from_utf8_lossy(&recorded(&dora_out)).into_owned();
    assert!(
        dora_bytes.contains("the end"),
        "dora's output was recorded: {dora_bytes:?}"
    );
    assert_eq!(bells(&dora_out), 0, "--no-bell: {dora_bytes:?}");
    // Each bell comes with the line it is for, not with an ordinary one.
    let alice_bytes = String::from_utf8_lossy(&recorded(&alice_out)).into_owned();
    for line in alice_bytes.split(['\r', '\n']) {
        let rings = line.contains('\x07');
        let for_me = line.contains("look, ALICE.") || line.contains("a secret for alice");
        assert_eq!(rings, for_me, "{line:?}");
    }

    // Highlighted (reverse video): the mention and the private message,
    // for dora too (only the bell is off); not an ordinary line.
    for (tmux, secret) in [(&alice, "a secret for alice"), (&dora, "a secret for dora")] {
        let escaped = tmux.screen_escaped();
        let mention = attributes_before(&escaped, "look, ALICE.", "look, ALICE.");
        assert!(mention.contains(&7), "{mention:?} in {escaped:?}");
        let private = attributes_before(&escaped, secret, secret);
        assert!(private.contains(&7), "{private:?} in {escaped:?}");
        let ordinary = escaped
            .lines()
            .find(|l| l.contains("hello everyone"))
            .expect("the ordinary line");
        assert!(
            !sgr_params(ordinary)
                .iter()
                .any(|p| p.split(';').any(|n| n == "7")),
            "{ordinary:?}"
        );
    }
}

#[test]
fn tab_completes_commands_and_nicknames_up_brings_back_lines_ctrl_d_leaves() {
    if skip("tab_completes_commands_and_nicknames_up_brings_back_lines_ctrl_d_leaves") {
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let (tmux, _state) = start("complete", "", &format!("--relay {addr} --nick bob"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "bob>");
    let alice = Client::joined(&addr, "alice");
    tmux.wait_screen("alice joining", |s| s.contains("alice joined"));

    tmux.type_text("/ms");
    tmux.press(&["Tab"]);
    tmux.wait_screen("the command completed", |s| prompt_line(s) == "bob> /msg");
    tmux.type_text("al");
    tmux.press(&["Tab"]);
    tmux.wait_screen("the nickname completed", |s| {
        prompt_line(s) == "bob> /msg alice"
    });
    tmux.type_line("completed by Tab");
    alice
        .stdout
        .wait_contains("[private from bob] completed by Tab");

    // At the start of a line a nickname is completed to address someone.
    tmux.type_text("ali");
    tmux.press(&["Tab"]);
    tmux.wait_screen("the nickname completed", |s| {
        prompt_line(s) == "bob> alice:"
    });
    tmux.type_line("hi");
    alice.stdout.wait_contains(" bob: alice: hi");

    // Up and Down walk through what was typed.
    tmux.type_line("one");
    alice.stdout.wait_contains(" bob: one");
    tmux.type_line("two");
    alice.stdout.wait_contains(" bob: two");
    tmux.press(&["Up"]);
    tmux.wait_screen("the last line again", |s| prompt_line(s) == "bob> two");
    tmux.press(&["Up"]);
    tmux.wait_screen("the one before", |s| prompt_line(s) == "bob> one");
    tmux.press(&["Down"]);
    tmux.wait_screen("forward again", |s| prompt_line(s) == "bob> two");
    tmux.press_enter();
    let deadline = Instant::now() + WAIT;
    while alice
        .stdout
        .all()
        .iter()
        .filter(|l| l.ends_with(" bob: two"))
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "{:#?}", alice.stdout.all());
        thread::sleep(Duration::from_millis(50));
    }

    // Ctrl-D on the empty line: bob leaves properly.
    tmux.wait_screen("the empty prompt", |s| prompt_line(s) == "bob>");
    tmux.press(&["C-d"]);
    alice.stdout.wait_contains("* bob left");
}

#[test]
fn ctrl_c_clears_a_half_typed_line_and_on_an_empty_line_leaves() {
    if skip("ctrl_c_clears_a_half_typed_line_and_on_an_empty_line_leaves") {
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let bob = Client::joined(&addr, "bob");
    let (tmux, _state) = start("ctrlc", "", &format!("--relay {addr} --nick alice"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");

    tmux.type_text("half typed 一半");
    tmux.wait_screen("the half-typed line", |s| {
        prompt_line(s) == "alice> half typed 一半"
    });
    tmux.press(&["C-c"]);
    let screen = tmux.wait_screen("the line cleared", |s| prompt_line(s) == "alice>");
    assert!(!screen.contains("half typed"), "{screen}");
    // Still running, still in the room.
    tmux.type_line("still here");
    bob.stdout.wait_contains(" alice: still here");
    tmux.wait_screen("the echo", |s| s.contains("(you): still here"));
    assert!(!bob.stdout.text().contains("half typed"));

    // /clear empties the screen; the prompt stays.
    tmux.type_line("/clear");
    tmux.wait_screen("an empty screen", |s| {
        !s.contains("still here") && !s.contains("joined") && prompt_line(s) == "alice>"
    });

    // Ctrl-C on the empty line: alice leaves properly (bob sees it at
    // once, not after the idle timeout).
    tmux.press(&["C-c"]);
    bob.stdout.wait_contains("* alice left");
}

#[test]
fn no_color_means_no_colour_codes() {
    if skip("no_color_means_no_colour_codes") {
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let (tmux, _state) = start(
        "nocolor",
        "NO_COLOR=1",
        &format!("--relay {addr} --nick alice"),
    );
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");
    let mut bob = Client::joined(&addr, "bob");
    bob.say("plain hello");
    bob.say("plain mention of alice");
    bob.say("/msg alice plain secret");
    tmux.type_line("plain mine");
    tmux.wait_screen("every line", |s| {
        s.contains("plain secret") && s.contains("(you): plain mine") && s.contains("of alice")
    });
    let escaped = tmux.screen_escaped();
    let styled: Vec<String> = sgr_params(&escaped)
        .into_iter()
        .filter(|p| !matches!(p.as_str(), "" | "0" | "39" | "49"))
        .collect();
    assert!(styled.is_empty(), "{styled:?} in {escaped:?}");
}

#[test]
fn client_lines_are_in_chinese_with_lang_zh_or_a_chinese_locale() {
    if skip("client_lines_are_in_chinese_with_lang_zh_or_a_chinese_locale") {
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let (tmux, _state) = start("zh", "", &format!("--relay {addr} --nick alice --lang zh"));
    let screen = tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");
    assert!(
        screen.contains("已加入") && screen.contains("输入 /help 查看命令"),
        "{screen}"
    );
    let _bob = Client::joined(&addr, "bob");
    tmux.wait_screen("bob joining", |s| s.contains("bob 加入了"));
    tmux.type_line("/help");
    tmux.wait_screen("the help", |s| {
        s.contains("命令：") && s.contains("按键：") && s.contains("补全昵称或命令")
    });
    tmux.type_line("/clear");
    tmux.wait_screen("an empty screen", |s| !s.contains("命令："));
    tmux.type_line("/frob");
    tmux.wait_screen("an unknown command", |s| s.contains("没有 /frob 这个命令"));
    // The relay answers in English; the line is in Chinese, whole.
    tmux.type_line("/msg nobody hi");
    let screen = tmux.wait_screen("the relay's refusal", |s| {
        s.contains("没有该昵称的成员；发给 nobody 的私信未发送")
    });
    let line = screen
        .lines()
        .find(|l| l.contains("发给 nobody"))
        .expect("the line");
    assert!(!line.contains("no member"), "{line}");

    // Without --lang, the locale decides.
    let (tmux, _state) = start(
        "zhenv",
        "LANG=zh_CN.UTF-8",
        &format!("--relay {addr} --nick carol"),
    );
    let screen = tmux.wait_screen("the prompt", |s| prompt_line(s) == "carol>");
    assert!(screen.contains("已加入"), "{screen}");
    // And --lang en wins over the locale.
    let (tmux, _state) = start(
        "enflag",
        "LANG=zh_CN.UTF-8",
        &format!("--relay {addr} --nick dora --lang en"),
    );
    let screen = tmux.wait_screen("the prompt", |s| prompt_line(s) == "dora>");
    assert!(
        screen.contains("joined") && !screen.contains("已加入"),
        "{screen}"
    );
}

#[test]
fn rust_log_goes_to_stderr_never_into_the_chat() {
    if skip("rust_log_goes_to_stderr_never_into_the_chat") {
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let log = TempFile::new("client-log");
    let (tmux, _state) = start(
        "log",
        "RUST_LOG=debug",
        &format!("--relay {addr} --nick alice 2>{}", log.as_str()),
    );
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");
    let mut bob = Client::joined(&addr, "bob");
    bob.say("hello alice");
    tmux.wait_screen("the message", |s| s.contains("bob: hello alice"));
    tmux.type_text("typed then cleared");
    tmux.press(&["C-c"]);
    tmux.wait_screen("the line cleared", |s| prompt_line(s) == "alice>");
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = String::from_utf8_lossy(&recorded(&log)).into_owned();
        if text.contains("Ctrl-C cleared the typed line") {
            break text;
        }
        assert!(Instant::now() < deadline, "log so far: {text:?}");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("DEBUG") && text.contains("joined"), "{text}");
    let screen = tmux.screen();
    assert!(
        !screen.contains("DEBUG") && !screen.contains("udpchat_cli"),
        "{screen}"
    );
}
