//! The rules a user database must keep before anything is written: every
//! problem is collected, so the admin sees all of them at once, and any
//! problem rejects the whole database.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::RangeInclusive;

use crate::database::Database;
use crate::hash;

/// The longest login name shadow-utils accepts by default.
const MAX_NAME: usize = 32;

/// One account to write: a user, or an FTP-only sub-account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// uid; an FTP account has its owner's.
    pub uid: u32,
    /// Primary gid: the user's own group (gid = uid), the owner's for FTP.
    pub gid: u32,
    /// Comment field.
    pub gecos: String,
    /// Home directory, normalised.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// The shadow password field.
    pub hash: String,
    /// The owning user of an FTP account; `None` for a user.
    pub owner: Option<String>,
}

/// What the database is checked against.
#[derive(Debug)]
pub struct Rules<'a> {
    /// The managed uid range.
    pub uids: &'a RangeInclusive<u32>,
    /// The FTP accounts' shell, allowed without being in `/etc/shells`.
    pub ftp_shell: &'a str,
    /// The root's `/etc/shells`; `None` skips the shell check (htpasswd).
    pub shells: Option<&'a BTreeSet<String>>,
    /// Names no account may take: unmanaged users and groups, the shared
    /// group.
    pub taken: &'a HashSet<String>,
}

/// The accounts of `db` in order (each user followed by its FTP
/// accounts), or every problem found, each naming the entry.
pub fn accounts(db: &Database, rules: &Rules) -> Result<Vec<Account>, Vec<String>> {
    let mut problems = Vec::new();
    let mut accounts = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut uids: HashMap<u32, String> = HashMap::new();
    for (i, user) in db.users.iter().enumerate() {
        let label = format!("user #{} {:?}", i + 1, user.name);
        let mut say = |what: String| problems.push(format!("{label}: {what}"));
        check_name(&user.name, &mut say);
        if !rules.uids.contains(&user.uid) {
            say(format!(
                "uid {} is outside the managed range {}-{}",
                user.uid,
                rules.uids.start(),
                rules.uids.end()
            ));
        }
        if let Some(first) = uids.insert(user.uid, label.clone()) {
            say(format!("uid {} is also used by {first}", user.uid));
        }
        check_gecos(&user.gecos, &mut say);
        check_password(&user.password, &mut say);
        let home = check_home(&user.home, &user.name, &mut say);
        check_shell(&user.shell, rules, &mut say);
        claim(&user.name, &label, &mut names, rules.taken, &mut say);
        accounts.push(Account {
            name: user.name.clone(),
            uid: user.uid,
            gid: user.uid,
            gecos: user.gecos.clone(),
            home: home.unwrap_or_default(),
            shell: user.shell.clone(),
            hash: user.password.clone(),
            owner: None,
        });
        for ftp in &user.ftp {
            let name = format!("{}-{}", user.name, ftp.suffix);
            let label = format!("{label}, ftp {:?}", ftp.suffix);
            let mut say = |what: String| problems.push(format!("{label}: {what}"));
            if ftp.suffix.is_empty()
                || !ftp
                    .suffix
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
            {
                say("suffix must be lowercase letters, digits, '_' or '-'".to_owned());
            } else {
                check_name(&name, &mut say);
            }
            check_password(&ftp.password, &mut say);
            let home = check_home(&ftp.home, &user.name, &mut say);
            claim(&name, &label, &mut names, rules.taken, &mut say);
            accounts.push(Account {
                name,
                uid: user.uid,
                gid: user.uid,
                gecos: String::new(),
                home: home.unwrap_or_default(),
                shell: rules.ftp_shell.to_owned(),
                hash: ftp.password.clone(),
                owner: Some(user.name.clone()),
            });
        }
    }
    if problems.is_empty() {
        Ok(accounts)
    } else {
        Err(problems)
    }
}

/// shadow-utils' default rule: `^[a-z_][a-z0-9_-]*$`, at most 32.
fn check_name(name: &str, say: &mut impl FnMut(String)) {
    let b = name.as_bytes();
    let first_ok = b
        .first()
        .is_some_and(|&c| c.is_ascii_lowercase() || c == b'_');
    let rest_ok = b
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if !first_ok || !rest_ok {
        say("name must match ^[a-z_][a-z0-9_-]*$".to_owned());
    } else if b.len() > MAX_NAME {
        say(format!("name is longer than {MAX_NAME} characters"));
    }
}

/// No field may hold the separator or a line break (or any control
/// character): either would forge or break an entry.
fn field_ok(value: &str) -> bool {
    !value.chars().any(|c| c == ':' || c.is_control())
}

/// The comment field: no separator or control character, and no Unicode
/// format character or line/paragraph separator, which would make what
/// `getent` and `finger` show differ from what is stored (a bidi override
/// reversing the text, an invisible character).
fn check_gecos(gecos: &str, say: &mut impl FnMut(String)) {
    if !field_ok(gecos) {
        say("gecos contains ':' or a control character".to_owned());
    } else if let Some(c) = gecos.chars().find(|&c| is_format(c)) {
        say(format!(
            "gecos contains the invisible or text-direction character U+{:04X}",
            u32::from(c)
        ));
    }
}

/// The characters of Unicode's general categories Cf (format), Zl (line
/// separator) and Zp (paragraph separator), as of Unicode 15.1.
const FORMAT: [(u32, u32); 21] = [
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is in [`FORMAT`].
fn is_format(c: char) -> bool {
    let c = u32::from(c);
    FORMAT
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// Never shows the password itself, only what is wrong with it.
fn check_password(password: &str, say: &mut impl FnMut(String)) {
    if !field_ok(password) {
        say("password contains ':' or a control character".to_owned());
    } else if let Err(why) = hash::check(password) {
        say(format!("password: {why}"));
    }
}

fn check_shell(shell: &str, rules: &Rules, say: &mut impl FnMut(String)) {
    if !field_ok(shell) {
        say("shell contains ':' or a control character".to_owned());
    } else if shell != rules.ftp_shell
        && let Some(shells) = rules.shells
        && !shells.contains(shell)
    {
        say(format!("shell {shell:?} is not listed in /etc/shells"));
    }
}

/// Records `name` as taken by `label`, reporting a clash with another
/// entry or with a name the system already uses.
fn claim(
    name: &str,
    label: &str,
    names: &mut HashMap<String, String>,
    taken: &HashSet<String>,
    say: &mut impl FnMut(String),
) {
    if taken.contains(name) {
        say(format!(
            "name {name:?} is already a system user or group that pysk does not manage"
        ));
    }
    if let Some(first) = names.insert(name.to_owned(), label.to_owned()) {
        say(format!("name {name:?} is also used by {first}"));
    }
}

/// The home, normalised (`//` and `.` removed), when it is absolute, has
/// no `..` and lies under `/home/<owner>`. What is on disk below
/// `/home/<owner>` (a link, a file where a directory belongs) is the
/// user's own doing: [`crate::homes`] finds it, never follows it, and
/// skips only that user's directories.
fn check_home(home: &str, owner: &str, say: &mut impl FnMut(String)) -> Option<String> {
    if !field_ok(home) {
        say("home contains ':' or a control character".to_owned());
        return None;
    }
    let parts = match normalise(home) {
        Ok(parts) => parts,
        Err(why) => {
            say(format!("home {home:?} {why}"));
            return None;
        }
    };
    if parts.len() < 2 || parts[0] != "home" || parts[1] != owner {
        say(format!("home {home:?} is not under /home/{owner}"));
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// The components of an absolute path without empty and `.` ones;
/// `..` is refused rather than resolved.
pub fn normalise(path: &str) -> Result<Vec<&str>, &'static str> {
    if !path.starts_with('/') {
        return Err("is not an absolute path");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("contains \"..\""),
            part => parts.push(part),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::parse;

    const HASH: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    fn check(users: &str) -> Result<Vec<Account>, Vec<String>> {
        let db = parse(
            format!(r#"{{"version":1,"users":[{users}]}}"#).as_bytes(),
            "t",
        )
        .expect("parses");
        let shells = BTreeSet::from(["/bin/bash".to_owned()]);
        let taken = HashSet::from(["root".to_owned(), "users".to_owned()]);
        accounts(
            &db,
            &Rules {
                uids: &(10000..=19999),
                ftp_shell: "/usr/sbin/nologin",
                shells: Some(&shells),
                taken: &taken,
            },
        )
    }

    fn user(name: &str, uid: u32, extra: &str) -> String {
        format!(
            r#"{{"name":{name:?},"uid":{uid},"password":"{HASH}","home":"/home/{name}","shell":"/bin/bash"{extra}}}"#
        )
    }

    #[test]
    fn a_good_database_gives_users_then_their_ftp_accounts() {
        let accounts = check(&format!(
            "{},{}",
            user(
                "alice",
                10001,
                r#","gecos":"Alice","ftp":[{"suffix":"up","password":"!","home":"/home/alice//www/./up"}]"#
            ),
            user("bob", 10002, "")
        ))
        .expect("valid");
        let names: Vec<_> = accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice", "alice-up", "bob"]);
        assert_eq!(accounts[1].home, "/home/alice/www/up");
        assert_eq!(accounts[1].shell, "/usr/sbin/nologin");
        assert_eq!((accounts[1].uid, accounts[1].gid), (10001, 10001));
    }

    #[test]
    fn every_problem_is_reported_without_the_password() {
        let problems = check(&format!(
            "{},{},{},{}",
            user("Bad:Name", 10001, ""),
            user("root", 5, r#","gecos":"a\nb""#),
            user("carol", 10001, ""),
            r#"{"name":"dave","uid":10004,"password":"hunter2","home":"/home/dave/../root","shell":"/bin/zsh"}"#
        ))
        .expect_err("invalid");
        let all = problems.join("\n");
        for expected in [
            "user #1 \"Bad:Name\": name must match",
            "user #2 \"root\": uid 5 is outside",
            "user #2 \"root\": gecos contains",
            "user #2 \"root\": name \"root\" is already a system user",
            "user #3 \"carol\": uid 10001 is also used by user #1",
            "user #4 \"dave\": password: not a crypt(3) hash",
            "user #4 \"dave\": home \"/home/dave/../root\" contains \"..\"",
            "user #4 \"dave\": shell \"/bin/zsh\" is not listed",
        ] {
            assert!(all.contains(expected), "{expected} missing in:\n{all}");
        }
        assert!(!all.contains("hunter2"));
    }
}
