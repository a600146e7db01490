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

    /// Each check's id stands next to the rules it tests: on the
    /// "Conformance checks of this part" line of its own section (or
    /// subsection) of PROTOCOL.md, not only in the table at the end.
    #[test]
    fn protocol_md_names_each_check_in_the_part_it_tests() {
        let spec = include_str!("../../../PROTOCOL.md");
        let spec = spec
            .split("<!-- conformance-checks -->")
            .next()
            .expect("text before the table");
        let lines: Vec<&str> = spec.lines().collect();
        for check in all().into_iter().chain(client()) {
            let (number, sub) = check.section.split_once(' ').unwrap_or((check.section, ""));
            let top = lines
                .iter()
                .position(|l| l.starts_with(&format!("## {number}. ")))
                .unwrap_or_else(|| panic!("section {number} of {}", check.id));
            let start = match sub {
                "" => top,
                sub => (top + 1..lines.len())
                    .take_while(|&i| !lines[i].starts_with("## "))
                    .find(|&i| lines[i].starts_with("### ") && lines[i].contains(sub))
                    .unwrap_or_else(|| panic!("subsection {sub:?} of {}", check.id)),
            };
            let end = (start + 1..lines.len())
                .find(|&i| lines[i].starts_with("## ") || lines[i].starts_with("### "))
                .unwrap_or(lines.len());
            let named = lines[start..end].iter().any(|l| {
                l.starts_with("*Conformance checks of this part*")
                    && l.contains(&format!("`{}`", check.id))
            });
            assert!(
                named,
                "{} is not named in section {}",
                check.id, check.section
            );
        }
    }
}
