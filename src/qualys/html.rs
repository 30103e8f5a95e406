//! Reduces the HTML that Qualys puts in THREAT (qualys.md §5: "THREAT/IMPACT/SOLUTION
//! hold HTML inside CDATA") to one line of plain text: tags removed, entities decoded,
//! whitespace collapsed, capped at a length. TITLE text gets the same entity decoding and
//! whitespace collapsing, its tags kept (a title is text: "versions <2.4>" is its
//! words). Every HTML5 named entity is decoded (`&eacute;`, `&frac12;`, ...). The result
//! is still Unicode; making it fit the Host Input format (ASCII, no quotes or commas) is
//! the Host Input side's job.

/// Plain text of `html`, at most `max_chars` characters. When text is cut, it ends in
/// "..." (counted within the limit) so a reader can tell.
pub fn to_plain_text(html: &str, max_chars: usize) -> String {
    convert(html, max_chars, Markup::Removed)
}

/// `text` with its entities decoded and its whitespace collapsed, markup left as it is:
/// for titles.
pub fn decode_text(text: &str) -> String {
    convert(text, usize::MAX, Markup::Kept)
}

/// Whether tags are removed or are text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    Removed,
    Kept,
}

fn convert(html: &str, max_chars: usize, markup: Markup) -> String {
    let mut text = Text {
        out: String::with_capacity(html.len().min(max_chars.saturating_mul(2))),
        pending_space: false,
        chars: 0,
        max_chars,
    };
    // Past the last '>' no tag can close: the search is skipped (it would make a text
    // full of '<' quadratic).
    let last_gt = match markup {
        Markup::Removed => html.rfind('>'),
        Markup::Kept => None,
    };
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
        let (emit, advance) = next_piece(&html[at..], at, last_gt);
        if !text.push_piece(emit) {
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

/// What the text at `rest` (at byte `at` of the whole) stands for, and its length in
/// bytes: a tag a space, an entity its characters, anything else itself.
fn next_piece(rest: &str, at: usize, last_gt: Option<usize>) -> (Piece, usize) {
    let Some(c) = rest.chars().next() else {
        return (Piece::Text(""), rest.len().max(1));
    };
    match c {
        '<' if last_gt.is_none_or(|g| g < at) => (Piece::Char('<'), 1),
        '<' => match tag_len(rest) {
            // A tag separates words (<br>, <p>, <li>): it becomes a space.
            Some(len) => (Piece::Char(' '), len),
            // A lone '<' as in "versions < 2.0" is text.
            None => (Piece::Char('<'), 1),
        },
        '&' => entity(rest).unwrap_or((Piece::Char('&'), 1)),
        other => (Piece::Char(other), other.len_utf8()),
    }
}

/// What a piece of the input becomes: one character, or an entity's text (some HTML5
/// entities are two characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Char(char),
    Text(&'static str),
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

    /// Adds a piece's characters; false when not all of them fit.
    fn push_piece(&mut self, piece: Piece) -> bool {
        match piece {
            Piece::Char(c) => self.push(c),
            Piece::Text(text) => text.chars().all(|c| self.push(c)),
        }
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

/// Decodes the entity at the start of `s` (`&amp;`, `&eacute;`, `&#39;`, `&#x2014;`,
/// ...): every HTML5 named entity, and numeric references.
fn entity(s: &str) -> Option<(Piece, usize)> {
    // Entity names are short: look for the ';' within the next few bytes only.
    let end = s
        .bytes()
        .skip(1)
        .take(super::entities::MAX_NAME + 1)
        .position(|b| b == b';')?;
    let name = s.get(1..=end)?;
    let len = end + 2;
    let piece = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        Piece::Char(char::from_u32(code)?)
    } else {
        // The usual few without a search of the table.
        match name {
            "amp" => Piece::Char('&'),
            "lt" => Piece::Char('<'),
            "gt" => Piece::Char('>'),
            "quot" => Piece::Char('"'),
            "apos" => Piece::Char('\''),
            "nbsp" => Piece::Char('\u{a0}'),
            _ => Piece::Text(super::entities::resolve(name)?),
        }
    };
    Some((piece, len))
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
            (
                "caf&eacute; &frac12; &copy; &euro;&hellip; &Omega;",
                100,
                "caf\u{e9} \u{bd} \u{a9} \u{20ac}\u{2026} \u{3a9}",
            ),
            ("&NotEqualTilde;", 100, "\u{2242}\u{338}"),
            ("&CounterClockwiseContourIntegral;", 100, "\u{2233}"),
            ("&eacute &ampx; &Eacute;", 100, "&eacute &ampx; \u{c9}"),
            ("ab&NotEqualTilde;", 4, "ab\u{2242}\u{338}"),
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
    fn plain_text_slowly(html: &str, max_chars: usize, markup: Markup) -> String {
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
                '<' if markup == Markup::Kept || last_gt.is_none_or(|g| g < at) => {
                    (Piece::Char('<'), 1)
                }
                '<' => tag_len(rest).map_or((Piece::Char('<'), 1), |len| (Piece::Char(' '), len)),
                '&' => entity(rest).unwrap_or((Piece::Char('&'), 1)),
                other => (Piece::Char(other), other.len_utf8()),
            };
            if !text.push_piece(emit) {
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
            html in "([ab \t\n\u{b}\u{1}\u{e9}\u{a0}\u{2014}]|<b>|</p>|<|>|&amp;|&#65;|&x;|&|<!-- c -->|&eacute;|&frac12;|&NotEqualTilde;|&nbsp;|&CounterClockwiseContourIntegral;|&ampx;){0,30}",
            max in 0usize..40,
            kept in proptest::bool::ANY,
        ) {
            let markup = if kept { Markup::Kept } else { Markup::Removed };
            proptest::prop_assert_eq!(
                convert(&html, max, markup),
                plain_text_slowly(&html, max, markup)
            );
        }
    }

    #[test]
    fn titles_decode_entities_and_keep_markup() {
        let cases = [
            ("Caf&eacute; &amp; Bar", "Caf\u{e9} & Bar"),
            ("  Apache <2.4> \n  mod&#95;ssl  ", "Apache <2.4> mod_ssl"),
            ("<b>x</b>&nbsp;&frac12;", "<b>x</b> \u{bd}"),
            ("AT&T &unknown;", "AT&T &unknown;"),
        ];
        for (input, want) in cases {
            assert_eq!(decode_text(input), want, "{input:?}");
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
