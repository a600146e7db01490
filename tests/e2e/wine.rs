//! The Windows client (`udpchat.exe`, cross-built with mingw) under wine,
//! against the Linux relay on loopback: piped chat both ways with a classic
//! Linux member, then the relay is killed and started again on the same
//! port and the Windows client rejoins by itself.
//!
//! `.ci/run` builds the exe, puts the stand-in `bcryptprimitives.dll`
//! (dist/windows/bcryptprimitives.c) next to it, warms a wine prefix and
//! sets:
//! - `UDPCHAT_WINDOWS_CLIENT`: the path of `udpchat.exe` (unset: the test
//!   says SKIPPED loudly and passes; set: it must work);
//! - `UDPCHAT_WINE` (optional): the wine loader (default: `wine64` on the
//!   PATH, else Debian's `/usr/lib/wine/wine64`, else `wine`);
//! - `WINEPREFIX` (optional; default `target/wine-prefix`).
//!
//! Wine is slow to start (the first start in a fresh prefix creates it), so
//! every wait here is a minute or more.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::process::fresh_state_dir;
use crate::support::{Client, Member, Relay};

/// A generous deadline for anything the exe under wine does.
const WINE_WAIT: Duration = Duration::from_secs(120);

/// The wine loader to run the exe with.
fn wine() -> PathBuf {
    if let Some(wine) = std::env::var_os("UDPCHAT_WINE") {
        return PathBuf::from(wine);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["wine64", "wine"] {
        if let Some(found) = std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
        {
            return found;
        }
        let debian = Path::new("/usr/lib/wine").join(name);
        if debian.is_file() {
            return debian;
        }
    }
    panic!(
        "UDPCHAT_WINDOWS_CLIENT is set but no wine was found (install wine64, or set UDPCHAT_WINE)"
    );
}

/// A Linux path as the exe sees it (wine maps `/` to drive Z:).
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// `wine udpchat.exe` with wine's environment, not yet started.
fn windows_client(exe: &Path, state_dir: &Path) -> Command {
    let prefix = std::env::var_os("WINEPREFIX").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wine-prefix"),
        PathBuf::from,
    );
    let mut cmd = Command::new(wine());
    cmd.arg(exe)
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        // No Mono or Gecko install dialogs when the prefix is created.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env("UDPCHAT_STATE_DIR", windows_path(state_dir))
        .env_remove("DISPLAY");
    cmd
}

#[test]
fn windows_client_under_wine_chats_and_rejoins_after_a_relay_restart() {
    let Some(exe) = std::env::var_os("UDPCHAT_WINDOWS_CLIENT") else {
        eprintln!(
            "!!!!!!!! SKIPPED windows_client_under_wine_chats_and_rejoins_after_a_relay_restart: \
             UDPCHAT_WINDOWS_CLIENT is not set (.ci/run sets it); the Windows client was not run !!!!!!!!"
        );
        return;
    };
    let exe = PathBuf::from(exe);
    assert!(
        exe.is_file(),
        "UDPCHAT_WINDOWS_CLIENT={exe:?} is not a file"
    );

    let mut old = Relay::start(&[]);
    let addr = old.addr.to_string();
    let tux = Member::new(old.addr);
    tux.join_classic("tux");
    tux.expect("* tux joined");

    let state = fresh_state_dir("wine-state");
    let mut win = Client::spawn(windows_client(&exe, &state.0), &addr, Some("win"), &[]);
    // Waits for a line of the exe's, failing at once if it exits (an exe
    // that does not start under wine exits 53 with no output).
    let wait = |client: &mut Client, needle: &str| {
        let deadline = Instant::now() + WINE_WAIT;
        while !client.stdout.all().iter().any(|l| l.contains(needle)) {
            let exited = client.exited();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "udpchat.exe did not print {needle:?} (exit status {exited:?}); \
                 stdout {:#?} stderr {:#?}",
                client.stdout.all(),
                client.stderr.all()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait(&mut win, "* win joined");
    tux.expect("* win joined");

    // Linux -> Windows.
    tux.send("M tux hello from linux 你好");
    wait(&mut win, " tux: hello from linux 你好");
    tux.expect("tux: hello from linux 你好");

    // Windows -> Linux.
    win.say("hello from windows 你好");
    tux.expect("win: hello from windows 你好");
    wait(&mut win, "win (you): hello from windows 你好");

    // The relay dies and comes back on the same port. The client's next
    // datagrams meet a closed port in between (WSAECONNRESET on Windows,
    // a timeout under wine): it must keep going and rejoin.
    old.kill();
    let new = Relay::start(&["--bind", &addr]);
    assert_eq!(new.addr, old.addr);
    let tux = Member::new(new.addr);
    tux.join_classic("tux");
    tux.expect("* tux joined");

    win.say("after the restart");
    wait(&mut win, "rejoined as win");
    tux.recv_until("the message sent across the restart", |t| {
        t == "win: after the restart"
    });
    win.say("still here");
    tux.recv_until("a message after the rejoin", |t| t == "win: still here");

    win.close();
    let status = win.wait_exit_within(WINE_WAIT);
    assert!(
        status.success(),
        "udpchat.exe exited {status:?}; stdout {:#?} stderr {:#?}",
        win.stdout.all(),
        win.stderr.all()
    );
}
