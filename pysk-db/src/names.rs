//! Database and account names: checked against `db_name_pattern` before
//! any connection is made, and still quoted properly in every statement,
//! since defence in depth is the point — PostgreSQL identifiers in double
//! quotes (a quote doubled), MariaDB identifiers in backticks (a backtick
//! doubled), PostgreSQL string literals as libpq quotes them.

use regex::Regex;

/// The names allowed when `db_name_pattern` says nothing else: what every
/// tool, shell and file name takes without quoting.
pub const DEFAULT_PATTERN: &str = "^[a-z_][a-z0-9_]{0,62}$";

/// The rule a name must follow.
#[derive(Debug, Clone)]
pub struct Rule {
    pattern: Regex,
    text: String,
}

impl Rule {
    /// The rule of `pattern` (a regular expression, anchored by the caller
    /// as it likes); an error says why it is not one.
    pub fn new(pattern: &str) -> Result<Rule, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("not a regular expression: {e}"))?;
        Ok(Rule {
            pattern: regex,
            text: pattern.to_owned(),
        })
    }

    /// `name` when it follows the rule; the error names it (escaped) and
    /// the rule.
    pub fn check<'a>(&self, what: &str, name: &'a str) -> Result<&'a str, String> {
        // No server takes a NUL in a name, and 63 bytes is PostgreSQL's
        // limit (64 MariaDB's): whatever the pattern allows.
        if !name.contains('\0') && name.len() <= 63 && self.pattern.is_match(name) {
            return Ok(name);
        }
        Err(format!(
            "{what} \"{}\": not a name this tool takes (db_name_pattern {})",
            shown(name),
            self.text
        ))
    }
}

/// `name` as a message shows it: printable ASCII as it is (`"` and `\`
/// escaped), anything else as a Rust escape (`\n`, `\u{43e}`), so that a
/// look-alike letter from another script never reads as the Latin word.
pub fn shown(name: &str) -> String {
    let mut text = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                text.push('\\');
                text.push(c);
            }
            ' '..='~' => text.push(c),
            _ => text.extend(c.escape_default()),
        }
    }
    text
}

/// `name` as a PostgreSQL identifier: in double quotes, a quote doubled.
pub fn pg_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as a MariaDB identifier: in backticks, a backtick doubled.
pub fn mysql_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `text` as a PostgreSQL string literal, as libpq's
/// `PQescapeLiteral` writes it: in single quotes, a quote doubled; a text
/// holding a backslash as ` E'…'` with it doubled, which means the same
/// whatever `standard_conforming_strings` says. PostgreSQL's only:
/// MariaDB's literals follow other rules.
pub fn pg_literal(text: &str) -> String {
    postgres_protocol::escape::escape_literal(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rule_takes_plain_names_only() {
        let rule = Rule::new(DEFAULT_PATTERN).expect("the default");
        for good in ["shop", "_x", "kunde_42", &"a".repeat(63)] {
            assert_eq!(rule.check("database", good), Ok(good));
        }
        for bad in [
            "a\"; DROP DATABASE x; --",
            "a`b",
            &"a".repeat(64),
            "../x",
            "shоp", // a Cyrillic o
            "Shop",
            "",
            "9lives",
            "a\0b",
        ] {
            let err = rule.check("database", bad).expect_err(bad);
            assert!(
                err.ends_with(&format!(
                    "not a name this tool takes (db_name_pattern {DEFAULT_PATTERN})"
                )),
                "{err}"
            );
        }
        assert_eq!(
            rule.check("user", "a\"b\n").expect_err("quote"),
            "user \"a\\\"b\\n\": not a name this tool takes (db_name_pattern ^[a-z_][a-z0-9_]{0,62}$)"
        );
        assert_eq!(shown("sh\u{43e}p"), "sh\\u{43e}p", "a Cyrillic o");
        assert_eq!(shown("a'b\\c\0\t"), "a'b\\\\c\\u{0}\\t");
    }

    #[test]
    fn a_wider_rule_is_still_bounded_and_quoting_holds_whatever_passes() {
        let rule = Rule::new("^[A-Za-z0-9_.-]+$").expect("wider");
        assert_eq!(rule.check("database", "Shop.de"), Ok("Shop.de"));
        assert!(rule.check("database", &"a".repeat(64)).is_err());
        assert!(Rule::new("(").is_err());
        assert_eq!(pg_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(mysql_identifier("a`b"), "`a``b`");
        assert_eq!(pg_literal("it's"), "'it''s'");
        assert_eq!(pg_literal("a \\ b's"), " E'a \\\\ b''s'");
    }
}
