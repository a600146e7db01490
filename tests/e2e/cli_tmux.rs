//! The client in a real terminal, under tmux: incoming lines must never
//! clobber the half-typed line; a paste arrives whole, one message per
//! line; editing keys never end up in a message; an own message is shown
//! once.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Client, Relay, Tmux, WAIT};

/// Starts `udpchat ARGS` in a terminal of its own (100 × 20).
fn start_client(name: &str, args: &str) -> Tmux {
    // Resume state in the temp directory, not the real home.
    let state =
        std::env::temp_dir().join(format!("udpchat-test-{}-tmux-state", std::process::id()));
    let command = format!(
        "env NO_COLOR=1 LANG=C.UTF-8 UDPCHAT_STATE_DIR={} {} {args}",
        state.display(),
        env!("CARGO_BIN_EXE_udpchat")
    );
    Tmux::start(name, 100, 20, &command)
}

fn tmux_available() -> bool {
    Tmux::available()
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

#[test]
fn incoming_message_does_not_clobber_the_half_typed_line() {
    if !tmux_available() {
        eprintln!("SKIPPED incoming_message_does_not_clobber_the_half_typed_line: tmux is not installed (apt-get install tmux)");
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let tmux = start_client("clobber", &format!("--relay {addr} --nick alice"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");

    let mut bob = Client::joined(&addr, "bob");
    let half = "half typed 你好 line";
    tmux.type_text(half);
    tmux.wait_screen("the half-typed line", |s| {
        prompt_line(s) == format!("alice> {half}")
    });

    bob.say("incoming 世界 message");
    let screen = tmux.wait_screen("the incoming message above the prompt", |s| {
        s.contains(" bob: incoming 世界 message")
    });
    // The incoming line is whole on its own line, and the prompt with the
    // half-typed line is intact below it.
    assert!(
        screen
            .lines()
            .any(|l| l.ends_with(" bob: incoming 世界 message") && !l.contains("alice>")),
        "{screen}"
    );
    assert_eq!(prompt_line(&screen), format!("alice> {half}"), "{screen}");

    tmux.type_text(" finished");
    tmux.press_enter();
    bob.stdout
        .wait_contains(&format!(" alice: {half} finished"));
    tmux.wait_screen("own message echoed", |s| {
        s.contains(&format!("alice (you): {half} finished"))
    });
}

#[test]
fn refused_nickname_is_explained_and_asked_again() {
    if !tmux_available() {
        eprintln!("SKIPPED refused_nickname_is_explained_and_asked_again: tmux is not installed (apt-get install tmux)");
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let _bob = Client::joined(&addr, "bob");
    let tmux = start_client("nick", &format!("--relay {addr}"));
    tmux.wait_screen("the nickname question", |s| prompt_line(s) == "nickname:");
    tmux.type_text("no spaces");
    tmux.press_enter();
    tmux.wait_screen("the local nickname check", |s| {
        s.contains("invalid nickname") && prompt_line(s) == "nickname:"
    });
    tmux.type_text("BOB");
    tmux.press_enter();
    tmux.wait_screen("the relay's reason and the question again", |s| {
        s.contains("refused the nickname BOB: nickname is taken") && prompt_line(s) == "nickname:"
    });
    tmux.type_text("carol");
    tmux.press_enter();
    tmux.wait_screen("the join", |s| {
        s.contains("as carol") && prompt_line(s) == "carol>"
    });
}

/// Waits until `client` has printed `want.len()` chat lines from `nick`,
/// then a moment more, and checks they are exactly `want`, in order: each
/// pasted line arrived as its own message, once.
fn assert_messages_arrive(client: &Client, nick: &str, want: &[String]) {
    let marker = format!(" {nick}: ");
    let said = || -> Vec<String> {
        client
            .stdout
            .all()
            .iter()
            .filter_map(|l| l.split_once(&marker).map(|(_, text)| text.to_owned()))
            .collect()
    };
    let deadline = Instant::now() + WAIT;
    while said().len() < want.len() {
        assert!(
            Instant::now() < deadline,
            "timed out; {} of {} arrived: {:#?}",
            said().len(),
            want.len(),
            client.stdout.all()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Long enough for a repeat to show up, if there were one.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(said(), want);
}

fn pasted_lines() -> Vec<String> {
    (1..=30)
        .map(|i| format!("pasted line {i:02} 粘贴 ok"))
        .collect()
}

fn paste_arrives_one_message_per_line(name: &str, bracketed: bool) {
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let bob = Client::joined(&addr, "bob");
    let tmux = start_client(name, &format!("--relay {addr} --nick alice"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");

    let lines = pasted_lines();
    let block: String = lines.iter().map(|l| format!("{l}\n")).collect();
    tmux.paste(&block, bracketed);
    if bracketed {
        // A marked paste waits in the editor, whole, until Enter.
        tmux.wait_screen("the paste in the editor", |s| {
            s.contains("pasted line 30") && !s.contains("(you): pasted line")
        });
        tmux.press_enter();
    }
    assert_messages_arrive(&bob, "alice", &lines);
    let screen = tmux.wait_screen("the last echo", |s| {
        s.contains("alice (you): pasted line 30")
    });
    assert!(
        !screen.contains("not sent") && !screen.contains(" ! "),
        "{screen}"
    );
    assert_eq!(prompt_line(&screen), "alice>", "{screen}");
}

#[test]
fn pasted_lines_each_arrive_as_a_message_in_order() {
    if !tmux_available() {
        eprintln!("SKIPPED pasted_lines_each_arrive_as_a_message_in_order: tmux is not installed");
        return;
    }
    paste_arrives_one_message_per_line("paste", false);
}

#[test]
fn bracketed_paste_arrives_one_message_per_line_in_order() {
    if !tmux_available() {
        eprintln!(
            "SKIPPED bracketed_paste_arrives_one_message_per_line_in_order: tmux is not installed"
        );
        return;
    }
    paste_arrives_one_message_per_line("bracketed", true);
}

#[test]
fn editing_keys_never_end_up_in_the_message() {
    if !tmux_available() {
        eprintln!("SKIPPED editing_keys_never_end_up_in_the_message: tmux is not installed");
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let bob = Client::joined(&addr, "bob");
    let tmux = start_client("keys", &format!("--relay {addr} --nick alice"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");

    tmux.type_text("xbd");
    tmux.press(&["Home", "DC"]); // "bd"
    tmux.press(&["Right"]);
    tmux.type_text("c"); // "bcd"
    tmux.press(&["Home"]);
    tmux.type_text("a"); // "abcd"
    tmux.press(&["End", "Left", "Right"]);
    tmux.type_text("e"); // "abcde"
                         // Keys with nothing to do here: history is empty, no completion.
    tmux.press(&["Up", "Down", "PageUp", "PageDown", "F1", "F5", "F12"]);
    tmux.press(&["C-Left", "C-Right", "S-Left", "End"]);
    tmux.wait_screen("the edited line", |s| prompt_line(s) == "alice> abcde");
    tmux.press_enter();
    // Tab is not lost: it becomes the four spaces a tab in a message
    // becomes anyway, however often it is pressed.
    tmux.type_text("tab");
    tmux.press(&["Tab"]);
    tmux.type_text("bed");
    tmux.press(&["Tab", "Tab"]);
    tmux.type_text("x");
    tmux.press_enter();
    assert_messages_arrive(
        &bob,
        "alice",
        &["abcde".to_owned(), "tab    bed        x".to_owned()],
    );
}

#[test]
fn own_message_is_shown_once() {
    if !tmux_available() {
        eprintln!("SKIPPED own_message_is_shown_once: tmux is not installed");
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let bob = Client::joined(&addr, "bob");
    let tmux = start_client("once", &format!("--relay {addr} --nick alice"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");
    for text in ["only once 只一次", "and this one too"] {
        tmux.type_text(text);
        tmux.press_enter();
        tmux.wait_screen("the echo", |s| s.contains(&format!("alice (you): {text}")));
        bob.stdout.wait_contains(&format!(" alice: {text}"));
    }
    // A line wider than the terminal (100 columns) takes two rows in the
    // editor: both go.
    let long = format!("long {} end", "宽字".repeat(30));
    tmux.type_text(&long);
    tmux.press_enter();
    bob.stdout.wait_contains(&format!(" alice: {long}"));
    tmux.wait_screen("the echo", |s| s.contains("alice (you): long 宽字"));
    thread::sleep(Duration::from_millis(300));
    let screen = tmux.screen();
    for text in ["only once 只一次", "and this one too", "long 宽字"] {
        assert_eq!(screen.matches(text).count(), 1, "{screen}");
    }
    // The only prompt on screen is the empty one at the bottom.
    let prompts = screen.lines().filter(|l| l.contains("alice>")).count();
    assert_eq!(prompts, 1, "{screen}");
    assert_eq!(prompt_line(&screen), "alice>", "{screen}");
}

#[test]
fn a_pasted_line_that_cannot_be_sent_is_named_and_explained() {
    if !tmux_available() {
        eprintln!("SKIPPED a_pasted_line_that_cannot_be_sent_is_named_and_explained: tmux is not installed");
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let bob = Client::joined(&addr, "bob");
    let tmux = start_client("refused", &format!("--relay {addr} --nick alice"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");
    tmux.paste("before\nring \u{7} bell\nafter\ttab\n", true);
    tmux.wait_screen("the paste in the editor", |s| s.contains("after"));
    tmux.press_enter();
    assert_messages_arrive(
        &bob,
        "alice",
        &["before".to_owned(), "after    tab".to_owned()],
    );
    tmux.wait_screen("why the line was not sent", |s| {
        s.contains("not sent: \"ring \\u{7} bell\": message contains the control character U+0007")
    });
}

#[test]
fn pasted_lines_after_quit_are_counted_not_lost_silently() {
    if !tmux_available() {
        eprintln!(
            "SKIPPED pasted_lines_after_quit_are_counted_not_lost_silently: tmux is not installed"
        );
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let bob = Client::joined(&addr, "bob");
    // The shell keeps the pane open after the client exits, to read it.
    let tmux = start_client("quit", &format!("--relay {addr} --nick alice; sleep 20"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");
    tmux.paste("hello\n/quit\nafter one\n\nafter two\n", true);
    tmux.wait_screen("the paste in the editor", |s| s.contains("after two"));
    tmux.press_enter();
    bob.stdout.wait_contains("* alice left");
    tmux.wait_screen("what was not sent", |s| {
        s.contains("2 line(s) after /quit were not sent")
    });
    let said: Vec<String> = bob
        .stdout
        .all()
        .iter()
        .filter_map(|l| l.split_once(" alice: ").map(|(_, t)| t.to_owned()))
        .collect();
    assert_eq!(said, ["hello"]);
}
