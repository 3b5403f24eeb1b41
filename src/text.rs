//! Small helpers over text and the PATH that several floors need: kept here so that each has one
//! definition and no floor reaches into another for them.

use std::path::PathBuf;

/// The 1-based line of a byte offset, for errors that name `file:line` (TOML spans are offsets).
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The first JSON value that starts at a `{` in `text`: agentsh and the tools around it print log
/// lines before and after the object the harness wants.
pub fn first_json(text: &str) -> Option<serde_json::Value> {
    let start = text.find('{')?;
    serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>().next()?.ok()
}

/// Lines agentsh prints on every governed command whatever happens (its ptracer's Yama notice,
/// Landlock's and seccomp's set-up notes). They fill the first 200 characters of every stderr
/// and hide the line that says what went wrong, so excerpts leave them out.
const NOISE: &[&str] = &["PR_SET_PTRACER(", "landlock: restrictions applied", "INFO seccomp: filter loaded"];

/// `stderr` without agentsh's routine notes (for the suite's excerpts and the driver's samples).
pub fn meaningful(stderr: &str) -> String {
    stderr.lines().filter(|l| !NOISE.iter().any(|n| l.trim_start().starts_with(n))).collect::<Vec<_>>().join("\n")
}

/// At most `max` characters of `text` without agentsh's routine notes, trimmed, with `…` when
/// cut: what verdicts and samples quote.
pub fn excerpt(text: &str, max: usize) -> String {
    let s = meaningful(text);
    let t = s.trim();
    let mut e: String = t.chars().take(max).collect();
    if t.chars().count() > max {
        e.push('…');
    }
    e
}

/// Where `program` is on `$PATH`, then in `extra` directories (tools installed outside the PATH).
pub fn which(program: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(extra.iter().map(PathBuf::from)).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Text for XML or HTML element content and double-quoted attribute values (JUnit XML, the
/// report's page): the five markup characters as entities, line breaks and tabs as character
/// references (a parser turns a literal one into a space in an attribute, and a literal CR into
/// a line feed anywhere), and the control characters XML 1.0 forbids even as references as
/// `\u{..}` text.
pub fn escape_markup(s: &str) -> String {
    escaped(s, true)
}

/// [`escape_markup`] for element content only: line feeds stay as they are (readable in the file).
pub fn escape_markup_text(s: &str) -> String {
    escaped(s, false)
}

fn escaped(s: &str, attribute: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if !attribute => out.push('\n'),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || matches!(c as u32, 0xFFFE | 0xFFFF) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one_and_offsets_past_the_end_clamp() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn json_is_found_between_log_lines() {
        let v = first_json("INFO starting\n{\"a\": {\"b\": 1}}\ntrailing {").expect("an object");
        assert_eq!(v["a"]["b"], 1);
        assert!(first_json("no object here").is_none());
    }

    #[test]
    fn which_finds_sh_and_not_a_made_up_name() {
        assert!(which("sh", &[]).is_some());
        assert!(which("abench-no-such-program", &[]).is_none());
    }
}
