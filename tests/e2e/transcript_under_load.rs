//! End to end: the transcript under load. Members flood the real relay with
//! chat; then the relay is killed with `kill -9` (the transcript must have
//! only complete lines, numbered without gaps, and every message the relay
//! echoed to its sender), or stopped with SIGTERM (every member gets the
//! shutdown notice in its dialect, the relay exits 0, and the transcript is
//! complete in the same sense). Bounded: a few members, a few seconds.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    kill_9, kill_term, loopback_ip, Ending, Member, Recorder, Relay, TempFile, WAIT,
};

/// At most this many messages per sender, for at most [`MAX_LOAD_TIME`]
/// (the load normally stops on a flag well before).
const MAX_PER_SENDER: u32 = 200_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(20);

const NO_RATE_LIMIT: [&str; 4] = ["--rate-burst", "1000000", "--rate-per-sec", "1000000"];

struct Participant {
    nick: String,
    client: Member,
    ending: Ending,
    structured: bool,
    rec: Recorder,
}

impl Participant {
    /// Whether the relay echoed `text` from this member back to it.
    fn echoed(&self) -> Vec<String> {
        let (classic_prefix, structured_marker) = (
            format!("{}: ", self.nick),
            format!(" live CHAT {} ", self.nick),
        );
        self.rec
            .texts()
            .iter()
            .filter_map(|t| {
                let t = t.trim_end_matches('\n');
                if self.structured {
                    t.split_once(&structured_marker)
                        .map(|(_, text)| text.to_owned())
                } else {
                    t.strip_prefix(&classic_prefix).map(str::to_owned)
                }
            })
            .collect()
    }
}

/// Joins `count` members of each kind: classic bare, classic newline,
/// structured.
fn join_members(relay: &Relay, count: usize) -> Vec<Participant> {
    let mut members = Vec::new();
    for i in 0..count {
        for kind in 0..3 {
            let nick = format!("{}{i}", ["bare", "nl", "st"][kind]);
            // One loopback IP address each, as in a classroom (the
            // default --max-per-ip is 4).
            let client = Member::on_ip(relay.addr, loopback_ip(3 * i + kind));
            let (ending, structured) = match kind {
                0 => {
                    client.join_classic(&nick);
                    (Ending::Bare, false)
                }
                1 => {
                    client.send(format!("N {nick}\n"));
                    assert_eq!(client.recv_text(), "OK\n");
                    (Ending::Newline, false)
                }
                _ => {
                    client.join_structured(&nick);
                    (Ending::Bare, true)
                }
            };
            let rec = Recorder::start(&client.socket, relay.addr);
            members.push(Participant {
                nick,
                client,
                ending,
                structured,
                rec,
            });
        }
    }
    members
}

/// Every member sends chat as fast as it can until `stop`; a thread panics
/// (failing the test at `join`) if its bounds run out first, since then the
/// relay was not stopped under load.
fn start_load(members: &[Participant], stop: &Arc<AtomicBool>) -> Vec<thread::JoinHandle<u32>> {
    members
        .iter()
        .map(|m| {
            let socket = m.client.socket.try_clone().expect("clone");
            let relay = m.client.relay;
            let nick = m.nick.clone();
            let stop = Arc::clone(stop);
            thread::spawn(move || {
                let start = Instant::now();
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst) {
                    assert!(
                        sent < MAX_PER_SENDER && start.elapsed() < MAX_LOAD_TIME,
                        "the load ran out before the relay was stopped"
                    );
                    let _ = socket.send_to(format!("M {nick} load {sent}").as_bytes(), relay);
                    sent += 1;
                    if sent % 10 == 0 {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
                sent
            })
        })
        .collect()
}

/// Checks the transcript: complete lines, numbered 1, 2, 3, ... and returns
/// the chat texts per nickname.
fn read_transcript(path: &std::path::Path) -> (usize, HashSet<(String, String)>) {
    let text = std::fs::read_to_string(path).expect("transcript exists and is UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "torn last line: {:?}",
        text.lines().last()
    );
    let mut chats = HashSet::new();
    let mut lines = 0;
    for line in text.lines() {
        // "2026-11-22T00:31:47.123Z #12 alice: hi"
        let (stamp, rest) = line.split_once(' ').expect("timestamp then text");
        assert_eq!(stamp.len(), 24, "bad timestamp in {line:?}");
        let (seq, body) = rest.split_once(' ').expect("#seq then text");
        if seq == "relay" {
            // "relay started on ...", "relay stopped (SIGTERM): ..."
            continue;
        }
        assert_eq!(
            seq,
            format!("#{}", lines + 1),
            "line {} is {line:?}",
            lines + 1
        );
        if let Some((nick, chat)) = body.split_once(": ") {
            if !nick.starts_with('*') && !nick.starts_with('[') {
                chats.insert((nick.to_owned(), chat.to_owned()));
            }
        }
        lines += 1;
    }
    (lines, chats)
}

fn assert_every_echo_is_in_transcript(
    members: &[Participant],
    chats: &HashSet<(String, String)>,
) -> usize {
    let mut echoed = 0;
    for m in members {
        for text in m.echoed() {
            assert!(
                chats.contains(&(m.nick.clone(), text.clone())),
                "{} got the echo of {text:?} but the transcript lacks it",
                m.nick
            );
            echoed += 1;
        }
    }
    echoed
}

#[test]
fn transcript_survives_kill_9_mid_flood() {
    let file = TempFile::new("kill9-transcript");
    let mut args = vec!["--transcript", file.as_str()];
    args.extend(NO_RATE_LIMIT);
    let mut relay = Relay::start(&args);
    let members = join_members(&relay, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&members, &stop);
    // Mid-flood: once plenty of messages went through.
    let deadline = Instant::now() + WAIT;
    while members[0].echoed().len() < 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    kill_9(relay.pid());
    let status = relay.wait_exit(WAIT).expect("relay exits after kill -9");
    assert!(!status.success());
    stop.store(true, Ordering::SeqCst);
    let sent: u32 = load
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .sum();
    // Let the recorders drain what was already in their sockets.
    thread::sleep(Duration::from_millis(300));

    let (lines, chats) = read_transcript(&file.0);
    let echoed = assert_every_echo_is_in_transcript(&members, &chats);
    eprintln!(
        "kill -9 mid-flood: {sent} chats sent, {echoed} echoed to their senders, \
         {lines} complete transcript lines, {} chats in it",
        chats.len()
    );
    assert!(echoed >= 200, "the flood barely started: {echoed} echoes");
    for m in &members {
        m.rec.assert_clean(&m.nick, m.ending);
    }
}

#[test]
fn sigterm_under_load_says_goodbye_to_everyone_and_completes_transcript() {
    let file = TempFile::new("sigterm-load-transcript");
    let mut args = vec!["--transcript", file.as_str()];
    args.extend(NO_RATE_LIMIT);
    let mut relay = Relay::start(&args);
    let members = join_members(&relay, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&members, &stop);
    let deadline = Instant::now() + WAIT;
    while members[0].echoed().len() < 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    kill_term(relay.pid());
    let status = relay.wait_exit(WAIT).unwrap_or_else(|| {
        panic!(
            "no exit within {WAIT:?} of SIGTERM; stderr:\n{}",
            relay.stderr()
        )
    });
    stop.store(true, Ordering::SeqCst);
    let sent: u32 = load
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .sum();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", relay.stderr());

    for m in &members {
        let bye = |t: &str| {
            if m.structured {
                t.starts_with("BYE shutdown ")
            } else {
                t.starts_with("* the relay is shutting down")
            }
        };
        assert!(
            m.rec.wait_for(WAIT, bye),
            "{} got no shutdown notice; last: {:?}",
            m.nick,
            m.rec.texts().iter().rev().take(3).collect::<Vec<_>>()
        );
        m.rec.assert_clean(&m.nick, m.ending);
    }
    let (lines, chats) = read_transcript(&file.0);
    let echoed = assert_every_echo_is_in_transcript(&members, &chats);
    eprintln!(
        "SIGTERM under load: {sent} chats sent, {echoed} echoed, {lines} transcript lines, \
         every one of {} members got the shutdown notice",
        members.len()
    );
}
