//! Text that came from a strategy or from outside the process, made safe to show on an
//! operator's terminal.
//!
//! A guest chooses the bytes of its log lines, error messages and proposal reasons; whoever
//! answers on the engine's port chooses strategy names, configs and refusal reasons. Printed
//! raw, a NUL, an escape sequence (`ESC [2J` clears the screen, OSC sets the window title or
//! the clipboard), a C1 control (U+009B is a one-character CSI) or a bidi override (U+202E
//! shows the rest of the line backwards) acts on the terminal or hides what the line says.
//! [`escape`] writes every such character as a visible escape (`\u{1b}`, `\u{202e}`, `\0`,
//! `\n`) and leaves all other text alone; [`json`] does the same inside JSON strings as
//! `\uXXXX`, so JSON output stays valid JSON that parses back to the original text.
//!
//! Every place the `stratbox` command prints such text goes through one of these two; the
//! host's own error types escape guest text in their `Display`.

use serde::Serialize;
use std::borrow::Cow;
use std::fmt;

/// Whether `c` may act on a terminal or change how the text around it reads: C0 controls
/// (tab and newline included: output is line-oriented), DEL, C1 controls, the bidi
/// embeddings, overrides, isolates and marks, the line and paragraph separators, and the
/// invisible zero-width space and byte-order mark.
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200b}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}'
    )
}

/// `text` with every character [`needs_escape`] picks written as an escape; borrowed when
/// there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(Escaped(text).to_string())
}

/// Displays its text escaped like [`escape`], without allocating: for format arguments.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some((at, c)) = rest.char_indices().find(|(_, c)| needs_escape(*c)) {
            f.write_str(&rest[..at])?;
            match c {
                '\0' => f.write_str("\\0")?,
                '\t' => f.write_str("\\t")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// `value` as compact JSON in which, besides what JSON itself escapes (C0 controls, `"`
/// and `\`), every character [`needs_escape`] picks is written `\uXXXX`: still valid JSON
/// meaning exactly the same text, but nothing in it acts on a terminal.
pub fn json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, TerminalSafe);
    value.serialize(&mut serializer)?;
    // The serializer writes only UTF-8 (it escapes, never splits, characters).
    String::from_utf8(out).map_err(|e| serde_json::Error::io(std::io::Error::other(e)))
}

/// serde_json's compact formatter, escaping [`needs_escape`] characters in strings.
struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|(_, c)| needs_escape(*c)) {
            writer.write_all(&rest.as_bytes()[..at])?;
            // Every character `needs_escape` picks is in the Basic Multilingual Plane.
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of character a terminal acts on, each between two plain letters.
    const HOSTILE: &str = "a\0b\u{1b}[2Jc\u{1b}]0;title\u{7}d\u{9b}31me\u{202e}f\u{2066}g\u{2067}h\u{2068}i\u{2069}j\u{202a}k\u{200e}l\u{200f}m\u{61c}n\u{85}o\u{7f}p\tq\nr\rs\u{2028}t\u{feff}u\u{8}v";

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "clamm-maker re-centres at tick -600 (0x8ad5…, 1.5% \\ \"ok\") ü 中文 🙂";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn every_control_and_bidi_character_is_escaped() {
        let out = escape(HOSTILE);
        assert!(!out.chars().any(needs_escape), "{out:?}");
        assert!(!out.chars().any(char::is_control), "{out:?}");
        assert_eq!(
            out,
            "a\\0b\\u{1b}[2Jc\\u{1b}]0;title\\u{7}d\\u{9b}31me\\u{202e}f\\u{2066}g\\u{2067}h\\u{2068}i\\u{2069}j\\u{202a}k\\u{200e}l\\u{200f}m\\u{61c}n\\u{85}o\\u{7f}p\\tq\\nr\\rs\\u{2028}t\\u{feff}u\\u{8}v"
        );
    }

    #[test]
    fn every_c0_and_c1_control_is_caught() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(needs_escape(c), "U+{:04X}", u32::from(c));
            assert!(
                !escape(&c.to_string()).contains(c),
                "U+{:04X}",
                u32::from(c)
            );
        }
        for c in ['a', ' ', '~', '\u{a0}', 'é', '\u{200d}', '🙂'] {
            assert!(!needs_escape(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn json_stays_valid_and_means_the_same_text() {
        let value = serde_json::json!({ "reason": HOSTILE, "n": 1 });
        let out = json(&value).unwrap();
        assert!(!out.chars().any(needs_escape), "{out}");
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, value);
        assert!(out.contains("\\u202e") && out.contains("\\u009b") && out.contains("\\u001b"));
    }
}
