//! Node sets as pdsh and clush write them: `a,b,web[1-5]`.
//!
//! [`expand`] turns an expression into names: comma lists, brackets
//! holding numbers, ranges (`1-5`) and steps (`1-10/3`) separated by
//! commas, zero padding kept (`web[01-10]` gives `web01` … `web10`; both
//! ends of a padded range must have the same width, as clush requires,
//! since pdsh's reading of `001-3` is a guess), several brackets in one
//! name multiplied out with the first outermost (`r[1-2]n[1-3]` gives
//! `r1n1 r1n2 r1n3 r2n1 …`). A range running backwards (`3-1`) is refused,
//! as both pdsh and clush do. [`fold`] writes names back in that form,
//! for summaries and the headers of gathered output.

use std::collections::{BTreeMap, HashSet};

/// The most names one expression may expand to: a typo such as
/// `web[1-1000000]` is an error, not a million ssh connections.
pub const MAX_NAMES: usize = 100_000;

/// The names `expr` stands for, in the order written, each once.
pub fn expand(expr: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    for part in split_top(expr)? {
        if part.is_empty() {
            return Err(format!("{expr:?}: an empty name between commas"));
        }
        for name in expand_one(part).map_err(|why| format!("{expr:?}: {why}"))? {
            if seen.insert(name.clone()) {
                names.push(name);
            }
            if names.len() > MAX_NAMES {
                return Err(format!("{expr:?}: more than {MAX_NAMES} names"));
            }
        }
    }
    Ok(names)
}

/// `expr` split at the commas outside brackets; unbalanced or nested
/// brackets are errors.
fn split_top(expr: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (at, c) in expr.char_indices() {
        match c {
            '[' if depth == 0 => depth = 1,
            '[' => return Err(format!("{expr:?}: a bracket inside a bracket")),
            ']' if depth == 1 => depth = 0,
            ']' => return Err(format!("{expr:?}: \"]\" without \"[\"")),
            ',' if depth == 0 => {
                parts.push(&expr[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("{expr:?}: \"[\" without \"]\""));
    }
    parts.push(&expr[start..]);
    Ok(parts)
}

/// The names of one comma-free pattern such as `r[1-2]n[1-3].example`:
/// the brackets multiplied out, the first outermost.
fn expand_one(pattern: &str) -> Result<Vec<String>, String> {
    let mut names = vec![String::new()];
    let mut rest = pattern;
    while !rest.is_empty() {
        let (alternatives, after) = match rest.find('[') {
            Some(0) => {
                let close = rest.find(']').unwrap_or(rest.len());
                (
                    bracket(&rest[1..close])?,
                    rest.get(close + 1..).unwrap_or(""),
                )
            }
            Some(open) => (vec![rest[..open].to_owned()], &rest[open..]),
            None => (vec![rest.to_owned()], ""),
        };
        if names.len().saturating_mul(alternatives.len()) > MAX_NAMES {
            return Err(format!("more than {MAX_NAMES} names"));
        }
        names = names
            .iter()
            .flat_map(|name| alternatives.iter().map(move |alt| format!("{name}{alt}")))
            .collect();
        rest = after;
    }
    Ok(names)
}

/// The numbers one bracket's content stands for, as text with their
/// padding: `1-3,7` or `01-10/3`.
fn bracket(content: &str) -> Result<Vec<String>, String> {
    if content.is_empty() {
        return Err("an empty bracket \"[]\"".to_owned());
    }
    let mut numbers = Vec::new();
    for item in content.split(',') {
        numbers.extend(range(item)?);
        if numbers.len() > MAX_NAMES {
            return Err(format!("more than {MAX_NAMES} names"));
        }
    }
    Ok(numbers)
}

/// One bracket item: `7`, `1-5`, `01-10` or `1-10/3`.
fn range(item: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| format!("bad range {item:?}: {why}");
    let (span, step) = match item.split_once('/') {
        Some((span, step)) => (span, number(step).map_err(|why| bad(&why))?.0),
        None => (item, 1),
    };
    if step == 0 {
        return Err(bad("a step of 0"));
    }
    let (low, high) = match span.split_once('-') {
        Some((low, high)) => (number(low), number(high)),
        None if item.contains('/') => return Err(bad("a step needs a range")),
        None => {
            return number(span)
                .map(|(_, text)| vec![text.to_owned()])
                .map_err(|w| bad(&w));
        }
    };
    let ((low, low_text), (high, high_text)) =
        (low.map_err(|w| bad(&w))?, high.map_err(|w| bad(&w))?);
    let padded = |t: &str| t.len() > 1 && t.starts_with('0');
    if (padded(low_text) || padded(high_text)) && low_text.len() != high_text.len() {
        return Err(bad(
            "padding length mismatch (write both ends with as many digits)",
        ));
    }
    if low > high {
        return Err(bad("the first number is above the last"));
    }
    if (high - low) / step >= MAX_NAMES as u64 {
        return Err(format!("more than {MAX_NAMES} names"));
    }
    let width = if padded(low_text) { low_text.len() } else { 0 };
    Ok((low..=high)
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .map(|n| format!("{n:0width$}"))
        .collect())
}

/// A run of digits and its value.
fn number(text: &str) -> Result<(u64, &str), String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a number"));
    }
    text.parse()
        .map(|n| (n, text))
        .map_err(|_| format!("{text:?} is too large"))
}

/// `names` written as one node set: names that differ only in their last
/// run of digits share a bracket (`web[1-3,7]`, `web[01-02,10]`), a name
/// alone stays as it is; the parts sorted and joined with commas.
/// [`expand`] of the result gives the same names.
pub fn fold(names: &[String]) -> String {
    // (prefix, suffix) -> numbers as written, for names with digits.
    let mut groups: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    let mut parts: Vec<String> = Vec::new();
    for name in names {
        match last_digits(name) {
            Some((start, end)) => groups
                .entry((&name[..start], &name[end..]))
                .or_default()
                .push(&name[start..end]),
            None => parts.push(name.clone()),
        }
    }
    for ((prefix, suffix), numbers) in groups {
        let ranges = fold_numbers(&numbers);
        if ranges.contains([',', '-']) {
            parts.push(format!("{prefix}[{ranges}]{suffix}"));
        } else {
            parts.push(format!("{prefix}{ranges}{suffix}"));
        }
    }
    parts.sort();
    parts.dedup();
    parts.join(",")
}

/// Where the last run of digits in `name` starts and ends.
fn last_digits(name: &str) -> Option<(usize, usize)> {
    let end = name.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = name[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |at| at + 1);
    Some((start, end))
}

/// Numbers as written (`1`, `01`, `10`) folded into ranges: unpadded ones
/// first, then each padding width (a number as wide as a padded width
/// joins it: `01,02,10` is `01-02,10`).
fn fold_numbers(numbers: &[&str]) -> String {
    let padded = |t: &str| t.len() > 1 && t.starts_with('0');
    let widths: HashSet<usize> = numbers
        .iter()
        .filter(|t| padded(t))
        .map(|t| t.len())
        .collect();
    let mut classes: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for text in numbers {
        let width = if padded(text) || widths.contains(&text.len()) {
            text.len()
        } else {
            0
        };
        // Each is a run of ASCII digits; one too large for u64 cannot be
        // a host number anyone writes, and is kept as 0 rather than lost.
        classes
            .entry(width)
            .or_default()
            .push(text.parse().unwrap_or(0));
    }
    let mut out: Vec<String> = Vec::new();
    for (width, mut values) in classes {
        values.sort_unstable();
        values.dedup();
        let mut at = 0;
        while at < values.len() {
            let mut end = at;
            while end + 1 < values.len() && values[end + 1] == values[end] + 1 {
                end += 1;
            }
            out.push(match end - at {
                0 => format!("{:0width$}", values[at]),
                _ => format!("{:0width$}-{:0width$}", values[at], values[end]),
            });
            at = end + 1;
        }
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        expand(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn ranges_lists_and_plain_names_expand_as_clush_and_pdsh_do() {
        assert_eq!(names("web[1-5]"), words("web1 web2 web3 web4 web5"));
        assert_eq!(names("web[1-3,7]"), words("web1 web2 web3 web7"));
        assert_eq!(names("a,b,web[1-2]"), words("a b web1 web2"));
        assert_eq!(names("web[8-11]"), words("web8 web9 web10 web11"));
        assert_eq!(names("web[1-3]x"), words("web1x web2x web3x"));
        assert_eq!(
            names("web-[1-2].example.com"),
            words("web-1.example.com web-2.example.com")
        );
        assert_eq!(names("a"), words("a"));
    }

    #[test]
    fn zero_padding_is_kept_and_both_ends_must_agree() {
        assert_eq!(
            names("web[01-10]"),
            words("web01 web02 web03 web04 web05 web06 web07 web08 web09 web10")
        );
        assert_eq!(names("web[09-11]"), words("web09 web10 web11"));
        assert_eq!(names("web[007]"), words("web007"));
        assert_eq!(
            expand("web[001-3]"),
            Err(
                "\"web[001-3]\": bad range \"001-3\": padding length mismatch \
                 (write both ends with as many digits)"
                    .to_owned()
            )
        );
        assert!(expand("web[1-05]").is_err());
    }

    #[test]
    fn several_brackets_multiply_with_the_first_outermost() {
        assert_eq!(
            names("r[1-2]n[1-3]"),
            words("r1n1 r1n2 r1n3 r2n1 r2n2 r2n3")
        );
    }

    #[test]
    fn steps_count_from_the_first_number() {
        assert_eq!(names("web[1-10/3]"), words("web1 web4 web7 web10"));
        assert!(expand("web[1-10/0]").is_err());
        assert!(expand("web[5/2]").is_err());
    }

    #[test]
    fn a_backward_range_and_malformed_brackets_are_refused_with_the_expression() {
        assert_eq!(
            expand("web[3-1]"),
            Err("\"web[3-1]\": bad range \"3-1\": the first number is above the last".to_owned())
        );
        for bad in [
            "web[1-3",
            "web1-3]",
            "web[[1]]",
            "web[]",
            "web[a-b]",
            "web[1-]",
            "a,,b",
            "a,",
            "",
            "web[1-99999999999999999999]",
        ] {
            assert!(expand(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            expand("h[1-200000]"),
            Err(format!("\"h[1-200000]\": more than {MAX_NAMES} names"))
        );
        assert!(expand("r[1-1000]n[1-1000]").is_err());
    }

    #[test]
    fn each_name_is_given_once_in_the_order_written() {
        assert_eq!(names("b,a,b,web[2,1-2]"), words("b a web2 web1"));
    }

    #[test]
    fn fold_writes_ranges_as_nodeset_does() {
        assert_eq!(fold(&words("web01 web02 web10")), "web[01-02,10]");
        assert_eq!(
            fold(&words("web1 web2 web3 web7 web01 a b")),
            "a,b,web[1-3,7,01]"
        );
        assert_eq!(fold(&words("h3 h4 h7 h8")), "h[3-4,7-8]");
        assert_eq!(fold(&words("h1")), "h1");
        assert_eq!(fold(&words("h1 h2")), "h[1-2]");
        assert_eq!(
            fold(&words("web1.example.com web2.example.com db.example.com")),
            "db.example.com,web[1-2].example.com"
        );
        assert_eq!(fold(&[]), "");
    }

    #[test]
    fn fold_and_expand_give_back_the_same_names() {
        for list in [
            "web01 web02 web10",
            "a b c1 c2 c3 c9 r1n1 r1n2 r2n1",
            "h001 h002 h010 h1 h2",
        ] {
            let mut given = words(list);
            let mut back = names(&fold(&given));
            given.sort();
            back.sort();
            assert_eq!(back, given, "{list}");
        }
    }
}
