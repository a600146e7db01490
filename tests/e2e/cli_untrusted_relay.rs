//! The client against relays that misbehave or are absent: a fake relay
//! written here (a plain UdpSocket) answers the handshake and then sends what
//! a real relay never would.

use crate::support::{Client, WAIT};
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

/// The `@<key> ` prefix of the session key a client's `HELLO` carries
/// (`key=<key>`): a relay, even a misbehaving one, knows it.
fn prefix_of(hello: &str) -> String {
    let key = hello
        .split(' ')
        .find_map(|f| f.strip_prefix("key="))
        .unwrap_or_else(|| panic!("HELLO without key=: {hello:?}"));
    format!("@{key} ")
}

/// `datagram` behind `prefix`.
fn keyed(prefix: &str, datagram: &[u8]) -> Vec<u8> {
    let mut bytes = prefix.as_bytes().to_vec();
    bytes.extend_from_slice(datagram);
    bytes
}

/// Answers one client's handshake; returns the client's address and the
/// prefix every datagram to it needs.
fn handshake(socket: &UdpSocket) -> (SocketAddr, String) {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + WAIT;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    loop {
        assert!(Instant::now() < deadline, "client never completed HELLO");
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let fields: Vec<&str> = msg.split(' ').collect();
        match fields.as_slice() {
            ["HELLO", "udpchat/1", _nick, "-", ..] => {
                assert!(n >= 64, "cookie-less HELLO must be padded: {msg:?}");
                socket.send_to(b"COOKIE 00000000deadbeef", from).unwrap();
            }
            ["HELLO", "udpchat/1", nick, "00000000deadbeef", ..] => {
                // No relay key: the client then sends without a prefix.
                let prefix = prefix_of(&msg);
                let welcome = format!("WELCOME udpchat/1 {nick} 0 15 60");
                socket
                    .send_to(&keyed(&prefix, welcome.as_bytes()), from)
                    .unwrap();
                return (from, prefix);
            }
            _ => {}
        }
    }
}

#[test]
fn control_characters_from_a_misbehaving_relay_are_shown_escaped() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let mut client = Client::start(&addr, Some("alice"));
    let (to, prefix) = handshake(&socket);

    let evil: &[&[u8]] = &[
        b"EVENT 1 live JOIN alice",
        // ESC sequences that would clear the screen and retitle the window,
        // a CSI (C1) and a right-to-left override.
        b"EVENT 2 live CHAT eve clear\x1b[2J\x1b]0;owned\x07 \xc2\x9b31m rtl:\xe2\x80\xaegnp.exe",
        b"PRIVATE 7 eve psst\x1b[5m",
        // Not even UTF-8, with an ESC: must become a sanitized notice.
        b"\x1b[31mGARBAGE \xff\xfe",
        b"EVENT 3 live CHAT eve done",
    ];
    for datagram in evil {
        socket.send_to(&keyed(&prefix, datagram), to).unwrap();
        thread::sleep(Duration::from_millis(30));
    }
    client.stdout.wait_contains("eve: done");
    let out = client.stdout.all();
    let joined = out.join("\n");
    assert!(
        joined
            .contains("eve: clear\\u{1b}[2J\\u{1b}]0;owned\\u{7} \\u{9b}31m rtl:\\u{202e}gnp.exe"),
        "{out:#?}"
    );
    assert!(
        joined.contains("[private from eve] psst\\u{1b}[5m"),
        "{out:#?}"
    );
    assert!(
        out.iter()
            .any(|l| l.contains("malformed datagram") && l.contains("\\u{1b}[31mGARBAGE")),
        "{out:#?}"
    );
    for line in &out {
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "raw control character reached stdout: {line:?}"
        );
    }

    // The private message was acknowledged.
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + WAIT;
    let mut acked = false;
    while !acked && Instant::now() < deadline {
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            acked = &buf[..n] == b"ACK 7";
        }
    }
    assert!(acked, "no ACK 7 for the PRIVATE");

    client.close();
    assert!(client.wait_exit().success());
}

#[test]
fn no_relay_answering_is_said_plainly_and_exits_non_zero() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut client = Client::start(&addr, Some("alice"));
    let status = client.wait_exit();
    assert!(!status.success());
    let err = client
        .stderr
        .wait_contains(&format!("no relay answering at {addr}"));
    assert!(err.starts_with("udpchat: "), "{err}");
}

#[test]
fn piped_mode_without_nick_says_how_to_give_one() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut client = Client::start(&addr, None);
    let status = client.wait_exit();
    assert_eq!(status.code(), Some(2));
    client.stderr.wait_contains("--nick is required");
}

#[test]
fn relay_refusing_the_nickname_in_piped_mode_prints_its_reason_and_fails() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let mut client = Client::start(&addr, Some("alice"));
    let mut buf = [0u8; 2048];
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let hello = String::from_utf8_lossy(&buf[..n]).into_owned();
            let refusal = b"ERROR nick-taken nickname is taken; choose another";
            socket
                .send_to(&keyed(&prefix_of(&hello), refusal), from)
                .unwrap();
            break;
        }
    }
    let status = client.wait_exit();
    assert_eq!(status.code(), Some(2));
    client
        .stderr
        .wait_contains("refused the nickname alice: nickname is taken; choose another");
}
