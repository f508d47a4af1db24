//! The user database the control panel exports: one JSON document,
//! version 1, read from a file or from stdin (`-`).
//!
//! This module only parses; [`crate::validate`] decides whether the
//! accounts may be written.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use pysk_common::error::read_err;

use crate::error::PasswdError;

/// The largest database accepted, bytes: 10,000 users take about 3 MiB.
const MAX_SIZE: u64 = 256 << 20;

/// The whole document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// The format version; only 1 exists.
    pub version: u32,
    /// The users, in the order their new entries are added.
    pub users: Vec<User>,
}

/// One user: a Unix account with its own group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The uid, also the gid of the user's own group.
    pub uid: u32,
    /// The crypt(3) hash, or a locked form (`!…`, `*`).
    pub password: String,
    /// The home directory, under `/home/<name>`.
    pub home: String,
    /// The login shell, listed in `/etc/shells`.
    pub shell: String,
    /// The comment field (real name).
    #[serde(default)]
    pub gecos: String,
    /// The user's FTP-only sub-accounts.
    #[serde(default)]
    pub ftp: Vec<Ftp>,
}

/// An FTP-only sub-account `<owner>-<suffix>`: the owner's uid and group,
/// the FTP shell, its own password and home.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ftp {
    /// Appended to the owner's name after a `-`.
    pub suffix: String,
    /// The crypt(3) hash, or a locked form.
    pub password: String,
    /// The home directory, under the owner's `/home/<owner>`.
    pub home: String,
}

/// Reads the database from `path`, or from stdin when it is `-`; also
/// returns the name errors give it (the path, or `stdin`).
pub fn load(path: &Path) -> Result<(Database, String), PasswdError> {
    let (origin, bytes) = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(MAX_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err("stdin"))?;
        ("stdin".to_owned(), bytes)
    } else {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_SIZE + 1).read_to_end(&mut bytes))
            .map_err(read_err(path))?;
        (path.display().to_string(), bytes)
    };
    let database = parse(&bytes, &origin)?;
    Ok((database, origin))
}

/// Parses a version 1 document; `origin` names it in errors.
pub fn parse(bytes: &[u8], origin: &str) -> Result<Database, PasswdError> {
    let err = |reason: String| PasswdError::Database {
        origin: origin.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_SIZE {
        return Err(err(format!("larger than {MAX_SIZE} bytes")));
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(err(
            "starts with a UTF-8 byte order mark, which JSON does not allow; \
             save the document without it"
                .to_owned(),
        ));
    }
    let database: Database = serde_json::from_slice(bytes).map_err(|e| err(describe(&e)))?;
    if database.version != 1 {
        return Err(err(format!(
            "version {} is not supported (only 1)",
            database.version
        )));
    }
    Ok(database)
}

/// What is wrong with the document, in words for the admin, with where:
/// not JSON, cut short, or not the documented form (then the field named,
/// unless the message would quote a string value from the document, which
/// could be a password in the wrong place).
fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", e.line(), e.column());
    let message = e.to_string();
    let bare = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    match e.classify() {
        Category::Syntax => format!("not valid JSON ({at})"),
        Category::Eof => format!("the document ends too early (EOF at {at})"),
        Category::Data if !bare.contains("string \"") => {
            format!("{} ({at})", bare.replace('`', "\""))
        }
        Category::Data | Category::Io => format!("a value of the wrong type or form ({at})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_is_wrong_and_where_in_words() {
        let reason = |text: &str| match parse(text.as_bytes(), "t") {
            Err(PasswdError::Database { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason("root:x:0:0::/root:/bin/sh\n"),
            "not valid JSON (line 1, column 1)"
        );
        assert_eq!(
            reason("\u{feff}{\"version\":1,\"users\":[]}"),
            "starts with a UTF-8 byte order mark, which JSON does not allow; \
             save the document without it"
        );
        assert_eq!(
            reason("{\"version\": 1,"),
            "the document ends too early (EOF at line 1, column 14)"
        );
        assert_eq!(
            reason(r#"{"version":1,"users":[{"name":"a","uid":5}]}"#),
            "missing field \"password\" (line 1, column 42)"
        );
    }

    #[test]
    fn parses_the_documented_form_and_rejects_others() {
        let db = parse(
            br#"{"version":1,"users":[{"name":"alice","uid":10001,"password":"!","home":"/home/alice","shell":"/bin/bash","ftp":[{"suffix":"up","password":"*","home":"/home/alice/www"}]}]}"#,
            "t",
        )
        .expect("valid");
        assert_eq!(db.users[0].gecos, "");
        assert_eq!(db.users[0].ftp[0].suffix, "up");
        for bad in [
            &br#"{"version":2,"users":[]}"#[..],
            br#"{"version":1,"users":[],"extra":1}"#,
            br#"{"version":1,"users":[{"name":"a","uid":-1,"password":"!","home":"/h","shell":"/s"}]}"#,
            b"not json",
            br#"{"version":1,"users":[{"name":"a","uid":"$6$secret","password":"!","home":"/h","shell":"/s"}]}"#,
        ] {
            match parse(bad, "t") {
                Err(PasswdError::Database { reason, .. }) => assert!(!reason.contains("secret")),
                other => panic!("{other:?}"),
            }
        }
    }
}
