//! A member the kit joined: its socket, its nickname and, in the
//! structured dialect, its session keys.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use udpchat_proto::{ClientMsg, RelayMsg, SessionKey};

use crate::lines;
use crate::probe::Probe;

/// A structured member's session keys (PROTOCOL.md section 8, *Keyed
/// datagrams*).
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    /// Ours: the relay prefixes what it sends us with it.
    pub mine: SessionKey,
    /// The relay's, from `WELCOME`: we prefix what we send with it.
    pub relay: Option<SessionKey>,
}

/// What a structured member's `WELCOME` said.
#[derive(Debug, Clone, Copy)]
pub struct Welcome {
    /// The join point.
    pub last_seq: u64,
    /// The first history event (none before `last_seq + 1` if absent).
    pub history_from: Option<u64>,
}

/// A member the kit joined (classic, or structured with session keys):
/// its socket and its nickname.
#[derive(Clone)]
pub struct Member {
    /// Its socket.
    pub probe: Rc<Probe>,
    nick: Rc<RefCell<String>>,
    keys: Rc<Cell<Option<Keys>>>,
}

impl Member {
    /// A member on `probe` holding `nick`, with `keys` if structured.
    pub fn new(probe: Rc<Probe>, nick: &str, keys: Option<Keys>) -> Member {
        Member {
            probe,
            nick: Rc::new(RefCell::new(nick.to_owned())),
            keys: Rc::new(Cell::new(keys)),
        }
    }

    /// Its session keys, if it joined in the structured dialect.
    pub fn keys(&self) -> Option<Keys> {
        self.keys.get()
    }

    /// Sends `bytes`, behind the relay's key if the member has one.
    pub fn send(&self, bytes: &[u8]) {
        match self.keys().and_then(|k| k.relay) {
            Some(key) => self.probe.send(&key.prefixed(bytes)),
            None => self.probe.send(bytes),
        }
    }

    /// Sends `msg` (encoded by proto), behind the relay's key if any.
    pub fn send_msg(&self, msg: &ClientMsg) {
        self.send(&msg.encode());
    }

    /// A datagram for this member as a structured message: behind its own
    /// key if it has one (`None` if the prefix is missing or wrong).
    pub fn read(&self, bytes: &[u8]) -> Option<RelayMsg> {
        lines::structured(bytes, self.keys().map(|k| k.mine))
    }

    /// Its nickname now.
    pub fn nick(&self) -> String {
        self.nick.borrow().clone()
    }

    /// Records a new nickname (after `NICK`).
    pub fn renamed(&self, new: &str) {
        *self.nick.borrow_mut() = new.to_owned();
        self.probe.set_who(new);
    }

    /// Sends `M <nick> <text>`, built by proto (`text` must be valid).
    pub fn say(&self, text: &str) {
        let msg = ClientMsg::Chat {
            nick: lines::nick(&self.nick()),
            text: lines::text(text),
        };
        self.send(&msg.encode());
    }

    /// Sends `M <nick> ` followed by `raw` as is (texts proto would refuse
    /// to build: too long, control characters).
    pub fn say_raw(&self, raw: &[u8]) {
        let mut bytes = format!("M {} ", self.nick()).into_bytes();
        bytes.extend_from_slice(raw);
        self.send(&bytes);
    }
}
