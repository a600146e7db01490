//! Nicknames kept for the teacher and the relay: no member may take one of
//! them, nor anything that looks like one (the same [`Nick::key`]: another
//! letter case, Cyrillic or full-width letters, ...). The built-in list is
//! [`RESERVED_NICKS`]; the operator adds more with `--reserve NAME`
//! ([`Config::reserved`](crate::Config::reserved)).

use udpchat_proto::Nick;

/// The names reserved unless the configuration says otherwise, in English
/// and Chinese: what the relay calls the host in its lines (`[host]`,
/// `[主持人]`), what students call the teacher, and the names of the relay
/// itself and of its notices (`系统消息`, "system message").
pub const RESERVED_NICKS: &[&str] = &[
    "host",
    "teacher",
    "admin",
    "relay",
    "主持人",
    "老师",
    "管理员",
    "服务器",
    "系统消息",
];

/// The reserved names with their two keys ([`Nick::key`],
/// [`Nick::look_key`]), computed once, when the room starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reserved(Vec<(String, String, Nick)>);

impl Reserved {
    pub(crate) fn new(names: &[Nick]) -> Reserved {
        Reserved(
            names
                .iter()
                .map(|n| (n.key(), n.look_key(), n.clone()))
                .collect(),
        )
    }

    /// The reserved name that a nickname with these keys is, or looks like.
    pub(crate) fn find(&self, key: &str, look: &str) -> Option<&Nick> {
        self.0
            .iter()
            .find(|(k, l, _)| k == key || l == look)
            .map(|(_, _, n)| n)
    }
}

/// [`RESERVED_NICKS`] as nicknames.
pub(crate) fn default_reserved() -> Vec<Nick> {
    RESERVED_NICKS
        .iter()
        .map(|s| Nick::new(s).expect("a reserved name is a valid nickname"))
        .collect()
}
