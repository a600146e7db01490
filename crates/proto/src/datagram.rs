//! The one check of "is this an acceptable relay datagram", shared by the
//! relay's fuzz oracle, the end-to-end tests and anything else that must
//! hold the relay to PROTOCOL.md's promises about every datagram it sends.

use crate::{check_text_char, LineEnding, MAX_DATAGRAM};

/// Why a datagram from a relay breaks the wire rules every client relies on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramFault {
    /// Over [`MAX_DATAGRAM`] bytes: a classic client's 1024-byte read would cut it.
    #[error("{0} bytes, over the {MAX_DATAGRAM}-byte limit")]
    TooLong(usize),
    /// Not valid UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// Nothing but (at most) a line ending.
    #[error("empty datagram")]
    Empty,
    /// A client that joined with `N nick\n` expects every line to end in
    /// exactly one `\n`.
    #[error("no trailing newline")]
    NoNewline,
    /// A control, line-separator or bidi character, which could forge or
    /// hide a line on the reader's terminal.
    #[error("control character U+{0:04X}")]
    ControlChar(u32),
}

/// Checks one datagram a relay sent to a client that expects `ending`
/// (bare, or one `\n` for classic clients that joined with a newline):
/// at most [`MAX_DATAGRAM`] bytes, UTF-8, not empty, and free of every
/// character [`check_text_char`] refuses.
pub fn check_relay_datagram(bytes: &[u8], ending: LineEnding) -> Result<(), DatagramFault> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(DatagramFault::TooLong(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| DatagramFault::NotUtf8)?;
    let body = match ending {
        LineEnding::Bare => text,
        LineEnding::Newline => text.strip_suffix('\n').ok_or(DatagramFault::NoNewline)?,
    };
    if body.is_empty() {
        return Err(DatagramFault::Empty);
    }
    match body.chars().find(|&c| check_text_char(c).is_err()) {
        Some(c) => Err(DatagramFault::ControlChar(c as u32)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_lines_pass() {
        assert_eq!(check_relay_datagram(b"OK", LineEnding::Bare), Ok(()));
        assert_eq!(
            check_relay_datagram("王: 你好\n".as_bytes(), LineEnding::Newline),
            Ok(())
        );
    }

    #[test]
    fn each_fault_is_named() {
        let long = vec![b'a'; MAX_DATAGRAM + 1];
        assert_eq!(
            check_relay_datagram(&long, LineEnding::Bare),
            Err(DatagramFault::TooLong(MAX_DATAGRAM + 1))
        );
        assert_eq!(
            check_relay_datagram(&[0xff, b'a'], LineEnding::Bare),
            Err(DatagramFault::NotUtf8)
        );
        assert_eq!(
            check_relay_datagram(b"", LineEnding::Bare),
            Err(DatagramFault::Empty)
        );
        assert_eq!(
            check_relay_datagram(b"\n", LineEnding::Newline),
            Err(DatagramFault::Empty)
        );
        assert_eq!(
            check_relay_datagram(b"OK", LineEnding::Newline),
            Err(DatagramFault::NoNewline)
        );
        assert_eq!(
            check_relay_datagram(b"a\nb", LineEnding::Bare),
            Err(DatagramFault::ControlChar(0x0a))
        );
        assert_eq!(
            check_relay_datagram("a\u{202e}b".as_bytes(), LineEnding::Bare),
            Err(DatagramFault::ControlChar(0x202e))
        );
    }

    #[test]
    fn a_keyed_datagram_passes_and_counts_its_prefix() {
        let key = crate::SessionKey::from_u64(0x0123_4567_89ab_cdef);
        let keyed = key.prefixed(b"EVENT 5 live CHAT bob hi");
        assert_eq!(check_relay_datagram(&keyed, LineEnding::Bare), Ok(()));
        let long = key.prefixed(&vec![b'a'; MAX_DATAGRAM - 17]);
        assert_eq!(
            check_relay_datagram(&long, LineEnding::Bare),
            Err(DatagramFault::TooLong(MAX_DATAGRAM + 1))
        );
    }

    #[test]
    fn the_limit_itself_is_allowed() {
        let max = vec![b'a'; MAX_DATAGRAM];
        assert_eq!(check_relay_datagram(&max, LineEnding::Bare), Ok(()));
    }
}
