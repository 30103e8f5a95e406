//! A minimal DER writer: just the ASN.1 types that a PKCS#12 file (RFC 7292) and an
//! X.509 v1 certificate (RFC 5280 §4.1) need. Every function returns one complete
//! TLV, so structures are built bottom-up by concatenation.

/// Encodes one tag-length-value with a definite length (X.690 §8.1.3).
pub(crate) fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let significant = &bytes[first..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(value);
    out
}

/// SEQUENCE of already-encoded elements.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// SET OF already-encoded elements, sorted as DER requires (X.690 §11.6).
pub(crate) fn set_of(parts: &[&[u8]]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = parts.to_vec();
    sorted.sort();
    tlv(0x31, &sorted.concat())
}

/// `[n] EXPLICIT` (constructed, context-specific).
pub(crate) fn explicit(n: u8, inner: &[u8]) -> Vec<u8> {
    tlv(0xa0 | n, inner)
}

/// `[n] IMPLICIT OCTET STRING` (primitive, context-specific).
pub(crate) fn implicit_octets(n: u8, value: &[u8]) -> Vec<u8> {
    tlv(0x80 | n, value)
}

pub(crate) fn octet_string(value: &[u8]) -> Vec<u8> {
    tlv(0x04, value)
}

/// BIT STRING with no unused bits.
pub(crate) fn bit_string(value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 1);
    v.push(0);
    v.extend_from_slice(value);
    tlv(0x03, &v)
}

pub(crate) fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

/// INTEGER from a non-negative machine integer.
pub(crate) fn uint(value: u64) -> Vec<u8> {
    unsigned_integer(&value.to_be_bytes())
}

/// INTEGER from big-endian unsigned magnitude bytes (leading zeros trimmed, a zero
/// byte prepended when the top bit is set, so the value stays positive).
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let first = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len());
    let trimmed = &magnitude[first..];
    let mut v = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(trimmed);
    tlv(0x02, &v)
}

/// OBJECT IDENTIFIER from its arcs (X.690 §8.19). The first two arcs must be valid
/// (0–2, then < 40 for 0 and 1), which holds for every constant in this crate.
pub(crate) fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut iter = arcs.iter();
    let first = iter.next().copied().unwrap_or(0);
    let second = iter.next().copied().unwrap_or(0);
    push_base128(&mut body, first * 40 + second);
    for arc in iter {
        push_base128(&mut body, *arc);
    }
    tlv(0x06, &body)
}

fn push_base128(out: &mut Vec<u8>, mut value: u64) {
    let mut tmp = [0u8; 10];
    let mut n = 0;
    loop {
        tmp[n] = (value & 0x7f) as u8;
        n += 1;
        value >>= 7;
        if value == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        out.push(tmp[i] | more);
    }
}

/// BMPString (UTF-16BE), as PKCS#12 friendlyName attributes use (RFC 7292 §4.2).
pub(crate) fn bmp_string(s: &str) -> Vec<u8> {
    let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
    tlv(0x1e, &bytes)
}

/// UTF8String.
pub(crate) fn utf8_string(s: &str) -> Vec<u8> {
    tlv(0x0c, s.as_bytes())
}

/// UTCTime (`YYMMDDHHMMSSZ`) for 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5).
pub(crate) fn time(t: time::OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if (1950..2050).contains(&year) {
        tlv(0x17, format!("{:02}{rest}", year % 100).as_bytes())
    } else {
        tlv(0x18, format!("{year:04}{rest}").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_values() {
        // Table: (encoding, expected bytes), from X.690 examples and OpenSSL output.
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (uint(0), vec![0x02, 0x01, 0x00]),
            (uint(127), vec![0x02, 0x01, 0x7f]),
            (uint(128), vec![0x02, 0x02, 0x00, 0x80]),
            (uint(2048), vec![0x02, 0x02, 0x08, 0x00]),
            (
                oid(&[1, 2, 840, 113549, 1, 12, 1, 6]),
                vec![
                    0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06,
                ],
            ),
            (oid(&[2, 5, 4, 3]), vec![0x06, 0x03, 0x55, 0x04, 0x03]),
            (null(), vec![0x05, 0x00]),
            (bmp_string("ab"), vec![0x1e, 0x04, 0, b'a', 0, b'b']),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn long_lengths() {
        let v = vec![0u8; 300];
        let enc = octet_string(&v);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(enc.len(), 304);
        let enc = octet_string(&[0u8; 200]);
        assert_eq!(&enc[..3], &[0x04, 0x81, 200]);
    }

    #[test]
    fn times() {
        let at = |y, m, d, hh, mm, ss| {
            let date = time::Date::from_calendar_date(y, m, d).unwrap();
            date.with_hms(hh, mm, ss).unwrap().assume_utc()
        };
        assert_eq!(
            time(at(2024, time::Month::March, 5, 6, 7, 8)),
            tlv(0x17, b"240305060708Z")
        );
        assert_eq!(
            time(at(2051, time::Month::January, 1, 0, 0, 0)),
            tlv(0x18, b"20510101000000Z")
        );
    }
}
