//! Reduces the HTML that Qualys puts in THREAT (qualys.md §5: "THREAT/IMPACT/SOLUTION
//! hold HTML inside CDATA") to one line of plain text: tags removed, entities decoded,
//! whitespace collapsed, capped at a length. The result is still Unicode; making it fit
//! the Host Input format (ASCII, no quotes or commas) is the Host Input side's job.

/// Plain text of `html`, at most `max_chars` characters. When text is cut, it ends in
/// "..." (counted within the limit) so a reader can tell.
pub fn to_plain_text(html: &str, max_chars: usize) -> String {
    let mut text = Text {
        out: String::with_capacity(html.len().min(max_chars.saturating_mul(2))),
        pending_space: false,
        chars: 0,
        max_chars,
    };
    let last_gt = html.rfind('>');
    let bytes = html.as_bytes();
    let mut at = 0;
    let mut truncated = false;

    while at < bytes.len() {
        // Most of a THREAT is runs of plain ASCII: copied whole, not a char at a time
        // (this function ran for every glossary entry and showed in the profile).
        // Never look further than what can still fit: a THREAT is often longer.
        let end = at
            .saturating_add(max_chars.saturating_sub(text.chars).saturating_add(1))
            .min(bytes.len());
        let run = crate::model::plain_run(&bytes[at..end], is_plain);
        if run > 0 {
            if !text.push_ascii(&html[at..at + run]) {
                truncated = true;
                break;
            }
            at += run;
            continue;
        }
        let rest = &html[at..];
        let Some(c) = rest.chars().next() else { break };
        let (emit, advance): (char, usize) = match c {
            // Past the last '>' no tag can close: skip the search (which would make a
            // text full of '<' quadratic).
            '<' if last_gt.is_none_or(|g| g < at) => ('<', 1),
            '<' => match tag_len(rest) {
                // A tag separates words (<br>, <p>, <li>): it becomes a space.
                Some(len) => (' ', len),
                // A lone '<' as in "versions < 2.0" is text.
                None => ('<', 1),
            },
            '&' => entity(rest).unwrap_or(('&', 1)),
            other => (other, other.len_utf8()),
        };
        if !text.push(emit) {
            truncated = true;
            break;
        }
        at += advance;
    }

    let Text { mut out, .. } = text;
    if truncated {
        ellipsize(&mut out, max_chars);
    }
    out
}

/// Ends text that was cut in "...", within `max_chars` (when the limit has room for it).
fn ellipsize(out: &mut String, max_chars: usize) {
    let keep = if max_chars >= 3 {
        max_chars - 3
    } else {
        max_chars
    };
    let cut = out.char_indices().nth(keep).map_or(out.len(), |(i, _)| i);
    out.truncate(cut);
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    if max_chars >= 3 {
        out.push_str("...");
    }
}

/// ASCII that is neither markup nor whitespace: stands for itself.
fn is_plain(b: u8) -> bool {
    b.is_ascii() && !matches!(b, b'<' | b'&' | b' ' | 0x09..=0x0d)
}

/// The text being built: whitespace collapsed, at most `max_chars` characters.
struct Text {
    out: String,
    pending_space: bool,
    chars: usize,
    max_chars: usize,
}

impl Text {
    /// Adds one character; false when it does not fit.
    fn push(&mut self, c: char) -> bool {
        if c.is_whitespace() || c == '\u{a0}' {
            self.pending_space = !self.out.is_empty();
            return true;
        }
        let needed = usize::from(self.pending_space) + 1;
        if self.chars + needed > self.max_chars {
            return false;
        }
        if self.pending_space {
            self.out.push(' ');
            self.chars += 1;
            self.pending_space = false;
        }
        self.out.push(c);
        self.chars += 1;
        true
    }

    /// Adds a `plain_run`, as `push` would one character at a time; false when not all
    /// of it fits (what fits is added).
    fn push_ascii(&mut self, run: &str) -> bool {
        let room = self
            .max_chars
            .saturating_sub(self.chars + usize::from(self.pending_space));
        let mut take = run.len().min(room);
        // `push` keeps a space only once the character after it fits.
        if take < run.len() && run.as_bytes().get(take.wrapping_sub(1)) == Some(&b' ') {
            take -= 1;
        }
        if take > 0 {
            if self.pending_space {
                self.out.push(' ');
                self.chars += 1;
                self.pending_space = false;
            }
            self.out.push_str(&run[..take]);
            self.chars += take;
        }
        take == run.len()
    }
}

/// Length in bytes of the tag (or comment) at the start of `s`, if `s` starts with one.
fn tag_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let next = *bytes.get(1)?;
    if s.starts_with("<!--") {
        return Some(s.find("-->").map_or(s.len(), |i| i + 3));
    }
    if !(next.is_ascii_alphabetic() || next == b'/' || next == b'!' || next == b'?') {
        return None;
    }
    s.find('>').map(|i| i + 1)
}

/// Decodes the entity at the start of `s` (`&amp;`, `&#39;`, `&#x2014;`, ...).
fn entity(s: &str) -> Option<(char, usize)> {
    // Entity names are short: look for the ';' within the next few bytes only.
    let end = s.bytes().skip(1).take(11).position(|b| b == b';')?;
    let name = s.get(1..=end)?;
    let len = end + 2;
    let c = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(code)?
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "ndash" => '\u{2013}',
            "mdash" => '\u{2014}',
            "lsquo" => '\u{2018}',
            "rsquo" => '\u{2019}',
            "ldquo" => '\u{201c}',
            "rdquo" => '\u{201d}',
            "hellip" => '\u{2026}',
            "bull" => '\u{2022}',
            "copy" => '\u{a9}',
            "reg" => '\u{ae}',
            "trade" => '\u{2122}',
            _ => return None,
        }
    };
    Some((c, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_to_text() {
        let cases = [
            ("plain", 100, "plain"),
            ("<P>Some <B>bold</B> text.</P>", 100, "Some bold text."),
            ("line one<BR>line two", 100, "line one line two"),
            ("a\n\n   b\t\tc", 100, "a b c"),
            ("  <p>\n padded \n</p>  ", 100, "padded"),
            ("versions < 2.0 and x<y", 100, "versions < 2.0 and x<y"),
            (
                "&lt;script&gt; &amp; &quot;q&quot; &#39;s&#39; &#x41;&#66;",
                100,
                "<script> & \"q\" 's' AB",
            ),
            ("AT&T and &unknown; stay", 100, "AT&T and &unknown; stay"),
            ("a&nbsp;b", 100, "a b"),
            ("x <!-- hidden <b> --> y", 100, "x y"),
            ("caf\u{e9} &mdash; ok", 100, "caf\u{e9} \u{2014} ok"),
            ("0123456789", 10, "0123456789"),
            ("0123456789A", 10, "0123456..."),
            ("word word word word", 12, "word word..."),
            ("abcdef", 2, "ab"),
            ("abcdef", 0, ""),
            ("<unclosed tag", 100, "<unclosed tag"),
            // Runs of plain ASCII meeting the limit, with and without a pending space.
            ("abc defgh", 7, "abc..."),
            ("abc defgh", 9, "abc defgh"),
            ("abc defgh", 8, "abc d..."),
            ("abc\u{b}def", 100, "abc def"),
            ("ab\u{1}cd", 100, "ab\u{1}cd"),
            ("", 10, ""),
        ];
        for (input, max, want) in cases {
            assert_eq!(to_plain_text(input, max), want, "input {input:?} max {max}");
        }
    }

    /// The char-at-a-time definition `to_plain_text` must keep matching (it copies runs
    /// of plain ASCII whole for speed).
    fn plain_text_slowly(html: &str, max_chars: usize) -> String {
        let mut text = Text {
            out: String::new(),
            pending_space: false,
            chars: 0,
            max_chars,
        };
        let last_gt = html.rfind('>');
        let mut rest = html;
        let mut truncated = false;
        while let Some(c) = rest.chars().next() {
            let at = html.len() - rest.len();
            let (emit, advance) = match c {
                '<' if last_gt.is_none_or(|g| g < at) => ('<', 1),
                '<' => tag_len(rest).map_or(('<', 1), |len| (' ', len)),
                '&' => entity(rest).unwrap_or(('&', 1)),
                other => (other, other.len_utf8()),
            };
            if !text.push(emit) {
                truncated = true;
                break;
            }
            rest = &rest[advance..];
        }
        let mut out = text.out;
        if truncated {
            ellipsize(&mut out, max_chars);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn matches_its_definition(
            html in "([ab \t\n\u{b}\u{1}\u{e9}\u{a0}\u{2014}]|<b>|</p>|<|>|&amp;|&#65;|&x;|&|<!-- c -->){0,30}",
            max in 0usize..40,
        ) {
            proptest::prop_assert_eq!(to_plain_text(&html, max), plain_text_slowly(&html, max));
        }
    }

    #[test]
    fn many_unclosed_tags_stay_linear() {
        // 200,000 '<a' with no '>' anywhere: each used to rescan the rest of the text.
        // (Its time is not asserted: it is a benchmark's business. Quadratic, this test
        // took minutes.)
        let text = "<a ".repeat(200_000);
        let out = to_plain_text(&text, 1_000_000);
        assert_eq!(out.len(), text.trim_end().len());
    }

    #[test]
    fn never_exceeds_limit() {
        let text = "<p>Lorem ipsum \u{e9}\u{e9}\u{e9} dolor &amp; sit amet</p> ".repeat(50);
        for max in 0..200 {
            let out = to_plain_text(&text, max);
            assert!(out.chars().count() <= max, "max {max}: {out:?}");
        }
    }
}
