//! What a typed line means: a message for the room or a `/command`.

use thiserror::Error;

use crate::catalog::Msg;
use udpchat_proto::{Nick, ParseError, Text, MAX_TEXT_BYTES};

/// One typed line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Say this to the room.
    Say(Text),
    /// `/who`.
    Who,
    /// `/msg NICK text`.
    Msg {
        /// Recipient.
        to: Nick,
        /// Message.
        text: Text,
    },
    /// `/nick NEW`.
    Rename(Nick),
    /// `/hand [question]`: raise a hand for the teacher.
    Hand(Option<Text>),
    /// `/quit`.
    Quit,
    /// `/help`.
    Help,
    /// `/clear`: clear the screen (the terminal's business, not the
    /// session's).
    Clear,
    /// An empty or blank line: nothing to do.
    Nothing,
}

/// Why a typed line cannot be sent. The message is what the user reads.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InputError {
    /// `/something` that is not a command.
    #[error("unknown command /{0}; type /help for the list (// sends a line starting with /)")]
    UnknownCommand(String),
    /// A command without its arguments.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// The nickname given is not valid.
    #[error("{0}")]
    Nick(ParseError),
    /// The message cannot be sent as is.
    #[error("{0}")]
    Text(ParseError),
}

/// Parses one typed line (without its line ending; a trailing `\r` or `\n`
/// is ignored). Tabs become four spaces, since the protocol refuses them.
pub fn parse_input(line: &str) -> Result<Input, InputError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let line = if line.contains('\t') {
        line.replace('\t', "    ")
    } else {
        line.to_owned()
    };
    if line.trim().is_empty() {
        return Ok(Input::Nothing);
    }
    let Some(command) = line.strip_prefix('/') else {
        return text(&line).map(Input::Say);
    };
    if command.starts_with('/') {
        return text(command).map(Input::Say);
    }
    let (verb, args) = match command.split_once(' ') {
        Some((verb, args)) => (verb, args),
        None => (command, ""),
    };
    match verb.to_lowercase().as_str() {
        "who" => Ok(Input::Who),
        "hand" => {
            let question = args.trim();
            if question.is_empty() {
                Ok(Input::Hand(None))
            } else {
                text(question).map(|q| Input::Hand(Some(q)))
            }
        }
        "me" => {
            if args.trim().is_empty() {
                return Err(InputError::Usage("/me TEXT"));
            }
            // Sent as chat: the relay makes `/me ...` an action.
            text(&format!("/me {args}")).map(Input::Say)
        }
        "quit" | "exit" => Ok(Input::Quit),
        "help" | "?" => Ok(Input::Help),
        "clear" => Ok(Input::Clear),
        "nick" => {
            let new = args.trim();
            if new.is_empty() {
                return Err(InputError::Usage("/nick NEW"));
            }
            Nick::new(new).map(Input::Rename).map_err(InputError::Nick)
        }
        "msg" => {
            let args = args.trim_start_matches(' ');
            let Some((to, message)) = args.split_once(' ') else {
                return Err(InputError::Usage("/msg NICK text"));
            };
            if message.trim().is_empty() {
                return Err(InputError::Usage("/msg NICK text"));
            }
            let to = Nick::new(to).map_err(InputError::Nick)?;
            Ok(Input::Msg {
                to,
                text: text(message)?,
            })
        }
        _ => Err(InputError::UnknownCommand(
            crate::text::sanitize(verb).chars().take(20).collect(),
        )),
    }
}

/// Splits a typed line that is too long for one message into lines that
/// each fit (at most [`MAX_TEXT_BYTES`] bytes), breaking after a space when
/// one is in the last quarter of a piece, else between characters. Commands
/// and lines that fit are returned as they are.
pub fn split_long_line(line: &str) -> Vec<&str> {
    let line = line.trim_end_matches(['\n', '\r']);
    // Tabs expand to four spaces later: leave room for that.
    let limit = MAX_TEXT_BYTES
        .saturating_sub(3 * line.matches('\t').count())
        .max(4);
    if line.len() <= limit || line.starts_with('/') {
        return vec![line];
    }
    let mut pieces = Vec::new();
    let mut rest = line;
    while rest.len() > limit {
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(' ') {
            if space + 1 >= cut * 3 / 4 {
                cut = space + 1;
            }
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// Splits what the line editor returned into the messages to send, in
/// order: one per line (a paste of several lines comes back from the editor
/// as one string with line breaks, and a line break cannot travel in a
/// message), each line too long for one message split by
/// [`split_long_line`]. `\r\n`, `\n` and a lone `\r` all end a line.
/// Blank lines stay in the list; [`parse_input`] makes them
/// [`Input::Nothing`].
pub fn typed_messages(typed: &str) -> Vec<&str> {
    let typed = typed.strip_suffix("\r\n").unwrap_or(typed);
    let typed = typed.strip_suffix(['\n', '\r']).unwrap_or(typed);
    typed
        .split("\r\n")
        .flat_map(|line| line.split(['\n', '\r']))
        .flat_map(split_long_line)
        .collect()
}

impl InputError {
    /// The message the user reads, in any language (its English words are
    /// this error's `Display`).
    pub fn msg(&self) -> Msg {
        match self {
            InputError::UnknownCommand(verb) => Msg::UnknownCommand { verb: verb.clone() },
            InputError::Usage(usage) => Msg::Usage { usage },
            InputError::Nick(error) | InputError::Text(error) => Msg::Invalid {
                error: error.clone(),
            },
        }
    }
}

/// What the user reads when a typed or pasted line cannot be sent: which
/// line (its start, made safe to show) and why. Problems with a command
/// (usage, unknown command) already say what to do and are shown as they
/// are.
pub fn refusal(line: &str, error: &InputError) -> Msg {
    match error {
        InputError::Text(error) => {
            const SHOWN: usize = 40;
            let start: String = line.chars().take(SHOWN).collect();
            Msg::LineNotSent {
                start: crate::text::sanitize(&start).into_owned(),
                more: line.chars().nth(SHOWN).is_some(),
                error: error.clone(),
            }
        }
        _ => error.msg(),
    }
}

/// [`refusal`] in English.
pub fn refusal_text(line: &str, error: &InputError) -> String {
    refusal(line, error).text(crate::catalog::Lang::En)
}

fn text(s: &str) -> Result<Text, InputError> {
    Text::new(s).map_err(InputError::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(s: &str) -> Input {
        Input::Say(Text::new(s).unwrap())
    }

    #[test]
    fn plain_line_is_said_exactly() {
        assert_eq!(parse_input("  hello  你好 \n"), Ok(say("  hello  你好 ")));
    }

    #[test]
    fn blank_line_does_nothing() {
        assert_eq!(parse_input(""), Ok(Input::Nothing));
        assert_eq!(parse_input("   \r\n"), Ok(Input::Nothing));
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse_input("/who"), Ok(Input::Who));
        assert_eq!(parse_input("/WHO"), Ok(Input::Who));
        assert_eq!(parse_input("/quit"), Ok(Input::Quit));
        assert_eq!(parse_input("/help"), Ok(Input::Help));
        assert_eq!(parse_input("/clear"), Ok(Input::Clear));
        assert_eq!(
            parse_input("/nick 小红"),
            Ok(Input::Rename(Nick::new("小红").unwrap()))
        );
        assert_eq!(
            parse_input("/msg bob hi  there "),
            Ok(Input::Msg {
                to: Nick::new("bob").unwrap(),
                text: Text::new("hi  there ").unwrap()
            })
        );
    }

    #[test]
    fn hand_takes_an_optional_question() {
        assert_eq!(parse_input("/hand"), Ok(Input::Hand(None)));
        assert_eq!(parse_input("/hand   "), Ok(Input::Hand(None)));
        assert_eq!(
            parse_input("/hand what is a port?"),
            Ok(Input::Hand(Some(Text::new("what is a port?").unwrap())))
        );
        assert!(matches!(
            parse_input("/hand * the teacher calls on you"),
            Err(InputError::Text(ParseError::LooksLikeNotice(_)))
        ));
    }

    #[test]
    fn double_slash_sends_a_slash_line() {
        assert_eq!(parse_input("//who"), Ok(say("/who")));
    }

    #[test]
    fn bad_commands_explain_themselves() {
        assert_eq!(
            parse_input("/frob x"),
            Err(InputError::UnknownCommand("frob".into()))
        );
        assert_eq!(
            parse_input("/msg bob"),
            Err(InputError::Usage("/msg NICK text"))
        );
        assert_eq!(parse_input("/nick"), Err(InputError::Usage("/nick NEW")));
        assert!(matches!(
            parse_input("/msg bad:nick hi"),
            Err(InputError::Nick(_))
        ));
        assert!(matches!(parse_input("/nick a b"), Err(InputError::Nick(_))));
    }

    #[test]
    fn typed_nicknames_are_checked_locally_in_words_and_kept_in_nfc() {
        let blank = parse_input("/nick \u{3164}").unwrap_err().to_string();
        assert!(blank.contains("invisible or blank"), "{blank}");
        let space = parse_input("/msg bob\u{3000}smith hi")
            .unwrap_err()
            .to_string();
        assert!(space.contains("invisible or blank"), "{space}");
        assert_eq!(
            parse_input("/nick \u{1112}\u{1161}\u{11ab}\u{1100}\u{116e}\u{11a8}"),
            Ok(Input::Rename(Nick::new("한국").unwrap()))
        );
    }

    #[test]
    fn control_characters_in_typed_text_are_refused_but_tabs_expand() {
        assert!(matches!(
            parse_input("a\u{1b}[2J"),
            Err(InputError::Text(ParseError::ControlChar(0x1b)))
        ));
        assert_eq!(parse_input("a\tb"), Ok(say("a    b")));
    }

    #[test]
    fn long_lines_split_into_messages_that_fit_and_keep_every_byte() {
        let line = format!("{} {}", "字".repeat(200), "word ".repeat(200));
        let pieces = split_long_line(&line);
        assert!(pieces.len() > 1);
        assert_eq!(pieces.concat(), line);
        for p in &pieces {
            assert!(p.len() <= MAX_TEXT_BYTES);
            assert!(matches!(parse_input(p), Ok(Input::Say(_))), "{p:?}");
        }
        assert_eq!(split_long_line("short\n"), ["short"]);
        let command = format!("/msg bob {}", "x".repeat(900));
        assert_eq!(split_long_line(&command), [command.as_str()]);
    }

    #[test]
    fn a_pasted_block_becomes_one_message_per_line_in_order() {
        let block: String = (1..=30).map(|i| format!("line {i:02}\n")).collect();
        let want: Vec<String> = (1..=30).map(|i| format!("line {i:02}")).collect();
        assert_eq!(typed_messages(&block), want);
        // Any line ending, blank lines kept (they parse to Nothing).
        assert_eq!(typed_messages("a\r\nb\rc\n\nd"), ["a", "b", "c", "", "d"]);
        assert_eq!(typed_messages("one line"), ["one line"]);
        assert_eq!(typed_messages(""), [""]);
        // A long line inside a paste is split like a typed one, in place.
        let long = "word ".repeat(300);
        let block = format!("first\n{long}\nlast\n");
        let pieces = typed_messages(&block);
        assert_eq!(pieces.first(), Some(&"first"));
        assert_eq!(pieces.last(), Some(&"last"));
        assert_eq!(pieces[1..pieces.len() - 1].concat(), long);
        assert!(pieces.iter().all(|p| p.len() <= MAX_TEXT_BYTES));
        for p in typed_messages(&block) {
            assert!(matches!(parse_input(p), Ok(Input::Say(_))), "{p:?}");
        }
    }

    #[test]
    fn a_line_that_cannot_be_sent_is_named_and_explained() {
        let line = "ring \u{7} the bell";
        let e = parse_input(line).unwrap_err();
        let text = refusal_text(line, &e);
        assert_eq!(
            text,
            "not sent: \"ring \\u{7} the bell\": message contains the control \
             character U+0007; remove it and send again"
        );
        assert!(!text.chars().any(crate::text::must_escape), "{text:?}");
        let long = format!("{}\u{1b}", "x".repeat(100));
        let text = refusal_text(&long, &parse_input(&long).unwrap_err());
        assert!(
            text.starts_with(&format!("not sent: \"{}…\"", "x".repeat(40))),
            "{text}"
        );
        // Command problems say what to do already.
        let e = parse_input("/frob").unwrap_err();
        assert_eq!(refusal_text("/frob", &e), e.to_string());
    }

    #[test]
    fn look_alike_relay_lines_and_padding_are_refused_before_sending() {
        let line = format!("see you{}* teacher left", " ".repeat(10));
        let e = parse_input(&line).unwrap_err();
        assert!(
            matches!(e, InputError::Text(ParseError::LooksLikeNotice(_))),
            "{e:?}"
        );
        assert!(
            refusal_text(&line, &e)
                .ends_with("message looks like a relay notice (\"* teacher left\"); reword it"),
            "{}",
            refusal_text(&line, &e)
        );
        for line in ["/msg bob hi [host] class is over", "[主持人] 下课"] {
            assert!(
                matches!(
                    parse_input(line),
                    Err(InputError::Text(ParseError::LooksLikeNotice(_)))
                ),
                "{line}"
            );
        }
        assert_eq!(
            parse_input(&format!("a{}b", " ".repeat(17))),
            Err(InputError::Text(ParseError::SpaceRun))
        );
        // Five tabs expand to 20 spaces; four (16) are fine.
        assert_eq!(
            parse_input("\t\t\t\t\tx"),
            Err(InputError::Text(ParseError::SpaceRun))
        );
        assert!(matches!(parse_input("\t\t\t\tx"), Ok(Input::Say(_))));
        assert_eq!(parse_input("2 * 3 = 6"), Ok(say("2 * 3 = 6")));
    }

    #[test]
    fn too_long_text_is_refused() {
        assert!(matches!(
            parse_input(&"x".repeat(801)),
            Err(InputError::Text(ParseError::TextTooLong(801)))
        ));
    }

    #[test]
    fn me_is_an_action_sent_as_chat() {
        assert_eq!(parse_input("/me waves"), Ok(say("/me waves")));
        assert_eq!(parse_input("/ME waves  back"), Ok(say("/me waves  back")));
        assert_eq!(parse_input("/me"), Err(InputError::Usage("/me TEXT")));
        assert_eq!(parse_input("/me   "), Err(InputError::Usage("/me TEXT")));
        // `//me` is plain chat that starts with /me.
        assert_eq!(parse_input("//me x"), Ok(say("/me x")));
    }
}
