//! End to end: raised hands and attendance with the real relay (issue 13,
//! part I). The rules (queue order, minutes, late) are tested in
//! crates/room; here the wire, the console and the CSV file.

use crate::support::{loopback_ip, Client, Member, Relay, TempFile};

#[test]
fn a_classic_hand_is_called_on_from_the_console_and_attendance_is_saved() {
    let roster = TempFile::new("roster.txt");
    std::fs::write(&roster.0, "# class 3B\nalice\nBob\ncarol\n").unwrap();
    let csv = TempFile::new("attendance.csv");
    let mut relay =
        Relay::start_with_console(&["--roster", roster.as_str(), "--attendance", csv.as_str()]);
    let alice = Member::on_ip(relay.addr, loopback_ip(1));
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let bob = Member::on_ip(relay.addr, loopback_ip(2));
    bob.join_classic("bob");
    bob.expect("* bob joined");
    alice.expect("* bob joined");

    // Raised with the classic verb, as typed into nc.
    alice.send("H what is a port?\n");
    alice.expect("* your hand is up; 1st in line");
    bob.send("H");
    bob.expect("* your hand is up; 2nd in line");
    relay.expect_stdout("the hand on the console", |l| {
        l.contains("alice raises a hand") && l.contains("what is a port?")
    });

    relay.console("/hands");
    relay.expect_stdout("the queue", |l| l == "2 hands up");
    relay.expect_stdout("alice first", |l| l.trim_start().starts_with("1. alice "));

    relay.console("/next");
    alice.expect("* the teacher calls on you");
    relay.expect_stdout("the call", |l| {
        l.starts_with("calling on alice: what is a port?")
    });

    alice.send("M alice thanks");
    alice.expect("alice: thanks");
    bob.expect("alice: thanks");
    // Bob heard nothing of alice's hand: his next line is her chat.

    relay.console("/who");
    relay.expect_stdout("the members", |l| l == "2 members");
    relay.expect_stdout("alice with join time and idle", |l| {
        l.trim_start().starts_with("alice ")
            && l.contains(" classic joined ")
            && l.contains(" idle ")
    });

    relay.console("/attendance save");
    relay.expect_stdout("the summary", |l| {
        l == "attendance: 2 present, 0 late, 1 absent"
    });
    relay.expect_stdout("the save", |l| l.starts_with("attendance saved to"));
    let text = std::fs::read_to_string(&csv.0).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "nick,address,first_join,last_leave,minutes_present,messages_sent,on_roster,status"
    );
    let row = |nick: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{nick},")))
            .unwrap_or_else(|| panic!("no row for {nick} in {text:?}"))
            .split(',')
            .collect::<Vec<_>>()
    };
    let alice_row = row("alice");
    assert_eq!(alice_row[1], alice.addr().to_string());
    assert!(alice_row[2].ends_with('Z'), "{alice_row:?}");
    assert_eq!(alice_row[3], "", "alice is still here");
    assert_eq!(&alice_row[5..], ["1", "yes", "present"]);
    assert_eq!(&row("bob")[5..], ["0", "yes", "present"]);
    assert_eq!(
        row("carol"),
        ["carol", "", "", "", "0", "0", "yes", "absent"]
    );

    // At shutdown it is written again, with everyone's leave.
    relay.console("/quit");
    relay
        .wait_exit(crate::support::WAIT)
        .expect("the relay exits after /quit");
    let text = std::fs::read_to_string(&csv.0).unwrap();
    let alice_line = text.lines().find(|l| l.starts_with("alice,")).unwrap();
    let cells: Vec<&str> = alice_line.split(',').collect();
    assert!(
        cells[3].ends_with('Z'),
        "alice left at shutdown: {alice_line}"
    );
}

#[test]
fn the_client_raises_a_hand_and_is_called_on() {
    let mut relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    alice.say("/hand is UDP reliable?");
    alice.stdout.wait_contains("your hand is up; 1st in line");
    relay.expect_stdout("the hand on the console", |l| {
        l.contains("alice raises a hand") && l.contains("is UDP reliable?")
    });
    relay.console("/next");
    alice.stdout.wait_contains("the teacher calls on you");
    relay.console("/hands");
    relay.expect_stdout("an empty queue", |l| l == "no hands up");
}
