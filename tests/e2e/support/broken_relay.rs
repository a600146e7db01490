//! A tiny classic relay (N, M, Q, WHO, MSG, PING, NICK) with fault
//! switches, to test that udpchat-conform catches each fault: a thread on
//! a real UDP socket on 127.0.0.1, stopped when dropped. With no fault on it
//! passes every classic and extension check; each fault is one bug that
//! student relays have.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use udpchat_proto::{
    classic, strip_line_ending, ClientMsg, ErrorCode, Lang, LeaveReason, LineEnding, Nick, Origin,
    ParseError, RelayMsg, RoomEvent, Text, Token, MAX_DATAGRAM,
};

/// The bugs the relay can have (all off: a relay that conforms).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Reads with a 1024-byte buffer and trusts it as the only length
    /// limit: a longer datagram is cut and relayed, and texts have no
    /// 800-byte limit.
    pub truncates_at_1024: bool,
    /// Trims spaces off both ends of a text.
    pub trims_spaces: bool,
    /// Believes the nickname inside `M` and `Q`, whoever sends it.
    pub trusts_nick_in_m: bool,
    /// Sends no `* nick left` when a member quits.
    pub no_leave_notice: bool,
    /// Answers `WHO` with one line listing everyone, however long.
    pub who_unpaged: bool,
    /// Knows only `N`, `M` and `Q` (a course relay): `WHO`, `MSG`, `PING`
    /// and `NICK` draw `unknown-verb`. Not a bug: the extension checks
    /// are skipped.
    pub classic_only: bool,
    /// Compares nicknames as typed: `ALICE` joins while `alice` is online.
    pub nick_case_sensitive: bool,
    /// A fixed table of two peers: `M` reaches the sender and the first
    /// other member only.
    pub relays_to_two: bool,
    /// Replaces characters outside the Basic Multilingual Plane (emoji)
    /// with U+FFFD, as a relay storing text in UTF-16 units might.
    pub mangles_emoji: bool,
    /// Refuses texts over 700 bytes with `too-long` (a wrong limit).
    pub text_limit_700: bool,
    /// Relays texts with control characters as they came.
    pub relays_control_chars: bool,
    /// Strips only the LF of a CR LF ending, so `N nick\r\n` is a nickname
    /// with a CR in it.
    pub strips_only_lf: bool,
    /// Answers with LF only a member whose `N` ended in CR LF: a bare LF
    /// ending is not remembered.
    pub lf_ending_forgotten: bool,
    /// Removes, without notice, a member that sent a datagram that is not
    /// UTF-8.
    pub drops_member_on_bad_utf8: bool,
    /// Answers a repeated `N` (same address, same nickname) with
    /// `already-joined` instead of `OK`.
    pub refuses_repeated_join: bool,
    /// A member's second `N` with another nickname renames it (`OK`).
    pub rejoin_renames: bool,
    /// Never checks whether a nickname is taken.
    pub accepts_taken_nick: bool,
    /// Ignores `PING`.
    pub no_pong: bool,
    /// Sends a `MSG` to every member, not only the one it names.
    pub msg_to_everyone: bool,
    /// Ignores `NICK`.
    pub ignores_nick: bool,
    /// Answers every `N` with `OK\n`, a bare one too (`"OK\n"` hard-coded).
    pub ok_always_lf: bool,
}

struct Member {
    addr: SocketAddr,
    nick: Nick,
    ending: LineEnding,
}

/// The running relay. Stops when dropped.
pub struct BrokenRelay {
    /// Its address (127.0.0.1, an ephemeral port).
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BrokenRelay {
    /// Starts a relay with `faults` on 127.0.0.1.
    pub fn start(faults: Faults) -> BrokenRelay {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the broken relay");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("bound");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut room = Room {
                socket,
                faults,
                members: Vec::new(),
            };
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = room.socket.recv_from(&mut buf) {
                    let mut bytes = buf[..n].to_vec();
                    if faults.truncates_at_1024 {
                        bytes.truncate(MAX_DATAGRAM);
                    }
                    room.handle(&bytes, from);
                }
            }
        });
        BrokenRelay {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BrokenRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Room {
    socket: UdpSocket,
    faults: Faults,
    members: Vec<Member>,
}

impl Room {
    fn send(&self, to: SocketAddr, ending: LineEnding, msg: &RelayMsg) {
        let mut line = classic::render(msg, Lang::En).expect("classic line");
        if ending == LineEnding::Newline {
            line.push('\n');
        }
        let _ = self.socket.send_to(line.as_bytes(), to);
    }

    fn broadcast(&self, event: RoomEvent) {
        let msg = RelayMsg::Event {
            seq: 1,
            origin: Origin::Live,
            ago: None,
            event,
        };
        for m in &self.members {
            self.send(m.addr, m.ending, &msg);
        }
    }

    fn error(&self, to: SocketAddr, ending: LineEnding, code: ErrorCode) {
        let reason = Text::new(code.reason(Lang::En)).expect("reason");
        self.send(to, ending, &RelayMsg::Error { code, reason });
    }

    fn member(&self, addr: SocketAddr) -> Option<usize> {
        self.members.iter().position(|m| m.addr == addr)
    }

    fn by_nick(&self, nick: &Nick) -> Option<usize> {
        self.members.iter().position(|m| m.nick.key() == nick.key())
    }

    /// Who speaks for `nick` from `from`: the member at `from` if it holds
    /// `nick`, or (with the fault) whoever holds `nick`.
    fn speaker(&self, from: SocketAddr, nick: &Nick, ending: LineEnding) -> Option<usize> {
        if self.faults.trusts_nick_in_m {
            return self.by_nick(nick);
        }
        match self.member(from) {
            Some(i) if self.members[i].nick.key() == nick.key() => Some(i),
            Some(_) => {
                self.error(from, ending, ErrorCode::NotYours);
                None
            }
            None => {
                self.error(from, ending, ErrorCode::NotJoined);
                None
            }
        }
    }

    fn handle(&mut self, bytes: &[u8], from: SocketAddr) {
        if self.faults.drops_member_on_bad_utf8 && std::str::from_utf8(bytes).is_err() {
            if let Some(i) = self.member(from) {
                self.members.remove(i);
            }
            return self.error(from, LineEnding::Bare, ParseError::NotUtf8.code());
        }
        let bytes = match bytes.strip_suffix(b"\n") {
            Some(rest) if self.faults.strips_only_lf && rest.ends_with(b"\r") => rest,
            _ => bytes,
        };
        let (_, ending) = strip_line_ending(bytes);
        let ending = self.member(from).map_or(ending, |i| self.members[i].ending);
        let msg = match ClientMsg::parse(bytes) {
            Ok(
                ClientMsg::Who
                | ClientMsg::Private { .. }
                | ClientMsg::Ping(_)
                | ClientMsg::Rename(_),
            ) if self.faults.classic_only => {
                return self.error(from, ending, ErrorCode::UnknownVerb)
            }
            Ok(msg) => msg,
            Err(ParseError::TextTooLong(_)) if self.faults.truncates_at_1024 => {
                return self.chat_without_limit(bytes, from, ending)
            }
            Err(ParseError::ControlChar(_)) if self.faults.relays_control_chars => {
                return self.chat_without_limit(bytes, from, ending)
            }
            Err(e) => return self.error(from, ending, e.code()),
        };
        match msg {
            ClientMsg::Join(nick, _) => {
                let ending = match strip_line_ending(bytes).1 {
                    LineEnding::Newline
                        if self.faults.lf_ending_forgotten && !bytes.ends_with(b"\r\n") =>
                    {
                        LineEnding::Bare
                    }
                    ending => ending,
                };
                self.join(nick, from, ending)
            }
            ClientMsg::Chat { nick, text } => {
                if let Some(i) = self.speaker(from, &nick, ending) {
                    if self.faults.text_limit_700 && text.as_str().len() > 700 {
                        return self.error(from, ending, ErrorCode::TooLong);
                    }
                    let text = if self.faults.trims_spaces {
                        Text::new(text.as_str().trim()).expect("trimmed")
                    } else if self.faults.mangles_emoji {
                        let mangled: String = text
                            .as_str()
                            .chars()
                            .map(|c| if c > '\u{ffff}' { '\u{fffd}' } else { c })
                            .collect();
                        Text::new(&mangled).expect("mangled")
                    } else {
                        text
                    };
                    let nick = self.members[i].nick.clone();
                    if self.faults.relays_to_two {
                        return self.chat_to_two(i, nick, text);
                    }
                    self.broadcast(RoomEvent::Chat { nick, text });
                }
            }
            ClientMsg::Quit(nick, _) => {
                if let Some(i) = self.speaker(from, &nick, ending) {
                    let gone = self.members.remove(i);
                    if !self.faults.no_leave_notice {
                        self.broadcast(RoomEvent::Leave {
                            nick: gone.nick,
                            reason: LeaveReason::Quit,
                        });
                    }
                }
            }
            ClientMsg::Who if self.member(from).is_some() => {
                let nicks: Vec<Nick> = self.members.iter().map(|m| m.nick.clone()).collect();
                let pages = if self.faults.who_unpaged {
                    vec![RelayMsg::Who {
                        page: 1,
                        pages: 1,
                        count: nicks.len() as u32,
                        nicks,
                    }]
                } else {
                    RelayMsg::who_pages(&nicks)
                };
                for page in pages {
                    self.send(from, ending, &page);
                }
            }
            ClientMsg::Private { to, text } if self.member(from).is_some() => {
                let Some(r) = self.by_nick(&to) else {
                    return self.error(from, ending, ErrorCode::NoSuchNick);
                };
                let me = &self.members[self.member(from).expect("member")];
                let (to_addr, to_ending) = (self.members[r].addr, self.members[r].ending);
                let private = RelayMsg::Private {
                    pid: 1,
                    from: me.nick.clone(),
                    text: text.clone(),
                };
                if self.faults.msg_to_everyone {
                    for m in &self.members {
                        self.send(m.addr, m.ending, &private);
                    }
                } else {
                    self.send(to_addr, to_ending, &private);
                }
                let sent = RelayMsg::Sent {
                    id: None,
                    to: self.members[r].nick.clone(),
                    text,
                };
                self.send(from, ending, &sent);
            }
            ClientMsg::Ping(_) if self.faults.no_pong => {}
            ClientMsg::Rename(_) if self.faults.ignores_nick => {}
            ClientMsg::Ping(token) => {
                self.send(from, ending, &RelayMsg::Pong { last_seq: 0, token })
            }
            ClientMsg::Rename(new) if self.member(from).is_some() => {
                let i = self.member(from).expect("member");
                if self.by_nick(&new).is_some_and(|j| j != i) {
                    return self.error(from, ending, ErrorCode::NickTaken);
                }
                let old = std::mem::replace(&mut self.members[i].nick, new.clone());
                self.broadcast(RoomEvent::Rename { old, new });
            }
            ClientMsg::Who | ClientMsg::Private { .. } | ClientMsg::Rename(_) => {
                self.error(from, ending, ErrorCode::NotJoined)
            }
            _ => self.error(from, ending, ErrorCode::UnknownVerb),
        }
    }

    fn join(&mut self, nick: Nick, from: SocketAddr, ending: LineEnding) {
        if let Some(i) = self.member(from) {
            if self.faults.rejoin_renames && self.members[i].nick.key() != nick.key() {
                self.members[i].nick = nick;
                return self.send_ok(from, ending);
            }
            if self.members[i].nick.key() == nick.key() && !self.faults.refuses_repeated_join {
                self.members[i].ending = ending;
                let welcome = RelayMsg::Welcome {
                    version: Token::new("udpchat/1").expect("token"),
                    nick,
                    last_seq: 0,
                    ping_interval: 15,
                    idle_timeout: 60,
                    history_from: None,
                    resume: None,
                    key: None,
                };
                return self.send(from, ending, &welcome);
            }
            return self.error(from, ending, ErrorCode::AlreadyJoined);
        }
        let taken = if self.faults.nick_case_sensitive {
            self.members
                .iter()
                .any(|m| m.nick.as_str() == nick.as_str())
        } else {
            self.by_nick(&nick).is_some()
        };
        if taken && !self.faults.accepts_taken_nick {
            return self.error(from, ending, ErrorCode::NickTaken);
        }
        self.send_ok(from, ending);
        self.members.push(Member {
            addr: from,
            nick: nick.clone(),
            ending,
        });
        self.broadcast(RoomEvent::Join(nick));
    }

    fn send_ok(&self, to: SocketAddr, ending: LineEnding) {
        let ok = if ending == LineEnding::Newline || self.faults.ok_always_lf {
            "OK\n"
        } else {
            "OK"
        };
        let _ = self.socket.send_to(ok.as_bytes(), to);
    }

    /// The chat line to the sender (member `i`) and the first other member.
    fn chat_to_two(&self, i: usize, nick: Nick, text: Text) {
        let msg = RelayMsg::Event {
            seq: 1,
            origin: Origin::Live,
            ago: None,
            event: RoomEvent::Chat { nick, text },
        };
        let other = self.members.iter().enumerate().find(|(j, _)| *j != i);
        for (_, m) in [(i, &self.members[i])].into_iter().chain(other) {
            self.send(m.addr, m.ending, &msg);
        }
    }

    /// `M nick text` with no limit on the text but the 1024-byte buffer
    /// (the text is cut where the buffer ended, at a character boundary).
    fn chat_without_limit(&mut self, bytes: &[u8], from: SocketAddr, ending: LineEnding) {
        let (body, _) = strip_line_ending(bytes);
        let valid = match std::str::from_utf8(body) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default(),
        };
        let Some((nick, text)) = valid.strip_prefix("M ").and_then(|r| r.split_once(' ')) else {
            return self.error(from, ending, ErrorCode::BadSyntax);
        };
        let Ok(nick) = Nick::new(nick) else {
            return self.error(from, ending, ErrorCode::NickInvalid);
        };
        if let Some(i) = self.speaker(from, &nick, ending) {
            let line = format!("{}: {text}", self.members[i].nick);
            for m in &self.members {
                let _ = self.socket.send_to(line.as_bytes(), m.addr);
            }
        }
    }
}
