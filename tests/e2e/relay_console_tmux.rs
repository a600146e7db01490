//! The relay's line-editor console in a real terminal, under tmux (issue
//! 13): the relay runs in the foreground of an interactive shell, its
//! standard input and output the terminal. The room (chat, joins,
//! moderation) and log lines appear above the prompt while a half-typed
//! command stays intact on it; `/mute`, `/ban` and `/lock` typed there take
//! effect on real UDP members; Ctrl-C clears a half-typed line and stops
//! the relay on an empty one; Ctrl-Z, `bg` and `fg` keep it relaying and
//! bring the editor back.
#![cfg(target_os = "linux")]

use std::thread;
use std::time::{Duration, Instant};

use crate::relay_tmux::{alive, pid_with_arg, tmux_available, wait_file, Shell};
use crate::support::relay::RELAY_BIN;
use crate::support::{loopback_ip, Member, TempFile, LISTENING_PREFIX, WAIT};

/// How long a member listens to show that nothing reaches it. Only proves
/// absence over this window; the room tests prove the rule itself.
const QUIET: Duration = Duration::from_millis(800);

/// The editor's prompt line: the last line on the screen that is not
/// blank (capture-pane drops trailing spaces, so an empty prompt is `>`).
fn prompt_line(screen: &str) -> &str {
    screen
        .lines()
        .map(str::trim_end)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
}

/// The row of the first line that `pred` accepts.
fn row_of(screen: &str, pred: impl Fn(&str) -> bool) -> Option<usize> {
    screen.lines().position(pred)
}

/// Starts the relay in the foreground of a fresh shell (stdin and stdout
/// the terminal) and waits for its prompt; returns the shell, the relay's
/// address and its pid.
fn relay_in_foreground(
    name: &str,
    transcript: &TempFile,
    extra: &str,
) -> (Shell, std::net::SocketAddr) {
    let mut shell = Shell::start_sized(name, 60);
    shell.wait_screen("the shell prompt", |s| {
        s.lines().any(|l| l.trim_end() == "$")
    });
    shell.type_line(&format!(
        "{RELAY_BIN} --bind 127.0.0.1:0 --transcript {} {extra}",
        transcript.as_str()
    ));
    let screen = shell.wait_screen("the relay's greeting and prompt", |s| {
        (s.contains("console: type a line and press Enter") || s.contains("控制台：输入一行文字"))
            && prompt_line(s) == ">"
    });
    let addr = screen
        .lines()
        .find_map(|l| l.trim_end().strip_prefix(LISTENING_PREFIX))
        .expect("the listening line")
        .parse()
        .expect("an address");
    let mut pid = None;
    assert!(
        crate::support::eventually(|| {
            pid = pid_with_arg(transcript.as_str());
            pid.is_some()
        }),
        "relay process not found"
    );
    shell.relay_pid = pid;
    (shell, addr)
}

/// Waits until the relay process `pid` is gone.
fn wait_exit(pid: u32) {
    let deadline = Instant::now() + WAIT;
    while alive(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "the relay did not exit");
}

#[test]
fn console_shows_the_room_above_a_half_typed_command_and_its_moderation_reaches_real_members() {
    if !tmux_available() {
        eprintln!("skipped: tmux or bash is not installed");
        return;
    }
    let transcript = TempFile::new("console-transcript");
    let (mut shell, addr) = relay_in_foreground("console", &transcript, "");
    let pid = shell.relay_pid.expect("the relay's pid");

    // Three students, each on a computer of its own (its own IP address:
    // a ban is by address).
    let alice = Member::on_ip(addr, loopback_ip(2));
    let bob = Member::on_ip(addr, loopback_ip(3));
    let carol = Member::on_ip(addr, loopback_ip(4));
    alice.join_classic("alice");
    bob.join_classic("bob");
    alice.expect("* bob joined");
    carol.join_classic("carol");
    alice.expect("* carol joined");
    bob.expect("* carol joined");

    // The teacher starts typing a command and has not pressed Enter...
    shell.type_text("/mute al");
    shell.wait_screen("the half-typed command on the prompt", |s| {
        prompt_line(s) == "> /mute al"
    });
    // ...when a student chats, and a stranger sends nonsense (a WARN).
    bob.send("M bob hello while you type");
    for member in [&alice, &bob, &carol] {
        member.expect("bob: hello while you type");
    }
    let stranger = Member::on_ip(addr, loopback_ip(5));
    stranger.send("garbage");
    let screen = shell.wait_screen("the chat and the warning above the prompt", |s| {
        s.lines().any(|l| l.ends_with(" bob: hello while you type"))
            && s.lines()
                .any(|l| l.contains("WARN") && l.contains("refused"))
            && s.lines().any(|l| l.ends_with(" * carol joined"))
    });
    // Both above the prompt, which still shows exactly what was typed.
    assert_eq!(prompt_line(&screen), "> /mute al", "{screen}");
    let prompt_row = screen
        .lines()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|l| l.trim_end() == "> /mute al");
    let chat_row = row_of(&screen, |l| l.ends_with(" bob: hello while you type"));
    let warn_row = row_of(&screen, |l| l.contains("WARN") && l.contains("refused"));
    assert!(
        chat_row < prompt_row && warn_row < prompt_row,
        "not above the prompt:\n{screen}"
    );
    // The chat line is the room as a member sees it, with the time.
    let chat = screen
        .lines()
        .find(|l| l.ends_with(" bob: hello while you type"))
        .unwrap();
    assert!(
        chat.len() == "12:34 bob: hello while you type".len()
            && chat.as_bytes()[2] == b':'
            && chat[..5].chars().filter(char::is_ascii_digit).count() == 4,
        "{chat:?}"
    );

    // Enter finishes the command: alice is muted. Her message reaches
    // nobody; she alone is told why.
    shell.type_line("ice");
    shell.wait_screen("the mute confirmed", |s| {
        s.lines().any(|l| l.trim_end() == "muted alice") && prompt_line(s) == ">"
    });
    alice.send("M alice can anyone hear me");
    let refusal = alice.recv_until("the muted refusal", |l| l.starts_with("ERROR"));
    assert!(refusal.starts_with("ERROR muted: "), "{refusal}");
    bob.expect_silence(QUIET);
    carol.expect_silence(QUIET);
    assert!(!shell.screen().contains("can anyone hear me"));

    // /ban bob: removed, and his computer cannot join again.
    shell.type_line("/ban bob disrupting the class");
    let confirmed = format!("banned {} until /unban; removed bob", bob.addr().ip());
    shell.wait_screen("the ban confirmed", |s| {
        s.lines().any(|l| l.trim_end() == confirmed)
    });
    bob.recv_until("bob's removal", |l| {
        l.starts_with("* you were removed by the host: ") && l.ends_with("disrupting the class")
    });
    let bob_again = Member::on_ip(addr, loopback_ip(3));
    bob_again.send("N bob");
    let refused = bob_again.recv_text();
    assert!(refused.starts_with("ERROR banned: "), "{refused}");

    // /lock: nobody new joins; the members stay and chat.
    shell.type_line("/lock");
    shell.wait_screen("the lock confirmed", |s| {
        s.lines()
            .any(|l| l.ends_with("* the room is locked: nobody new can join"))
    });
    let dave = Member::on_ip(addr, loopback_ip(6));
    dave.send("N dave");
    let refused = dave.recv_text();
    assert!(refused.starts_with("ERROR room-locked: "), "{refused}");
    carol.recv_until("carol's own kick notice", |l| {
        l == "* bob was removed by the host"
    });
    carol.send("M carol still here");
    alice.recv_until("carol's message", |l| l == "carol: still here");

    // Up recalls the last command; Ctrl-C clears the half-typed line and
    // the relay keeps running.
    shell.press(&["Up"]);
    shell.wait_screen("the command recalled", |s| prompt_line(s) == "> /lock");
    shell.press(&["C-c"]);
    shell.wait_screen("a fresh empty prompt", |s| prompt_line(s) == ">");
    thread::sleep(Duration::from_millis(300));
    assert!(alive(pid), "Ctrl-C on a half-typed line stopped the relay");
    carol.send("M carol after the clear");
    alice.recv_until("carol's message", |l| l == "carol: after the clear");

    // Ctrl-C on the empty prompt stops the relay: everyone is told.
    shell.press(&["C-c"]);
    alice.recv_until("the goodbye", |l| {
        l == "* the relay is shutting down: goodbye"
    });
    wait_exit(pid);
    shell.relay_pid = None;
    let record = wait_file(&transcript.0, "the stop line", |t| {
        t.contains("relay stopped (Ctrl-C)")
    });
    assert!(record.contains("host muted alice"), "{record}");

    // The shell's terminal is as it was: it echoes what is typed.
    shell.wait_screen("the shell prompt again", |s| prompt_line(s) == "$");
    shell.type_line("echo back-in-the-shell");
    shell.wait_screen("the shell's echo", |s| {
        s.lines()
            .any(|l| l.trim_end() == "$ echo back-in-the-shell")
            && s.lines().any(|l| l.trim_end() == "back-in-the-shell")
    });
}

// Ignored in CI: it failed once in about ten CI runs (after `fg` the
// console's "back in the foreground" line and prompt did not come within
// 20 s), a race in the editor's SIGCONT handling not yet found. Background
// safety itself stays covered by relay_tmux.rs (`&`, Ctrl-Z, `bg`, `fg`).
// Run it by hand: cargo test --test e2e console_editor -- --ignored
#[test]
#[ignore = "flaky: the prompt after fg sometimes does not come back (a race in the editor's SIGCONT handling)"]
fn console_editor_survives_ctrl_z_bg_and_fg() {
    if !tmux_available() {
        eprintln!("skipped: tmux or bash is not installed");
        return;
    }
    let transcript = TempFile::new("console-bg-transcript");
    let (mut shell, addr) = relay_in_foreground("console-bg", &transcript, "--lang zh");
    let pid = shell.relay_pid.expect("the relay's pid");

    // Ctrl-Z with a half-typed line, then bg: it keeps relaying.
    shell.type_text("你好");
    shell.wait_screen("the typed text", |s| prompt_line(s) == "> 你好");
    shell.press(&["C-z"]);
    shell.wait_screen("the job stopped by Ctrl-Z", |s| s.contains("Stopped"));
    shell.type_line("bg");
    shell.wait_screen("the console pausing in the background", |s| {
        s.contains("控制台：中继现在在后台运行")
    });
    let alice = Member::on_ip(addr, loopback_ip(2));
    alice.join_classic("alice");
    let bob = Member::on_ip(addr, loopback_ip(3));
    bob.join_classic("bob");
    alice.expect("* bob 加入了聊天室");
    bob.send("M bob while in the background");
    alice.expect("bob: while in the background");

    // fg: a fresh prompt that edits (a Left arrow moves, never types).
    shell.type_line("fg");
    shell.wait_screen("the console back", |s| {
        s.contains("控制台：已回到前台") && prompt_line(s) == ">"
    });
    shell.type_text("/wh");
    shell.press(&["Left"]);
    shell.type_text("x");
    shell.wait_screen("the edit in the middle of the line", |s| {
        prompt_line(s) == "> /wxh"
    });
    shell.press(&["C-c"]);
    shell.wait_screen("a cleared prompt", |s| prompt_line(s) == ">");

    // Ctrl-Z and straight fg (no bg): the editor still edits.
    shell.press(&["C-z"]);
    shell.wait_screen("the job stopped again", |s| {
        s.lines().filter(|l| l.contains("Stopped")).count() >= 2
    });
    shell.type_line("fg");
    thread::sleep(Duration::from_millis(500));
    shell.type_text("/who");
    shell.press(&["Left", "Left"]);
    shell.type_text("h");
    shell.wait_screen("an edit after fg", |s| prompt_line(s).ends_with("/whho"));
    shell.press(&["End", "BSpace", "BSpace"]);
    shell.type_text("o");
    shell.press_enter();
    shell.wait_screen("the answer to /who, in Chinese", |s| {
        s.lines().any(|l| l.trim_end() == "2 名成员")
    });
    shell.type_line("/quit 下课了");
    alice.recv_until("the goodbye", |l| l.contains("下课了"));
    wait_exit(pid);
    shell.relay_pid = None;
}
