//! Unified diffs, for `--dry-run` and drift reports: what a tool would
//! change in a file, shown the way `diff -u` shows it.

use std::path::Path;

use similar::TextDiff;

/// The unified diff (three lines of context) that turns `old` into `new`,
/// both labelled with `path`, as `diff -u` labels them. Empty
/// when the two are equal. A missing old file is given as `None` and shown
/// as `/dev/null`; so is a file about to be removed (`new` is `None`).
pub fn unified(path: &Path, old: Option<&str>, new: Option<&str>) -> String {
    let shown = path.display();
    let (old_label, new_label) = match (old, new) {
        (None, _) => ("/dev/null".to_owned(), shown.to_string()),
        (_, None) => (shown.to_string(), "/dev/null".to_owned()),
        _ => (shown.to_string(), shown.to_string()),
    };
    let (old, new) = (old.unwrap_or(""), new.unwrap_or(""));
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&old_label, &new_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_give_no_diff() {
        assert_eq!(unified(Path::new("x"), Some("a\n"), Some("a\n")), "");
    }

    #[test]
    fn a_changed_line_is_shown_with_its_context() {
        let d = unified(
            Path::new("etc/passwd"),
            Some("a\nb\nc\n"),
            Some("a\nB\nc\n"),
        );
        assert_eq!(
            d,
            "--- etc/passwd\n+++ etc/passwd\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
        );
    }

    #[test]
    fn a_new_file_is_diffed_against_dev_null() {
        let d = unified(Path::new("db.x"), None, Some("one\n"));
        assert_eq!(d, "--- /dev/null\n+++ db.x\n@@ -0,0 +1 @@\n+one\n");
    }
}
