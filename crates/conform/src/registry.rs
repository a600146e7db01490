//! Every check the kit knows, in report order.

use crate::check::Check;
use crate::checks;

/// Every check, classic first, then the extensions, then structured.
pub fn all() -> Vec<&'static Check> {
    checks::classic::CHECKS
        .iter()
        .chain(checks::extensions::CHECKS)
        .chain(checks::structured::CHECKS)
        .collect()
}

/// The client checks (`udpchat-conform client`), in report order. Not in
/// [`all`], which a relay run goes through.
pub fn client() -> Vec<&'static Check> {
    crate::client::CHECKS.iter().map(|c| &c.check).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for check in all().into_iter().chain(client()) {
            assert!(seen.insert(check.id), "{} registered twice", check.id);
            assert!(
                check
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'),
                "{}: ids are lowercase words, dots and hyphens",
                check.id
            );
            assert!(check.id.starts_with(match check.group {
                crate::Group::Classic => "classic.",
                crate::Group::Extensions => "ext.",
                crate::Group::Structured => "struct.",
                crate::Group::Client | crate::Group::ClientStructured => "client.",
            }));
            assert!(!check.title.en.is_empty() && !check.title.zh.is_empty());
        }
    }

    /// PROTOCOL.md's table *Conformance checks* names every check with its
    /// section and level, and nothing else: the spec and the kit cannot
    /// drift apart.
    #[test]
    fn protocol_md_lists_every_check_with_its_section_and_level() {
        let spec = include_str!("../../../PROTOCOL.md");
        let table = spec
            .split("<!-- conformance-checks -->")
            .nth(1)
            .expect("PROTOCOL.md has a <!-- conformance-checks --> table");
        let rows: Vec<Vec<String>> = table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().trim_matches('`').to_owned())
                    .collect()
            })
            .collect();
        let checks: Vec<_> = all().into_iter().chain(client()).collect();
        assert_eq!(
            rows.len(),
            checks.len(),
            "the table has {} rows, the kit {} checks",
            rows.len(),
            checks.len()
        );
        for (row, check) in rows.iter().zip(&checks) {
            assert_eq!(row[0], check.id, "rows follow the kit's order");
            assert_eq!(row[1], check.section, "section of {}", check.id);
            assert_eq!(row[2], check.level.as_str(), "level of {}", check.id);
            assert_eq!(row[3], check.title.en, "title of {}", check.id);
        }
    }
}
