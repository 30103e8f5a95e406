//! Server text (Qualys, the FMC, a proxy) is data, never log structure: before it
//! reaches a log line or an error message it is flattened to one line, its control
//! characters and invalid bytes escaped, its length bounded ([`escape`]), and every
//! configured secret removed from it ([`redact`]).
//!
//! A hostile or broken server could otherwise forge log lines (a newline followed by a
//! fake `[INFO] delivered ...`), hide text from the operator (NUL, ESC sequences), or echo
//! a password back into a log file that other people read. The logger redacts every
//! record, whatever its origin (src/logging.rs), so a secret cannot leave through a
//! path that forgot to call `redact`.

use std::borrow::Cow;
use std::sync::RwLock;

use base64::Engine as _;

/// Secrets shorter than this are not redacted: a 1-3 character "secret" would blank out
/// ordinary words in every log line, and is no secret worth the name.
pub const MIN_SECRET_CHARS: usize = 4;

/// The longest server text kept in one log line, in characters (before escaping).
pub const MAX_TEXT_CHARS: usize = 2000;

/// What stands where a secret was.
pub const REDACTED: &str = "<redacted>";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a configured secret (a password) for redaction from every log line and
/// message. Secrets shorter than [`MIN_SECRET_CHARS`] are ignored.
pub fn register_secret(secret: &str) {
    add(secret.to_string());
}

/// Registers a password and its HTTP Basic form: `base64(user:password)`, which a server
/// might echo from the `Authorization` header.
pub fn register_basic(user: &str, password: &str) {
    register_secret(password);
    if password.chars().count() >= MIN_SECRET_CHARS {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        add(token);
    }
}

fn add(value: String) {
    if value.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    if let Ok(mut secrets) = SECRETS.write()
        && !secrets.contains(&value)
    {
        secrets.push(value);
        // Longest first, so a secret that contains another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let Ok(secrets) = SECRETS.read() else {
        return Cow::Borrowed(text);
    };
    redact_with(text, &secrets)
}

fn redact_with<'a>(text: &'a str, secrets: &[String]) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// Server bytes as one safe log line: valid UTF-8 printable text is kept; line breaks,
/// tabs and other control characters become `\n`, `\r`, `\t`, `\u{..}`; invalid UTF-8
/// bytes become `\xNN`; the result is cut at `max_chars` characters of input with
/// `... (N more bytes)`; and registered secrets are redacted.
pub fn escape(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max_chars) + 16);
    // Characters of input taken so far, and bytes of input they came from.
    let (mut chars, mut used) = (0usize, 0usize);
    'chunks: for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if chars == max_chars {
                break 'chunks;
            }
            push_escaped(&mut out, c);
            chars += 1;
            used += c.len_utf8();
        }
        for b in chunk.invalid() {
            if chars == max_chars {
                break 'chunks;
            }
            out.push_str(&format!("\\x{b:02X}"));
            chars += 1;
            used += 1;
        }
    }
    if used < bytes.len() {
        out.push_str(&format!("... ({} more bytes)", bytes.len() - used));
    }
    redact(&out).into_owned()
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        let cases: [(&[u8], usize, &str); 9] = [
            (
                b"Done processing 3 commands.",
                100,
                "Done processing 3 commands.",
            ),
            (
                b"ok\n2026-01-01T00:00:00Z [INFO] forged",
                100,
                "ok\\n2026-01-01T00:00:00Z [INFO] forged",
            ),
            (b"a\x00b\x1b[31mc", 100, "a\\u{0}b\\u{1b}[31mc"),
            (b"tab\there\r", 100, "tab\\there\\r"),
            (b"bad \xFF\xFE byte", 100, "bad \\xFF\\xFE byte"),
            ("Caf\u{e9} \u{85}".as_bytes(), 100, "Caf\u{e9} \\u{85}"),
            (b"back\\slash", 100, "back\\\\slash"),
            (b"0123456789", 4, "0123... (6 more bytes)"),
            (b"\xFF\xFF\xFF\xFF\xFF", 2, "\\xFF\\xFF... (3 more bytes)"),
        ];
        for (input, max, want) in cases {
            assert_eq!(
                escape(input, max),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn escaped_text_is_one_line_without_controls() {
        let all: Vec<u8> = (0..=255u8).collect();
        let out = escape(&all, MAX_TEXT_CHARS);
        assert!(!out.chars().any(char::is_control), "{out:?}");
    }

    #[test]
    fn redaction_table() {
        let secrets = vec!["p@ss,w0rd-longer".to_string(), "p@ss,w0rd".to_string()];
        let cases = [
            (
                "bad password p@ss,w0rd given",
                "bad password <redacted> given",
            ),
            ("p@ss,w0rd-longer", "<redacted>"),
            ("nothing here", "nothing here"),
            ("twice p@ss,w0rd p@ss,w0rd", "twice <redacted> <redacted>"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_with(text, &secrets), want);
        }
    }

    #[test]
    fn registered_secrets_and_basic_forms_are_redacted() {
        register_basic("dirk_g", "s3cr3t-echo-test");
        register_secret("abc"); // too short: ignored
        let token = base64::engine::general_purpose::STANDARD.encode("dirk_g:s3cr3t-echo-test");
        let text = format!("echo s3cr3t-echo-test and Basic {token}; abc stays");
        assert_eq!(
            redact(&text),
            "echo <redacted> and Basic <redacted>; abc stays"
        );
        assert_eq!(escape(text.as_bytes(), 1000), redact(&text));
    }
}
