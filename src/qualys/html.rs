//! Reduces the HTML that Qualys puts in THREAT (qualys.md §5: "THREAT/IMPACT/SOLUTION
//! hold HTML inside CDATA") to one line of plain text: tags removed, entities decoded,
//! whitespace collapsed, capped at a length. The result is still Unicode; making it fit
//! the Host Input format (ASCII, no quotes or commas) is the Host Input side's job.

/// Plain text of `html`, at most `max_chars` characters. When text is cut, it ends in
/// "..." (counted within the limit) so a reader can tell.
pub fn to_plain_text(html: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(html.len().min(max_chars.saturating_mul(2)));
    let mut pending_space = false;
    let mut chars = 0usize;
    let last_gt = html.rfind('>');
    let mut rest = html;
    let mut truncated = false;

    let mut push = |c: char, out: &mut String, pending_space: &mut bool| -> bool {
        if c.is_whitespace() || c == '\u{a0}' {
            *pending_space = !out.is_empty();
            return true;
        }
        let needed = usize::from(*pending_space) + 1;
        if chars + needed > max_chars {
            return false;
        }
        if *pending_space {
            out.push(' ');
            chars += 1;
            *pending_space = false;
        }
        out.push(c);
        chars += 1;
        true
    };

    while let Some(c) = rest.chars().next() {
        let (emit, advance): (Option<char>, usize) = match c {
            // Past the last '>' no tag can close: skip the search (which would make a
            // text full of '<' quadratic).
            '<' if last_gt.is_none_or(|g| g < html.len() - rest.len()) => (Some('<'), 1),
            '<' => match tag_len(rest) {
                // A tag separates words (<br>, <p>, <li>): it becomes a space.
                Some(len) => (Some(' '), len),
                // A lone '<' as in "versions < 2.0" is text.
                None => (Some('<'), 1),
            },
            '&' => match entity(rest) {
                Some((decoded, len)) => (Some(decoded), len),
                None => (Some('&'), 1),
            },
            other => (Some(other), other.len_utf8()),
        };
        if let Some(ch) = emit
            && !push(ch, &mut out, &mut pending_space)
        {
            truncated = true;
            break;
        }
        rest = &rest[advance..];
    }

    if truncated {
        // Make room for the ellipsis inside the limit (when the limit has room for it).
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
    out
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
            ("", 10, ""),
        ];
        for (input, max, want) in cases {
            assert_eq!(to_plain_text(input, max), want, "input {input:?} max {max}");
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
