//! The limits an attacker cannot switch off (issue 12): each rule through
//! the room, with made-up addresses and a fixed clock.

use std::net::SocketAddr;

use crate::testing::{addr, many, padded_hello, port_of_one_host, Harness};
use crate::Config;

use super::{ALLOWANCE_BURST, IP_COOKIE_BURST, IP_FACTOR, MAX_STRANGERS, MEMBER_REPLY_BURST};

/// Datagrams from `from` that got past the rate limits (not counted in
/// `rate_limited`), for `count` sends of `bytes`.
fn allowed(h: &mut Harness, from: impl Fn(u32) -> SocketAddr, count: u32, bytes: &str) -> u64 {
    let before = h.room.stats().rate_limited;
    for i in 0..count {
        h.send_from(from(i), bytes);
    }
    u64::from(count) - (h.room.stats().rate_limited - before)
}

/// Fills the stranger table: one `PING` from each of [`MAX_STRANGERS`]
/// addresses on as many IP addresses.
fn fill_stranger_table(h: &mut Harness) {
    for i in 0..MAX_STRANGERS as u32 {
        h.send_from(many(i), "PING");
    }
    assert_eq!(h.room.limits.strangers(), MAX_STRANGERS);
}

#[test]
fn a_full_stranger_table_means_one_shared_strict_bucket_not_allowed() {
    let mut h = Harness::with(Config {
        rate_burst: 3,
        rate_per_sec: 1,
        ..Config::default()
    });
    fill_stranger_table(&mut h);
    // Ten new addresses on ten new IP addresses: untracked, they share the
    // overflow bucket of one address (3 datagrams), not "allowed".
    let newcomer = |i: u32| SocketAddr::from(([10, 2, 0, i as u8], 1000));
    assert_eq!(allowed(&mut h, newcomer, 10, "M x y"), 3);
    // Their N/Q churn makes no fan-out either.
    let joined: Vec<String> = (20..30u32)
        .flat_map(|i| h.send_from(newcomer(i), &format!("N n{i}")))
        .collect();
    assert!(!joined.contains(&"OK".to_owned()), "{joined:?}");
    assert_eq!(h.room.member_count(), 0);

    // Once the table's buckets have refilled, newcomers replace them and
    // get buckets of their own: a spray from many ports does not leave
    // everyone else sharing one bucket.
    h.advance_ms(5_000);
    let later = |i: u32| SocketAddr::from(([10, 3, 0, (i / 3) as u8], 1000));
    assert_eq!(allowed(&mut h, later, 30, "M x y"), 30);
    assert_eq!(h.room.limits.strangers(), MAX_STRANGERS);
}

#[test]
fn a_leavers_bucket_is_kept_even_when_the_stranger_table_is_full() {
    let config = Config {
        rate_burst: 4,
        rate_per_sec: 1,
        ..Config::default()
    };
    // No refilled stranger to make room: the leaver's state goes into the
    // overflow bucket, which it then shares.
    let mut h = Harness::with(config.clone());
    fill_stranger_table(&mut h);
    let alice = addr(1);
    // Overflow: N is one of its 4 tokens. As a member, alice has a copy.
    assert_eq!(h.send_from(alice, "N alice")[0], "OK");
    h.send_from(alice, "M alice 1");
    h.send_from(alice, "Q alice");
    // One token left in her bucket, none left to gain by rejoining.
    assert_eq!(h.send_from(alice, "N alice")[0], "OK");
    let sent = h.send_from(alice, "M alice 2");
    assert!(sent[0].starts_with("ERROR rate-limited"), "{sent:?}");

    // Refilled strangers: one is forgotten to keep the leaver's bucket.
    let mut h = Harness::with(config);
    fill_stranger_table(&mut h);
    h.advance_ms(5_000);
    assert_eq!(h.send_from(alice, "N alice")[0], "OK");
    h.send_from(alice, "M alice 1");
    h.send_from(alice, "M alice 2");
    h.send_from(alice, "Q alice");
    assert_eq!(h.room.limits.strangers(), MAX_STRANGERS);
    assert!(h.room.limits.strangers.contains_key(&alice));
    let sent = h.send_from(alice, "N alice");
    assert!(sent[0].starts_with("ERROR rate-limited"), "{sent:?}");
}

#[test]
fn one_host_spraying_source_ports_gets_its_ip_budget_only() {
    let mut h = Harness::new();
    let config = h.room.config().clone();
    let ip_burst = u64::from(config.rate_burst * IP_FACTOR);
    let ip_rate = u64::from(config.rate_per_sec * IP_FACTOR);
    // 2,000 ports, one datagram each: each port's own bucket is full.
    let port = |i: u32| port_of_one_host(1000 + i as u16);
    assert_eq!(allowed(&mut h, port, 2_000, "M x y"), ip_burst);
    // A second later, the refill of one IP address, whatever the ports.
    h.advance_ms(1_000);
    let later = |i: u32| port_of_one_host(4000 + i as u16);
    assert_eq!(allowed(&mut h, later, 2_000, "M x y"), ip_rate);
    // Another IP address is not affected.
    assert_eq!(allowed(&mut h, |_| addr(1), 1, "M x y"), 1);
}

#[test]
fn a_classroom_behind_one_nat_chats_at_the_per_address_defaults() {
    let mut h = Harness::new();
    let student = |i: u32| port_of_one_host(2000 + i as u16);
    for i in 0..4 {
        assert_eq!(h.send_from(student(i), &format!("N s{i}"))[0], "OK");
    }
    // Each of the four chats at the default per-address rate (40/s) for
    // ten seconds: nothing is limited.
    let before = h.room.stats().rate_limited;
    for tick in 0..400u32 {
        for i in 0..4 {
            h.send_from(student(i), &format!("M s{i} line {tick}"));
        }
        h.advance_ms(25);
    }
    assert_eq!(h.room.stats().rate_limited, before);
}

#[test]
fn max_per_ip_refuses_a_fifth_member_with_ip_full() {
    let mut h = Harness::new();
    for i in 0..4 {
        let sent = h.send_from(port_of_one_host(100 + i), &format!("N s{i}"));
        assert_eq!(sent[0], "OK");
    }
    let sent = h.send_from(port_of_one_host(200), "N fifth");
    assert_eq!(
        sent,
        [
            "ERROR ip-full: this computer already has 4 members in the room; \
          the relay allows 4 per address (--max-per-ip)"
        ]
    );
    // The same IP address written as IPv4-mapped IPv6 counts as it.
    let mapped: SocketAddr = "[::ffff:10.9.9.9]:300".parse().unwrap();
    let cookie = h.room.cookie_for(mapped, h.now());
    let sent = h.send_from(mapped, &format!("HELLO udpchat/1 sixth {cookie}"));
    assert!(sent[0].starts_with("ERROR ip-full "), "{sent:?}");
    assert_eq!(h.room.member_count(), 4);
    // One leaves: a place is free.
    h.send_from(port_of_one_host(100), "Q s0");
    assert_eq!(h.send_from(port_of_one_host(200), "N fifth")[0], "OK");

    // 0: no limit.
    let mut h = Harness::with(Config {
        max_per_ip: 0,
        ..Config::default()
    });
    for i in 0..6 {
        let sent = h.send_from(port_of_one_host(100 + i), &format!("N s{i}"));
        assert_eq!(sent[0], "OK");
    }
}

#[test]
fn max_per_ip_refusal_is_in_chinese_too() {
    let mut h = Harness::with(Config {
        max_per_ip: 1,
        lang: udpchat_proto::Lang::Zh,
        ..Config::default()
    });
    assert_eq!(h.send_from(port_of_one_host(1), "N a")[0], "OK");
    let sent = h.send_from(port_of_one_host(2), "N b");
    assert!(
        sent[0].starts_with("错误 ip-full: 这台电脑已有 1 个成员"),
        "{sent:?}"
    );
}

#[test]
fn join_churn_from_one_host_is_bounded_by_its_join_bucket() {
    let mut h = Harness::new();
    let a = port_of_one_host(1);
    let mut joins = 0;
    for i in 0..50 {
        if h.send_from(a, &format!("N n{i}"))
            .first()
            .is_some_and(|s| s == "OK")
        {
            joins += 1;
        }
        h.send_from(a, &format!("Q n{i}"));
    }
    assert_eq!(joins, super::IP_JOIN_BURST);
}

#[test]
fn a_classroom_behind_one_nat_with_a_raised_max_per_ip_joins_at_once() {
    let mut h = Harness::with(Config {
        max_per_ip: 30,
        ..Config::default()
    });
    for i in 0..30u16 {
        let student = port_of_one_host(3000 + i);
        let cookie = h.room.cookie_for(student, h.now());
        let sent = h.send_from(student, &padded_hello(&format!("s{i}")));
        assert!(sent[0].starts_with("COOKIE "), "{i}: {sent:?}");
        let sent = h.send_from(student, &format!("HELLO udpchat/1 s{i} {cookie}"));
        assert!(sent[0].starts_with("WELCOME "), "{i}: {sent:?}");
    }
    assert_eq!(h.room.member_count(), 30);
}

/// Reply bytes to `ip`'s addresses and datagram bytes from them, over
/// `count` sends of `bytes` from `from(i)`.
fn bytes_both_ways(
    h: &mut Harness,
    from: impl Fn(u32) -> SocketAddr,
    count: u32,
    bytes: &str,
) -> (usize, usize) {
    let (mut sent, mut received) = (0, 0);
    for i in 0..count {
        received += bytes.len();
        sent += h
            .send_from(from(i), bytes)
            .iter()
            .map(String::len)
            .sum::<usize>();
    }
    (sent, received)
}

#[test]
fn a_stranger_ip_gets_at_most_three_times_its_bytes_plus_the_allowance() {
    let mut h = Harness::with(Config {
        stranger_replies_per_sec: 100_000,
        ..Config::default()
    });
    // `M a b` (5 bytes) draws a 58-byte not-joined error; from 200 ports
    // of one host.
    let port = |i: u32| port_of_one_host(1000 + i as u16);
    let (sent, received) = bytes_both_ways(&mut h, port, 200, "M a b");
    assert!(sent > 0);
    assert!(
        sent <= 3 * received + ALLOWANCE_BURST as usize,
        "{sent} bytes sent for {received} received"
    );
    assert!(h.room.stats().replies_over_budget > 0);
    // A course client whose nickname is taken still reads its error line.
    h.send_from(addr(1), "N alice");
    let sent = h.send_from(addr(2), "N alice");
    assert!(sent[0].starts_with("ERROR nick-taken: "), "{sent:?}");
}

#[test]
fn a_classic_member_is_held_to_the_three_times_rule_for_replies() {
    let mut h = Harness::new();
    // A room of 60 members with long nicks: WHO is about 1.6 KB.
    for i in 0..60 {
        let sent = h.send_from(many(i), &format!("N member_with_long_nick{i:02}"));
        assert_eq!(sent[0], "OK");
    }
    let classic = many(0);
    // Forged or not, 3 bytes of WHO do not buy 1.6 KB: refused, one error.
    let sent = h.send_from(classic, "WHO");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("ERROR rate-limited: "), "{sent:?}");
    assert_eq!(h.room.stats().replies_over_budget, 1);
    // A member who has chatted has earned it (three times its bytes).
    let text = "x".repeat(300);
    for _ in 0..2 {
        h.send_from(classic, &format!("M member_with_long_nick00 {text}"));
    }
    let sent = h.send_from(classic, "WHO");
    assert!(sent[0].starts_with("* online (60, page 1/2): "), "{sent:?}");
}

#[test]
fn who_resend_and_welcome_are_charged_to_the_members_byte_bucket() {
    let burst = MEMBER_REPLY_BURST as usize;
    // WHO in a room of 600 members with 24-character nicks: ~15 KB each.
    let mut h = Harness::new();
    for i in 0..600 {
        h.send_from(many(i), &format!("N a_twenty_four_char_n{i:03}"));
    }
    h.join_structured(1, "asker");
    let (mut bytes, mut refused) = (0, 0);
    for _ in 0..20 {
        let sent = h.send_from(addr(1), "WHO");
        if sent[0].starts_with("ERROR rate-limited ") {
            refused += 1;
        } else {
            bytes += sent.iter().map(String::len).sum::<usize>();
        }
    }
    assert!(bytes <= burst, "{bytes} bytes of WHO");
    assert!(bytes > burst / 2, "{bytes} bytes of WHO");
    assert!(refused > 0);

    // RESEND of 64 long events: ~50 KB each.
    let mut h = Harness::with(Config {
        rate_burst: 1000,
        ..Config::default()
    });
    h.join_structured(1, "alice");
    let text = "y".repeat(780);
    for i in 0..64 {
        h.send(1, &format!("SAY {i} {text}"));
    }
    let mut answered = 0;
    for _ in 0..10 {
        let sent = h.send(1, "RESEND 1 64");
        if sent.len() > 1 {
            answered += 1;
            assert_eq!(sent.len(), 64);
        } else {
            assert!(sent[0].1.starts_with("ERROR rate-limited "), "{sent:?}");
        }
    }
    // About 52 KB each: two fit in the burst, the third is refused whole.
    assert_eq!(answered, 2);

    // A repeated HELLO: WELCOME plus 20 events of history, ~16 KB.
    let mut h = Harness::with(Config {
        rate_burst: 1000,
        ..Config::default()
    });
    h.join_structured(1, "alice");
    for i in 0..20 {
        h.send(1, &format!("SAY {i} {text}"));
    }
    h.join_structured(2, "bob");
    let hello = format!("HELLO udpchat/1 bob {}", h.cookie(2));
    let (mut welcomed, mut errors, mut silent) = (0, 0, 0);
    for _ in 0..20 {
        match h.send(2, &hello).first() {
            Some((_, s)) if s.starts_with("WELCOME ") => welcomed += 1,
            Some((_, s)) if s.starts_with("ERROR rate-limited ") => errors += 1,
            Some(other) => panic!("{other:?}"),
            None => silent += 1,
        }
    }
    // 128 KiB hold 8 of them, the first join's included; then an error
    // while one fits, then silence.
    assert_eq!(welcomed, 7);
    assert!(errors > 0 && silent > 0, "{errors} errors, {silent} silent");
    // The bucket refills: a second later, one more.
    h.advance_ms(1_000);
    assert!(h.send(2, &hello)[0].1.starts_with("WELCOME "));
}

#[test]
fn a_ping_flood_from_other_ips_does_not_starve_a_new_ips_cookie() {
    let mut h = Harness::new();
    // A thousand PINGs a second from 200 IP addresses, for 3 s.
    for tick in 0..30u32 {
        for i in 0..100 {
            h.send_from(many(i + 100 * (tick % 2)), "PING");
        }
        h.advance_ms(100);
        if tick % 10 == 9 {
            // Each second a new IP address asks for a cookie, and gets it.
            let newcomer = addr(tick as u8);
            let sent = h.send_from(newcomer, &padded_hello("carol"));
            assert!(sent[0].starts_with("COOKIE "), "{sent:?}");
        }
    }
    assert!(h.room.stats().stranger_replies_dropped > 1_000);
    // One IP address gets only its share of COOKIEs.
    let cookies = (0..20)
        .filter(|i| {
            h.send_from(port_of_one_host(500 + i), &padded_hello("dave"))
                .first()
                .is_some_and(|s| s.starts_with("COOKIE "))
        })
        .count();
    assert_eq!(cookies, IP_COOKIE_BURST as usize);
}

#[test]
fn a_classic_member_who_only_listens_keeps_the_room_for_two_hours() {
    let mut h = Harness::new();
    h.join_classic(1, "listener");
    h.join_classic(2, "talker");
    // The talker says something every minute; the listener never sends.
    for minute in 1..120 {
        h.advance_ms(60_000);
        h.timeout();
        let sent = h.send(2, &format!("M talker minute {minute}"));
        assert!(
            sent.contains(&(1, format!("talker: minute {minute}"))),
            "minute {minute}: {sent:?}"
        );
    }
    assert_eq!(h.room.stats().replies_over_budget, 0);
}

#[test]
fn members_sharing_an_ip_address_share_its_reply_byte_bucket() {
    // Eight structured members on one IP address (no --max-per-ip here),
    // each asking twice for 64 long events (~52 KB): their own buckets
    // would allow all 16 answers, their IP address's (4 x 128 KiB) ten.
    let mut h = Harness::with(Config {
        max_per_ip: 0,
        rate_burst: 1000,
        ..Config::default()
    });
    h.join_structured(1, "alice");
    let text = "y".repeat(780);
    for i in 0..64 {
        h.send(1, &format!("SAY {i} {text}"));
    }
    let members: Vec<SocketAddr> = (0..8).map(|i| port_of_one_host(100 + i)).collect();
    for (i, &m) in members.iter().enumerate() {
        let cookie = h.room.cookie_for(m, h.now());
        let sent = h.send_from(m, &format!("HELLO udpchat/1 m{i} {cookie}"));
        assert!(sent[0].starts_with("WELCOME "), "{sent:?}");
    }
    let mut answered = 0;
    for _ in 0..2 {
        for &m in &members {
            if h.send_from(m, "RESEND 1 64").len() == 64 {
                answered += 1;
            }
        }
    }
    let per_answer = 64 * 810;
    let ip_burst = (MEMBER_REPLY_BURST * IP_FACTOR) as usize;
    // The eight WELCOMEs (with 20 events of history each) came first.
    assert!(answered < 16);
    assert!(answered * per_answer <= ip_burst, "{answered} answers");
    assert!(answered >= 7, "{answered} answers");
}
