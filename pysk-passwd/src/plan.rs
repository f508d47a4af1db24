//! What a sync would make of the account files: the new content of each,
//! and what to show of the change.
//!
//! Managed entries are those whose uid (passwd) or gid (group) lies in the
//! managed range; in shadow and gshadow, those with the name of a managed
//! passwd or group entry, before or after the sync. Every other line stays
//! byte for byte where it is. A managed entry that stays is rewritten in
//! place; new ones go before the first NIS line (`+`/`-`), as shadow-utils
//! adds them, or at the end. The shared group (`users`) keeps its place
//! and the members pysk does not manage; its managed members are the
//! users, in database order.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::PasswdError;
use crate::files::{Files, Text, fields, lines, managed_name};
use crate::validate::Account;

/// The switches that shape the entries.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Managed uids and gids.
    pub uids: RangeInclusive<u32>,
    /// The FTP accounts' shell.
    pub ftp_shell: String,
    /// The group every user belongs to.
    pub shared_group: String,
    /// Its gid.
    pub shared_gid: u32,
}

/// One file's old and new content.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The file.
    pub path: PathBuf,
    /// What it holds now (`None`: it does not exist).
    pub old: Option<Vec<u8>>,
    /// What it is to hold.
    pub new: Vec<u8>,
    /// For files holding secrets (shadow, gshadow): one line per changed
    /// entry, shown instead of a diff.
    pub summary: Option<Vec<String>>,
    /// The entries added, changed and removed, by name.
    pub changes: Changes,
}

/// The names of the entries of one file that a sync adds, changes or
/// removes (the first line of a name counts), for the report and `--json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// New entries, in the order of the new file.
    pub added: Vec<String>,
    /// Entries whose line changes, in the order of the new file.
    pub changed: Vec<String>,
    /// Entries that go, in the order of the old file.
    pub removed: Vec<String>,
}

/// What a managed name is, for the counts of `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A user: an account with its own group.
    User,
    /// An FTP-only account of a user.
    Ftp,
}

impl Planned {
    /// Whether the file would change.
    pub fn changed(&self) -> bool {
        self.old.as_deref() != Some(self.new.as_slice())
    }

    /// One line per changed entry, prefixed with the path, for the report
    /// of a real sync: the summary of a secret file, else each name with
    /// `added`, `changed` or `removed`; a file that changes in no entry
    /// (a duplicate line dropped) is `rewritten`.
    pub fn lines(&self) -> Vec<String> {
        if !self.changed() {
            return Vec::new();
        }
        let path = &self.path.display().to_string();
        let mut out: Vec<String> = match &self.summary {
            Some(lines) => lines.iter().map(|l| format!("{path}: {l}")).collect(),
            None => [
                (&self.changes.added, "added"),
                (&self.changes.changed, "changed"),
                (&self.changes.removed, "removed"),
            ]
            .into_iter()
            .flat_map(|(names, what)| names.iter().map(move |n| format!("{path}: {n}: {what}")))
            .collect(),
        };
        if out.is_empty() {
            out.push(format!("{path}: rewritten"));
        }
        out
    }

    /// What to show of the change: a unified diff, or for a secret file
    /// its summary lines prefixed with the path.
    pub fn show(&self) -> String {
        if !self.changed() {
            return String::new();
        }
        match &self.summary {
            Some(lines) => {
                let mut out = String::new();
                for line in lines {
                    out.push_str(&format!("{}: {line}\n", self.path.display()));
                }
                out
            }
            None => pysk_common::diff::unified(
                &self.path,
                self.old.as_deref().map(String::from_utf8_lossy).as_deref(),
                Some(&String::from_utf8_lossy(&self.new)),
            ),
        }
    }
}

/// The new content of every file a sync writes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `etc/passwd`.
    pub passwd: Planned,
    /// `etc/group`.
    pub group: Planned,
    /// `etc/shadow`.
    pub shadow: Planned,
    /// `etc/gshadow`, when the root has one.
    pub gshadow: Option<Planned>,
    /// The vsftpd chroot list, when configured.
    pub chroot_list: Option<Planned>,
    /// Managed passwd entries there are now.
    pub managed: usize,
    /// How many of them the sync removes.
    pub removed: usize,
    /// Every managed account name, before or after, and what it is.
    pub kinds: HashMap<String, Kind>,
}

impl Plan {
    /// The files in the order they are renamed into place (groups before
    /// the accounts that use them, shadow and the chroot list before
    /// passwd: see [`crate::commit`] for why), each with whether its
    /// previous version is kept as `name-`: the account files are, the
    /// chroot list (pysk's own file) is not.
    pub fn write_order(&self) -> Vec<(&Planned, bool)> {
        let mut order = Vec::new();
        order.extend(self.gshadow.as_ref().map(|p| (p, true)));
        order.push((&self.group, true));
        order.push((&self.shadow, true));
        order.extend(self.chroot_list.as_ref().map(|p| (p, false)));
        order.push((&self.passwd, true));
        order
    }

    /// The files in the order they are shown: passwd, group, shadow,
    /// gshadow, the chroot list.
    pub fn files(&self) -> Vec<&Planned> {
        let mut files = vec![&self.passwd, &self.group, &self.shadow];
        files.extend(self.gshadow.as_ref());
        files.extend(self.chroot_list.as_ref());
        files
    }

    /// What the sync changes, for the admin: passwd and group as diffs,
    /// shadow and gshadow as one line per entry, the chroot list as a
    /// diff. Empty when nothing changes.
    pub fn show(&self) -> String {
        self.files().iter().map(|p| p.show()).collect()
    }

    /// Whether any file would change.
    pub fn changed(&self) -> bool {
        self.write_order().iter().any(|(p, _)| p.changed())
    }
}

/// Names no account may take: those of unmanaged passwd and group
/// entries, and the shared group's.
pub fn taken_names(files: &Files, policy: &Policy) -> HashSet<String> {
    let mut taken = HashSet::from([policy.shared_group.clone()]);
    for (text, index) in [(&files.passwd, 2), (&files.group, 2)] {
        for line in text.lines() {
            if managed_name(line, index, &policy.uids).is_none()
                && let Some(name) = name_of(line).filter(|n| !n.starts_with(['+', '-', '#']))
            {
                taken.insert(name.to_owned());
            }
        }
    }
    taken
}

/// Computes the new files for `accounts`; `today` is the day number
/// (days since 1970-01-01) a changed password gets as its last change.
pub fn plan(
    files: &Files,
    accounts: &[Account],
    policy: &Policy,
    today: i64,
) -> Result<Plan, PasswdError> {
    let names = Names::new(files, accounts, policy);
    let shared = SharedGroup {
        policy,
        keep: &names.managed_any,
        members: &names.members,
    };
    let in_passwd = |n: &str| names.managed_any.contains(n);
    let in_group = |n: &str| names.groups_any.contains(n) || n == policy.shared_group;
    let passwd = passwd_file(files, accounts, policy);
    let group = group_file(files, &names, &shared)?;
    Ok(Plan {
        passwd: planned(&files.passwd, passwd, None, in_passwd),
        group: planned(&files.group, group, None, in_group),
        shadow: shadow_file(files, accounts, &names, today),
        gshadow: gshadow_file(files, &names, &shared)?,
        chroot_list: chroot_list(files, accounts),
        managed: names.old_users.len(),
        removed: names.removed,
        kinds: kinds(accounts, &names.old_users, &names.old_groups),
    })
}

/// The names a plan works with: who is managed now, who will be.
struct Names<'a> {
    /// The managed users in passwd now, in file order.
    old_users: Vec<&'a str>,
    /// The managed groups in group now, in file order.
    old_groups: Vec<&'a str>,
    /// The users (not FTP accounts) of the database.
    users: Vec<&'a Account>,
    /// Every name pysk manages, before or after: not kept as a member of
    /// the shared group unless it is a user now.
    managed_any: HashSet<&'a str>,
    /// Every managed group name, before or after.
    groups_any: HashSet<&'a str>,
    /// The shared group's managed members: the users, in order.
    members: Vec<&'a str>,
    /// Managed users the database no longer has.
    removed: usize,
}

impl<'a> Names<'a> {
    fn new(files: &'a Files, accounts: &'a [Account], policy: &Policy) -> Names<'a> {
        let managed = |text: &'a Text| {
            distinct(
                text.lines()
                    .into_iter()
                    .filter_map(|l| managed_name(l, 2, &policy.uids)),
            )
        };
        let old_users = managed(&files.passwd);
        let old_groups = managed(&files.group);
        let new_names: HashSet<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        let users: Vec<&Account> = accounts.iter().filter(|a| a.owner.is_none()).collect();
        let members: Vec<&str> = users.iter().map(|a| a.name.as_str()).collect();
        Names {
            removed: old_users.iter().filter(|n| !new_names.contains(*n)).count(),
            managed_any: old_users.iter().copied().chain(new_names).collect(),
            groups_any: old_groups.iter().chain(&members).copied().collect(),
            old_users,
            old_groups,
            users,
            members,
        }
    }
}

/// passwd's new content: every account's line, in place of its old one.
fn passwd_file(files: &Files, accounts: &[Account], policy: &Policy) -> Vec<u8> {
    let new: Vec<(&str, Vec<u8>)> = accounts
        .iter()
        .map(|a| {
            let line = format!(
                "{}:x:{}:{}:{}:{}:{}",
                a.name, a.uid, a.gid, a.gecos, a.home, a.shell
            );
            (a.name.as_str(), line.into_bytes())
        })
        .collect();
    merge(
        &files.passwd,
        |l| managed_name(l, 2, &policy.uids),
        &new,
        |_| None,
    )
}

/// group's new content: a group per user, and the shared group with the
/// users as members (added when missing).
fn group_file(files: &Files, names: &Names, shared: &SharedGroup) -> Result<Vec<u8>, PasswdError> {
    let policy = shared.policy;
    let mut new: Vec<(&str, Vec<u8>)> = names
        .users
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                format!("{}:x:{}:", a.name, a.uid).into_bytes(),
            )
        })
        .collect();
    if !shared.find(&files.group, Some(2))? {
        new.push((
            &policy.shared_group,
            format!(
                "{}:x:{}:{}",
                policy.shared_group,
                policy.shared_gid,
                names.members.join(",")
            )
            .into_bytes(),
        ));
    }
    Ok(merge(
        &files.group,
        |l| managed_name(l, 2, &policy.uids),
        &new,
        |l| shared.edit(l, 3),
    ))
}

/// shadow's new content: every account's hash, its last change kept while
/// the hash is, else `today`; summarised without showing a hash.
fn shadow_file(files: &Files, accounts: &[Account], names: &Names, today: i64) -> Planned {
    let old = entries(&files.shadow, |n| names.managed_any.contains(n));
    let new: Vec<(&str, Vec<u8>)> = accounts
        .iter()
        .map(|a| {
            let lastchg = old
                .get(a.name.as_str())
                .map(|l| fields(l))
                .filter(|f| f.get(1) == Some(&a.hash.as_bytes()))
                .and_then(|f| std::str::from_utf8(f.get(2)?).ok()?.parse::<i64>().ok())
                .unwrap_or(today);
            let line = format!("{}:{}:{lastchg}:0:99999:7:::", a.name, a.hash);
            (a.name.as_str(), line.into_bytes())
        })
        .collect();
    let bytes = merge(
        &files.shadow,
        |l| name_of(l).filter(|n| names.managed_any.contains(n)),
        &new,
        |_| None,
    );
    let summary = summarize(&old, &new, shadow_change);
    planned(&files.shadow, bytes, Some(summary), |n| {
        names.managed_any.contains(n)
    })
}

/// gshadow's new content, when the system has the file: as group's.
fn gshadow_file(
    files: &Files,
    names: &Names,
    shared: &SharedGroup,
) -> Result<Option<Planned>, PasswdError> {
    if files.gshadow.bytes.is_none() {
        return Ok(None);
    }
    let policy = shared.policy;
    let old = entries(&files.gshadow, |n| names.groups_any.contains(n));
    let mut new: Vec<(&str, Vec<u8>)> = names
        .users
        .iter()
        .map(|a| (a.name.as_str(), format!("{}:!::", a.name).into_bytes()))
        .collect();
    if !shared.find(&files.gshadow, None)? {
        new.push((
            &policy.shared_group,
            format!("{}:*::{}", policy.shared_group, names.members.join(",")).into_bytes(),
        ));
    }
    let bytes = merge(
        &files.gshadow,
        |l| name_of(l).filter(|n| names.groups_any.contains(n)),
        &new,
        |l| shared.edit(l, 3),
    );
    let summary = summarize(&old, &new, |_, _| "entry changed".to_owned());
    let in_group = |n: &str| names.groups_any.contains(n) || n == policy.shared_group;
    Ok(Some(planned(
        &files.gshadow,
        bytes,
        Some(summary),
        in_group,
    )))
}

/// The chroot list's new content, when one is kept: the FTP accounts.
fn chroot_list(files: &Files, accounts: &[Account]) -> Option<Planned> {
    files.chroot_list.as_ref().map(|text| {
        let mut bytes = Vec::new();
        for a in accounts.iter().filter(|a| a.owner.is_some()) {
            bytes.extend_from_slice(a.name.as_bytes());
            bytes.push(b'\n');
        }
        planned(text, bytes, None, |_| true)
    })
}

/// One file's plan; `relevant` selects the names whose entries count as
/// its changes.
fn planned(
    text: &Text,
    new: Vec<u8>,
    summary: Option<Vec<String>>,
    relevant: impl Fn(&str) -> bool,
) -> Planned {
    let changes = changes(text.bytes.as_deref().unwrap_or_default(), &new, relevant);
    Planned {
        path: text.path.clone(),
        old: text.bytes.clone(),
        new,
        summary,
        changes,
    }
}

/// The entries (first line of each `relevant` name) that differ between
/// two versions of a file of `name:…` lines.
pub fn changes(old: &[u8], new: &[u8], relevant: impl Fn(&str) -> bool) -> Changes {
    let first_lines = |bytes| {
        let mut order: Vec<&str> = Vec::new();
        let mut map: HashMap<&str, &[u8]> = HashMap::new();
        for line in lines(bytes) {
            if let Some(name) = name_of(line).filter(|n| relevant(n))
                && !map.contains_key(name)
            {
                map.insert(name, line);
                order.push(name);
            }
        }
        (order, map)
    };
    let ((old_order, old_map), (new_order, new_map)) = (first_lines(old), first_lines(new));
    let mut out = Changes::default();
    for name in new_order {
        match old_map.get(name) {
            None => out.added.push(name.to_owned()),
            Some(line) if *line != new_map[name] => out.changed.push(name.to_owned()),
            Some(_) => {}
        }
    }
    out.removed = old_order
        .into_iter()
        .filter(|n| !new_map.contains_key(n))
        .map(str::to_owned)
        .collect();
    out
}

/// What each managed name is: the new accounts as the database says, an
/// old one gone from it a user when it had a group of its own, else an FTP
/// account.
fn kinds(accounts: &[Account], old_users: &[&str], old_groups: &[&str]) -> HashMap<String, Kind> {
    let had_group: HashSet<&str> = old_groups.iter().copied().collect();
    let mut kinds: HashMap<String, Kind> = old_users
        .iter()
        .map(|n| {
            let kind = if had_group.contains(n) {
                Kind::User
            } else {
                Kind::Ftp
            };
            ((*n).to_owned(), kind)
        })
        .collect();
    for a in accounts {
        let kind = if a.owner.is_some() {
            Kind::Ftp
        } else {
            Kind::User
        };
        kinds.insert(a.name.clone(), kind);
    }
    kinds
}

/// Each name once, in first-seen order.
fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    names.filter(|n| seen.insert(*n)).collect()
}

/// The first field of a line, as text.
fn name_of(line: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(fields(line).first()?).ok()?;
    (!name.is_empty()).then_some(name)
}

/// The first line of each name `wanted` selects.
fn entries(text: &Text, wanted: impl Fn(&str) -> bool) -> HashMap<&str, &[u8]> {
    let mut map = HashMap::new();
    for line in text.lines() {
        if let Some(name) = name_of(line).filter(|n| wanted(n)) {
            map.entry(name).or_insert(line);
        }
    }
    map
}

/// The shared group's line: found by name, its member list rewritten.
struct SharedGroup<'a> {
    policy: &'a Policy,
    /// Members dropped unless listed in `members`: every managed name.
    keep: &'a HashSet<&'a str>,
    /// The managed members, in order.
    members: &'a [&'a str],
}

impl SharedGroup<'_> {
    /// Whether `text` has the shared group; with a `gid_field` (group,
    /// not gshadow), its gid must be the configured one and no other
    /// group may have it.
    fn find(&self, text: &Text, gid_field: Option<usize>) -> Result<bool, PasswdError> {
        let mismatch = |reason: String| PasswdError::Conflict {
            path: text.path.clone(),
            reason,
        };
        let mut found = false;
        for line in text.lines() {
            let f = fields(line);
            let is_shared = f.first() == Some(&self.policy.shared_group.as_bytes());
            if let Some(gid_field) = gid_field {
                let gid = f.get(gid_field).and_then(|g| std::str::from_utf8(g).ok());
                let gid_is_shared =
                    gid.and_then(|g| g.parse::<u32>().ok()) == Some(self.policy.shared_gid);
                if is_shared && !gid_is_shared {
                    return Err(mismatch(format!(
                        "group {:?} (passwd_shared_group) has gid {}, not {} (passwd_shared_gid)",
                        self.policy.shared_group,
                        gid.unwrap_or("(none)"),
                        self.policy.shared_gid
                    )));
                }
                if gid_is_shared && !is_shared && name_of(line).is_some() {
                    return Err(mismatch(format!(
                        "gid {} (passwd_shared_gid) belongs to another group than {:?} \
                         (passwd_shared_group)",
                        self.policy.shared_gid, self.policy.shared_group
                    )));
                }
            }
            if is_shared {
                if f.len() != 4 {
                    return Err(mismatch(format!(
                        "the line of group {:?} does not have 4 fields",
                        self.policy.shared_group
                    )));
                }
                found = true;
            }
        }
        Ok(found)
    }

    /// The shared group's line with field `members` rewritten; `None` for
    /// any other line.
    fn edit(&self, line: &[u8], members: usize) -> Option<Vec<u8>> {
        let f = fields(line);
        if f.first() != Some(&self.policy.shared_group.as_bytes()) || f.len() != members + 1 {
            return None;
        }
        let mut list: Vec<&[u8]> = f[members]
            .split(|&c| c == b',')
            .filter(|m| !m.is_empty())
            .filter(|m| std::str::from_utf8(m).map_or(true, |m| !self.keep.contains(m)))
            .collect();
        list.extend(self.members.iter().map(|m| m.as_bytes()));
        let mut out = f[..members].join(&b':');
        out.push(b':');
        out.extend_from_slice(&list.join(&b','));
        Some(out)
    }
}

/// Rewrites `text`: managed lines (those `managed` names) replaced by the
/// new line of their name or dropped; other lines through `edit` or kept;
/// new names inserted before the first NIS line or at the end.
fn merge(
    text: &Text,
    managed: impl Fn(&[u8]) -> Option<&str>,
    new: &[(&str, Vec<u8>)],
    edit: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> Vec<u8> {
    let index: HashMap<&str, usize> = new.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
    let mut placed = vec![false; new.len()];
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        match managed(line) {
            Some(name) => {
                // A name seen twice keeps only its first place.
                if let Some(&i) = index.get(name)
                    && !placed[i]
                {
                    placed[i] = true;
                    out.push(new[i].1.clone());
                }
            }
            None => out.push(edit(line).unwrap_or_else(|| line.to_vec())),
        }
    }
    let at = out
        .iter()
        .position(|l| l.starts_with(b"+") || l.starts_with(b"-"))
        .unwrap_or(out.len());
    let rest: Vec<Vec<u8>> = new
        .iter()
        .zip(&placed)
        .filter(|(_, placed)| !**placed)
        .map(|((_, l), _)| l.clone())
        .collect();
    out.splice(at..at, rest);
    let mut bytes = Vec::new();
    for line in out {
        bytes.extend_from_slice(&line);
        bytes.push(b'\n');
    }
    bytes
}

/// One line per entry that is added, removed or changed, in the order of
/// the new entries, then the removed ones; `change` names a change.
fn summarize(
    old: &HashMap<&str, &[u8]>,
    new: &[(&str, Vec<u8>)],
    change: impl Fn(&[u8], &[u8]) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    let new_names: HashSet<&str> = new.iter().map(|(n, _)| *n).collect();
    for (name, line) in new {
        match old.get(name) {
            None => out.push(format!("{name}: added")),
            Some(old_line) if *old_line != line.as_slice() => {
                out.push(format!("{name}: {}", change(old_line, line)));
            }
            Some(_) => {}
        }
    }
    let mut removed: Vec<&&str> = old.keys().filter(|n| !new_names.contains(**n)).collect();
    removed.sort();
    out.extend(removed.into_iter().map(|n| format!("{n}: removed")));
    out
}

/// What changed between two shadow lines, without showing either hash.
fn shadow_change(old: &[u8], new: &[u8]) -> String {
    let hash = |l: &[u8]| fields(l).get(1).map(|h| h.to_vec()).unwrap_or_default();
    let (old_hash, new_hash) = (hash(old), hash(new));
    let locked = |h: &[u8]| h.starts_with(b"!");
    let strip = |h: &[u8]| -> Vec<u8> {
        let n = h.iter().take_while(|&&c| c == b'!').count();
        h[n..].to_vec()
    };
    let lock = match (locked(&old_hash), locked(&new_hash)) {
        (false, true) => Some("locked"),
        (true, false) => Some("unlocked"),
        _ => None,
    };
    if old_hash == new_hash {
        "password aging fields reset".to_owned()
    } else if strip(&old_hash) == strip(&new_hash) {
        lock.unwrap_or("lock state changed").to_owned()
    } else {
        match lock {
            Some(lock) => format!("password changed, {lock}"),
            None => "password changed".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str, s: &str) -> Text {
        Text {
            path: PathBuf::from(path),
            bytes: Some(s.as_bytes().to_vec()),
        }
    }

    fn files(passwd: &str, group: &str, shadow: &str, gshadow: &str) -> Files {
        Files {
            passwd: text("/etc/passwd", passwd),
            group: text("/etc/group", group),
            shadow: text("/etc/shadow", shadow),
            gshadow: text("/etc/gshadow", gshadow),
            chroot_list: Some(Text {
                path: PathBuf::from("/etc/vsftpd.chroot_list"),
                bytes: None,
            }),
            shells: Default::default(),
        }
    }

    fn account(name: &str, uid: u32, hash: &str, owner: Option<&str>) -> Account {
        Account {
            name: name.to_owned(),
            uid,
            gid: uid,
            gecos: String::new(),
            home: format!("/home/{}", owner.unwrap_or(name)),
            shell: "/bin/bash".to_owned(),
            hash: hash.to_owned(),
            owner: owner.map(str::to_owned),
        }
    }

    fn policy() -> Policy {
        Policy {
            uids: 10000..=19999,
            ftp_shell: "/usr/sbin/nologin".to_owned(),
            shared_group: "users".to_owned(),
            shared_gid: 100,
        }
    }

    fn s(p: &Planned) -> String {
        String::from_utf8(p.new.clone()).expect("utf-8")
    }

    #[test]
    fn managed_entries_change_in_place_and_the_rest_is_kept() {
        let f = files(
            "root:x:0:0::/root:/bin/bash\nold:x:10005:10005::/home/old:/bin/sh\nbob:x:10002:10002::/home/bob:/bin/sh\n+::::::\n",
            "root:x:0:\nusers:x:100:ext,old\nold:x:10005:\nbob:x:10002:\n",
            "root:*:1::::::\nold:$1$x:3:0:99999:7:::\nbob:!:5::::::\n",
            "root:*::\nusers:*::ext,old\nold:!::\nbob:!::\n",
        );
        let accounts = [
            account("alice", 10001, "!", None),
            account("alice-up", 10001, "*", Some("alice")),
            account("bob", 10002, "!", None),
        ];
        let plan = plan(&f, &accounts, &policy(), 20000).expect("plan");
        assert_eq!(
            s(&plan.passwd),
            "root:x:0:0::/root:/bin/bash\nbob:x:10002:10002::/home/bob:/bin/bash\n\
             alice:x:10001:10001::/home/alice:/bin/bash\n\
             alice-up:x:10001:10001::/home/alice:/bin/bash\n+::::::\n"
        );
        assert_eq!(
            s(&plan.group),
            "root:x:0:\nusers:x:100:ext,alice,bob\nbob:x:10002:\nalice:x:10001:\n"
        );
        assert_eq!(
            s(&plan.shadow),
            "root:*:1::::::\nbob:!:5:0:99999:7:::\nalice:!:20000:0:99999:7:::\nalice-up:*:20000:0:99999:7:::\n"
        );
        let gshadow = plan.gshadow.as_ref().expect("gshadow");
        assert_eq!(
            s(gshadow),
            "root:*::\nusers:*::ext,alice,bob\nbob:!::\nalice:!::\n"
        );
        assert_eq!(
            plan.shadow.summary.as_deref().expect("summary"),
            [
                "alice: added",
                "alice-up: added",
                "bob: password aging fields reset",
                "old: removed"
            ]
        );
        let chroot = plan.chroot_list.as_ref().expect("list");
        assert_eq!(s(chroot), "alice-up\n");
        assert_eq!((plan.managed, plan.removed), (2, 1));
        assert!(!plan.show().contains('$'));
    }

    #[test]
    fn a_second_plan_over_its_own_output_changes_nothing() {
        let f = files(
            "root:x:0:0::/root:/bin/bash\n",
            "users:x:100:\n",
            "",
            "users:*::\n",
        );
        let accounts = [account("alice", 10001, "!", None)];
        let first = plan(&f, &accounts, &policy(), 20000).expect("plan");
        let again = files(
            &s(&first.passwd),
            &s(&first.group),
            &s(&first.shadow),
            &s(first.gshadow.as_ref().expect("gshadow")),
        );
        let mut second = plan(&again, &accounts, &policy(), 20001).expect("plan");
        second.chroot_list = None;
        assert!(!second.changed(), "{}", second.show());
    }

    #[test]
    fn a_changed_hash_alone_moves_lastchg_and_is_named_not_shown() {
        let f = files(
            "a:x:10001:10001::/home/a:/bin/bash\n",
            "users:x:100:a\na:x:10001:\n",
            "a:$1$old:17000:0:99999:7:::\n",
            "users:*::a\na:!::\n",
        );
        let plan = plan(
            &f,
            &[account("a", 10001, "!$1$new", None)],
            &policy(),
            20000,
        )
        .expect("plan");
        assert_eq!(s(&plan.shadow), "a:!$1$new:20000:0:99999:7:::\n");
        assert_eq!(
            plan.shadow.show(),
            "/etc/shadow: a: password changed, locked\n"
        );
    }

    #[test]
    fn a_shared_gid_taken_by_another_group_is_a_conflict_with_the_switches() {
        let f = files("", "staff:x:100:\n", "", "");
        match plan(&f, &[], &policy(), 1) {
            Err(e @ PasswdError::Conflict { .. }) => assert_eq!(
                e.to_string(),
                "/etc/group: gid 100 (passwd_shared_gid) belongs to another group than \
                 \"users\" (passwd_shared_group); nothing written"
            ),
            other => panic!("{other:?}"),
        }
    }
}
