//! The checks shared by the fuzz targets in `fuzz/` and by the tests that
//! replay the fuzz corpus on stable. Not part of the API.
//!
//! Each check takes any bytes, must never panic on a correct implementation,
//! and panics (with a message saying what broke) when a property fails.

use crate::{
    classic, split_key_prefix, strip_line_ending, ClientMsg, Lang, RelayMsg, MAX_DATAGRAM,
};

/// The datagram after its session key prefix, if it has one; checks that
/// the prefix splits off and goes back on exactly.
fn unkeyed(bytes: &[u8]) -> &[u8] {
    let (key, body) = split_key_prefix(bytes);
    if let Some(key) = key {
        assert_eq!(
            key.prefixed(body),
            bytes,
            "the key prefix does not round-trip"
        );
        assert_eq!(key.to_string().len(), 16);
    }
    body
}

/// Checks that `msg` encodes to a datagram within [`MAX_DATAGRAM`] that
/// parses back to the same value and encodes again to the same bytes; returns
/// the encoding.
fn round_trip<T: PartialEq + std::fmt::Debug>(
    msg: &T,
    encode: fn(&T) -> Vec<u8>,
    parse: fn(&[u8]) -> Result<T, crate::ParseError>,
) -> Vec<u8> {
    let encoded = encode(msg);
    assert!(
        encoded.len() <= MAX_DATAGRAM,
        "{msg:?} encodes to {} bytes",
        encoded.len()
    );
    let again = parse(&encoded)
        .unwrap_or_else(|e| panic!("{msg:?} encodes to {encoded:?}, which fails to parse: {e}"));
    assert_eq!(
        &again, msg,
        "round trip through {encoded:?} changed the value"
    );
    assert_eq!(encode(&again), encoded, "encoding is not stable");
    encoded
}

/// Whether `encoded` is `input` with its nicknames put in NFC (a nickname
/// is kept in NFC, PROTOCOL.md section 3): `input` is not NFC, and the two
/// are the same once normalized. Fields are separated by spaces, which
/// never combine, so normalizing the whole datagram normalizes each field.
fn renormalized(encoded: &[u8], input: &[u8]) -> bool {
    use unicode_normalization::{is_nfc, UnicodeNormalization};
    let (Ok(encoded), Ok(input)) = (std::str::from_utf8(encoded), std::str::from_utf8(input))
    else {
        return false;
    };
    !is_nfc(input) && input.nfc().eq(encoded.nfc())
}

/// Parses `bytes` as a client datagram; if that succeeds, checks that the
/// value encodes to a datagram within [`MAX_DATAGRAM`] that parses back to
/// the same value and encodes again to the same bytes, and that the encoding
/// reproduces the input except where the grammar allows two spellings
/// (`HELLO` padding, cookie letter case, a nickname not in NFC, the space
/// before an empty question of `H`/`HAND`). A session
/// key prefix is checked and set aside first.
pub fn check_client(bytes: &[u8]) {
    let bytes = unkeyed(bytes);
    let Ok(msg) = ClientMsg::parse(bytes) else {
        return;
    };
    let encoded = round_trip(&msg, ClientMsg::encode, ClientMsg::parse);
    let (input, _) = strip_line_ending(bytes);
    // `H ` and `HAND ` (an empty question) are `H` and `HAND`.
    let empty_question = matches!(msg, ClientMsg::Hand(None) | ClientMsg::ClassicHand(None))
        && input.strip_suffix(b" ") == Some(&encoded[..]);
    if !matches!(msg, ClientMsg::Hello { .. }) && !empty_question && !renormalized(&encoded, input)
    {
        assert_eq!(
            encoded, input,
            "{msg:?} re-encodes differently from its input"
        );
    }
}

/// Parses `bytes` as a structured relay datagram; if that succeeds, checks the
/// same round-trip properties as [`check_client`], and that the classic
/// rendering has no control characters and (but for `WHO` pages, which
/// [`RelayMsg::who_pages`] sizes) fits in a datagram with its newline.
pub fn check_relay(bytes: &[u8]) {
    let bytes = unkeyed(bytes);
    let Ok(msg) = RelayMsg::parse(bytes) else {
        return;
    };
    let encoded = round_trip(&msg, RelayMsg::encode, RelayMsg::parse);
    let (input, _) = strip_line_ending(bytes);
    if matches!(msg, RelayMsg::Cookie(_)) {
        assert!(encoded.eq_ignore_ascii_case(input), "cookie changed");
    } else if !renormalized(&encoded, input) {
        assert_eq!(
            encoded, input,
            "{msg:?} re-encodes differently from its input"
        );
    }
    for lang in [Lang::En, Lang::Zh] {
        if let Some(line) = classic::render(&msg, lang) {
            assert!(
                !line.chars().any(|c| crate::check_text_char(c).is_err()),
                "classic line {line:?} has a control character"
            );
            // Room for the newline; Who pages are sized by who_pages instead.
            if !matches!(msg, RelayMsg::Who { .. }) {
                assert!(
                    line.len() < MAX_DATAGRAM,
                    "classic line of {} bytes",
                    line.len()
                );
            }
        }
    }
}
