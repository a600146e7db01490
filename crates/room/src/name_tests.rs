//! Names nobody can fake (issue 13): look-alikes of an online nickname are
//! taken, reserved names and their look-alikes are refused, invisible and
//! blank nicknames are refused in words, in both dialects and languages.

use udpchat_proto::{ErrorCode, Lang, Nick};

use crate::testing::{addr, to, Harness};
use crate::{Config, Event, RESERVED_NICKS};

fn zh() -> Harness {
    Harness::with(Config {
        lang: Lang::Zh,
        ..Config::default()
    })
}

/// What `addr(n)` gets for a classic join as `nick`. Each refusal below
/// comes from an address (an IP address) of its own: replies to strangers
/// spend a small per-IP byte allowance, which a dozen refusals would use up.
fn classic(h: &mut Harness, n: u8, nick: &str) -> Vec<String> {
    to(&h.send(n, &format!("N {nick}")), n)
}

/// What `addr(n)` gets for a structured join as `nick`.
fn hello(h: &mut Harness, n: u8, nick: &str) -> Vec<String> {
    let cookie = h.cookie(n);
    to(&h.send(n, &format!("HELLO udpchat/1 {nick} {cookie}")), n)
}

const TEACHER_LOOK_ALIKES: &[&str] = &[
    "teacher",
    "TEACHER",
    "Teacher",
    "t\u{435}acher",
    "ｔｅａｃｈｅｒ",
    "𝐭𝐞𝐚𝐜𝐡𝐞𝐫",
];

#[test]
fn reserved_names_and_their_look_alikes_are_refused_in_both_dialects() {
    let mut h = Harness::new();
    let mut n = 10;
    for name in RESERVED_NICKS {
        assert_eq!(
            classic(&mut h, n, name),
            [format!(
                "ERROR nick-reserved: the nickname {name} is reserved for the teacher and the \
                 relay; choose another"
            )]
        );
        let sent = hello(&mut h, n + 1, name);
        assert!(
            sent[0].starts_with("ERROR nick-reserved the nickname "),
            "{sent:?}"
        );
        n += 2;
    }
    for name in TEACHER_LOOK_ALIKES
        .iter()
        .chain(&["HOST", "Admin", "ｒｅｌａｙ"])
    {
        let sent = classic(&mut h, n, name);
        assert!(
            sent[0].starts_with("ERROR nick-reserved: "),
            "{name}: {sent:?}"
        );
        let structured = hello(&mut h, n + 1, name);
        assert!(
            structured[0].starts_with("ERROR nick-reserved "),
            "{name}: {structured:?}"
        );
        n += 2;
    }
    assert_eq!(
        to(&h.send(1, "N t\u{435}acher"), 1),
        ["ERROR nick-reserved: the nickname t\u{435}acher looks like teacher, which is reserved \
          for the teacher and the relay; choose another"]
    );
    assert_eq!(h.room.member_count(), 0);
    assert!(h.out.events.iter().any(|e| matches!(
        e,
        Event::Refused {
            code: ErrorCode::NickReserved,
            ..
        }
    )));
    // Names that only contain a reserved one are fine.
    h.join_classic(1, "teacherspet");
    h.join_structured(2, "hostname");
}

#[test]
fn reserved_refusals_are_in_chinese_with_lang_zh() {
    let mut h = zh();
    assert_eq!(
        to(&h.send(1, "N 主持人"), 1),
        ["错误 nick-reserved: 昵称 主持人 留给老师和服务器使用，请换一个"]
    );
    assert_eq!(
        to(&h.send(1, "N ｔｅａｃｈｅｒ"), 1),
        ["错误 nick-reserved: 昵称 ｔｅａｃｈｅｒ 看起来像 teacher，这个名字留给老师和服务器使用，请换一个"]
    );
    assert!(hello(&mut h, 2, "系统消息")[0].starts_with("ERROR nick-reserved 昵称 系统消息 "));
}

#[test]
fn reserve_flag_names_are_refused_with_their_look_alikes() {
    let mut reserved = Config::default().reserved;
    reserved.push(Nick::new("Ms.Li").unwrap());
    reserved.push(Nick::new("李老师").unwrap());
    let mut h = Harness::with(Config {
        reserved,
        ..Config::default()
    });
    for (n, name) in (10..).zip([
        "Ms.Li",
        "ms.li",
        "MS.LI",
        "\u{41c}s.Li",
        "Ｍｓ.Ｌｉ",
        "李老师",
    ]) {
        let sent = classic(&mut h, n, name);
        assert!(
            sent[0].starts_with("ERROR nick-reserved: "),
            "{name}: {sent:?}"
        );
    }
    h.join_classic(1, "Ms.Lu");
    // Without the flag the name is free.
    let mut plain = Harness::new();
    plain.join_classic(1, "Ms.Li");
}

#[test]
fn renaming_to_a_reserved_name_or_look_alike_is_refused() {
    let mut h = Harness::new();
    h.join_classic(1, "alice");
    h.join_structured(2, "bob");
    for name in ["teacher", "𝐭𝐞𝐚𝐜𝐡𝐞𝐫", "老师"] {
        let sent = to(&h.send(1, &format!("NICK {name}")), 1);
        assert!(
            sent[0].starts_with("ERROR nick-reserved: "),
            "{name}: {sent:?}"
        );
        let sent = h.send(2, &format!("NICK {name}"));
        assert!(sent[0].1.starts_with("ERROR nick-reserved "), "{sent:?}");
    }
    let names: Vec<String> = h.room.members().iter().map(|m| m.0.to_string()).collect();
    assert_eq!(names, ["alice", "bob"]);
}

#[test]
fn a_look_alike_of_an_online_name_is_taken_in_both_dialects() {
    let mut h = Harness::new();
    h.join_classic(1, "alice");
    h.join_structured(2, "Straße");
    h.join_classic(3, "한국");
    for (n, asked) in (10..)
        .step_by(2)
        .zip(["\u{430}lice", "ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞", "AL\u{406}CE"])
    {
        assert_eq!(
            classic(&mut h, n, asked),
            [format!(
                "ERROR nick-taken: the nickname {asked} looks like alice, who is online; \
                 choose another"
            )]
        );
        let sent = hello(&mut h, n + 1, asked);
        assert_eq!(
            sent,
            [format!(
                "ERROR nick-taken the nickname {asked} looks like alice, who is online; \
                 choose another"
            )]
        );
    }
    // The same letters in another case: the plain reason.
    assert_eq!(
        to(&h.send(4, "N STRASSE"), 4),
        ["ERROR nick-taken: nickname is taken; choose another (STRASSE)"]
    );
    assert!(hello(&mut h, 5, "strasse")[0].starts_with("ERROR nick-taken nickname is taken"));
    assert!(h.out.events.contains(&Event::Refused {
        addr: addr(5),
        code: ErrorCode::NickTaken,
        detail: "strasse is taken".into(),
    }));
    // The decomposed spelling of the Hangul word is the same nickname.
    let decomposed = "\u{1112}\u{1161}\u{11ab}\u{1100}\u{116e}\u{11a8}";
    assert_eq!(
        to(&h.send(4, &format!("N {decomposed}")), 4),
        ["ERROR nick-taken: nickname is taken; choose another (한국)"]
    );
    assert_eq!(h.room.member_count(), 3);
}

#[test]
fn capitals_that_look_like_an_online_name_are_taken() {
    let mut h = Harness::new();
    h.join_classic(1, "Ms.Li");
    h.join_structured(2, "KIM");
    assert_eq!(
        classic(&mut h, 10, "\u{41c}s.Li"),
        [
            "ERROR nick-taken: the nickname \u{41c}s.Li looks like Ms.Li, who is online; choose \
          another"
        ]
    );
    assert!(hello(&mut h, 11, "\u{41a}IM")[0].starts_with("ERROR nick-taken the nickname"));
    // Renaming into one, too; and a case variant of one's own name is fine.
    assert!(to(&h.send(1, "NICK \u{41a}IM"), 1)[0].starts_with("ERROR nick-taken: "));
    assert_eq!(
        to(&h.send(1, "NICK MS.LI"), 1),
        ["* Ms.Li is now known as MS.LI"]
    );
    assert_eq!(h.room.member_count(), 2);
}

#[test]
fn look_alike_refusals_are_in_chinese_with_lang_zh() {
    let mut h = zh();
    h.join_classic(1, "alice");
    assert_eq!(
        to(&h.send(2, "N \u{430}lice"), 2),
        ["错误 nick-taken: 昵称 \u{430}lice 看起来像在线成员 alice 的昵称，请换一个"]
    );
    assert_eq!(
        hello(&mut h, 3, "\u{430}lice"),
        ["ERROR nick-taken 昵称 \u{430}lice 看起来像在线成员 alice 的昵称，请换一个"]
    );
}

#[test]
fn renaming_to_a_look_alike_of_an_online_name_is_refused() {
    let mut h = Harness::new();
    h.join_classic(1, "alice");
    h.join_structured(2, "bob");
    assert_eq!(
        to(&h.send(2, "NICK \u{430}lice"), 2),
        ["ERROR nick-taken the nickname \u{430}lice looks like alice, who is online; choose another"]
    );
    assert_eq!(
        to(&h.send(1, "NICK b0b"), 1),
        ["ERROR nick-taken: the nickname b0b looks like bob, who is online; choose another"]
    );
    // A member may take a look-alike of its own name.
    assert_eq!(
        to(&h.send(1, "NICK \u{430}lice"), 1),
        ["* alice is now known as \u{430}lice"]
    );
    // And the old spelling is then a look-alike of an online name.
    h.send(1, "NICK alicia");
    h.join_classic(3, "\u{430}lice");
    assert!(to(&h.send(4, "N alice"), 4)[0].contains("looks like \u{430}lice"));
}

#[test]
fn invisible_and_blank_nicknames_are_refused_in_words() {
    let mut h = Harness::new();
    let blank = [
        "\u{3164}",
        "\u{115f}",
        "\u{1160}\u{1160}",
        "\u{ffa0}",
        "bob\u{3164}",
        "te\u{200b}acher",
    ];
    for (n, nick) in (10..).step_by(2).zip(blank) {
        assert_eq!(
            classic(&mut h, n, nick),
            ["ERROR nick-invalid: a nickname cannot contain invisible or blank characters (such \
              as a Hangul filler or a zero-width space); use letters, digits, _ - . only"],
            "{nick:?}"
        );
        // (A structured client checks the rules before it sends, and a
        // malformed HELLO this short from a stranger is not answered.)
    }
    assert_eq!(
        // (One word after the name is a join code; two are a space.)
        to(&h.send(1, "N bob smith jones"), 1),
        ["ERROR nick-invalid: spaces are not allowed in a nickname; use _ or - instead"]
    );
    let mut h = zh();
    assert_eq!(
        to(&h.send(1, "N \u{3164}"), 1),
        ["错误 nick-invalid: 昵称中不能有看不见的或空白的字符（例如韩文填充字符、零宽空格）；请只用字母、数字或 _ - ."]
    );
    assert_eq!(h.room.member_count(), 0);
}

#[test]
fn a_member_is_known_by_the_nfc_spelling() {
    let mut h = Harness::new();
    h.join_classic(1, "Zoe\u{308}");
    h.join_structured(2, "\u{1112}\u{1161}\u{11ab}\u{1100}\u{116e}\u{11a8}");
    let names: Vec<String> = h.room.members().iter().map(|m| m.0.to_string()).collect();
    assert!(names.contains(&"Zo\u{eb}".to_owned()), "{names:?}");
    assert!(names.contains(&"한국".to_owned()), "{names:?}");
    // Its own messages may name it in either spelling.
    let sent = h.send(1, "M Zoe\u{308} hi");
    assert_eq!(to(&sent, 1), ["Zo\u{eb}: hi"]);
}
