//! The cause an engine gives, out of what it prints for its developers:
//! restic's Go stack frames and retry notes, duplicity's Python
//! tracebacks. A message quotes the cause, never a frame.

/// The lines of a Go program's stderr that say what went wrong: its
/// `Fatal:` lines when there are some, else the last two lines that are
/// no stack frame (a function line and its `file.go:N` line, a
/// `goroutine` header), retry note or blank.
pub fn go_cause(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    let frame = |i: usize| {
        let line = lines[i];
        location(line)
            || lines.get(i + 1).is_some_and(|next| location(next))
            || line.starts_with("goroutine ")
            || line.starts_with("created by ")
    };
    let said: Vec<&str> = (0..lines.len())
        .filter(|&i| !lines[i].is_empty() && !frame(i))
        .map(|i| lines[i])
        .filter(|l| !l.contains("returned error, retrying after"))
        .collect();
    let fatal: Vec<&str> = said
        .iter()
        .copied()
        .filter(|l| l.starts_with("Fatal:"))
        .collect();
    match fatal.is_empty() {
        false => dedup(fatal).join(" / "),
        true => said[said.len().saturating_sub(2)..].join(" / "),
    }
}

/// A stack frame's source line: `dir/file.go:153 +0x1f`,
/// `runtime/asm_amd64.s:1594`, anything in `/usr/lib/go`.
fn location(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    let source = first.rsplit_once(':').is_some_and(|(file, n)| {
        (file.ends_with(".go") || file.ends_with(".s"))
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    source || first.starts_with("/usr/lib/go")
}

/// `lines` without repeats, in order.
fn dedup(lines: Vec<&str>) -> Vec<&str> {
    let mut seen = Vec::new();
    for line in lines {
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    seen
}

/// A Python program's message without its traceback: the lines that
/// are neither `Traceback (most recent call last):`, nor a frame
/// (`  File "…", line N, in f`) nor the source line quoted under one;
/// the exception line last. Text with no traceback is returned as it is,
/// its lines joined.
pub fn python_cause(lines: &[String]) -> String {
    let mut said = Vec::new();
    let mut in_frame = false;
    for line in lines {
        let trimmed = line.trim();
        if trimmed.starts_with("Traceback (most recent call last)") {
            continue;
        }
        if trimmed.starts_with("File \"") && line.starts_with(' ') {
            in_frame = true;
            continue;
        }
        // The source line quoted under a frame is indented deeper.
        if in_frame && line.starts_with("    ") {
            continue;
        }
        in_frame = false;
        if !trimmed.is_empty() {
            said.push(trimmed);
        }
    }
    said.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_stack_is_left_out_and_the_cause_kept() {
        let stderr = "\
Save(<lock/28>) returned error, retrying after 552ms: open /t/locks/28-tmp-3: read-only file system
open /t/locks/28-tmp-4: read-only file system
github.com/restic/restic/internal/backend/local.(*Local).Save
\tgithub.com/restic/restic/internal/backend/local/local.go:153
main.main
\tgithub.com/restic/restic/cmd/restic/main.go:98
runtime.goexit
\t/usr/lib/go-1.19/src/runtime/asm_amd64.s:1594 +0x1
unable to create lock in backend
";
        assert_eq!(
            go_cause(stderr),
            "open /t/locks/28-tmp-4: read-only file system / unable to create lock in backend"
        );
        let fatal = "using temporary cache in /tmp/x\nFatal: wrong password or no key found\n";
        assert_eq!(go_cause(fatal), "Fatal: wrong password or no key found");
        assert_eq!(go_cause(""), "");
    }

    #[test]
    fn a_python_traceback_is_left_out_and_the_exception_kept() {
        let text = [
            "Traceback (most recent call last):",
            "  File \"/usr/bin/duplicity\", line 100, in <module>",
            "    with_tempdir(main)",
            "  File \"/usr/lib/python3/dist-packages/duplicity/dup_main.py\", line 1, in verify",
            "    volume = fileobj_iter[1]",
            "KeyError: 1",
        ]
        .map(String::from);
        assert_eq!(python_cause(&text), "KeyError: 1");
        let plain = ["Giving up after 1 attempts.", "FileNotFoundError: x"].map(String::from);
        assert_eq!(
            python_cause(&plain),
            "Giving up after 1 attempts. FileNotFoundError: x"
        );
    }
}
