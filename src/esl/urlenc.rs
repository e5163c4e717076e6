//! FreeSWITCH's URL encoding of header values (`switch_url_encode` / `switch_url_decode`).
//!
//! FreeSWITCH escapes every byte below a space or above `~` plus the set
//! `\r\n "#%&+:;<=>?@[\]^`{|}` as `%XX` (upper-case hex) and leaves everything else, `/` included,
//! as is. Decoding only understands `%XX`; a `+` stays a `+` (this is not form encoding).

/// Bytes FreeSWITCH escapes besides control and non-ASCII bytes.
const UNSAFE: &[u8] = b"\r\n \"#%&+:;<=>?@[\\]^`{|}";
const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn needs_escape(b: u8) -> bool {
    !(b' '..=b'~').contains(&b) || UNSAFE.contains(&b)
}

/// Whether the `%` at `bytes[i]` starts an escape FreeSWITCH keeps (`%` + two of `0-9A-F`).
fn is_kept_escape(bytes: &[u8], i: usize) -> bool {
    bytes.get(i) == Some(&b'%')
        && bytes.get(i + 1).is_some_and(|b| HEX.contains(b))
        && bytes.get(i + 2).is_some_and(|b| HEX.contains(b))
}

/// Appends `value` to `out`, escaped exactly as FreeSWITCH escapes event header values.
pub fn encode_into(value: &str, out: &mut String) {
    if !value.bytes().any(needs_escape) {
        out.push_str(value);
        return;
    }
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if needs_escape(b) && !is_kept_escape(bytes, i) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        } else {
            out.push(char::from(b));
        }
    }
}

/// `value` escaped as FreeSWITCH escapes event header values.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    encode_into(value, &mut out);
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` sequences. A `%` not followed by two hex digits is kept literally, as FreeSWITCH
/// does. Bytes that do not form UTF-8 after decoding become U+FFFD: one odd caller-id byte must not
/// make a whole event unreadable.
pub fn decode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    decode_into(value, &mut out, &mut Vec::new());
    out
}

/// [`decode`] appending to `out`; `scratch` is a reusable buffer (no allocation per value when
/// decoding the hundreds of headers of one event).
pub fn decode_into(value: &str, out: &mut String, scratch: &mut Vec<u8>) {
    if !value.contains('%') {
        out.push_str(value);
        return;
    }
    let bytes = value.as_bytes();
    scratch.clear();
    let out_bytes = scratch;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) {
                out_bytes.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out_bytes.push(b);
        i += 1;
    }
    match std::str::from_utf8(out_bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(out_bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_freeswitch() {
        assert_eq!(
            encode("sofia/internal/1000@192.168.1.100"),
            "sofia/internal/1000%40192.168.1.100"
        );
        assert_eq!(encode("2009-10-28 11:31:45"), "2009-10-28%2011%3A31%3A45");
        assert_eq!(encode("+OK ñ\n"), "%2BOK%20%C3%B1%0A");
        assert_eq!(encode("a/b~c$'(),*!"), "a/b~c$'(),*!");
        // An escape already there stays; a lower-case or short one is escaped.
        assert_eq!(encode("%41 %4a %"), "%41%20%254a%20%25");
        assert_eq!(encode("100%2"), "100%252");
    }

    #[test]
    fn decodes_and_round_trips() {
        assert_eq!(decode("1000%40192.168.1.100"), "1000@192.168.1.100");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("a+b"), "a+b");
        assert_eq!(decode("%FF"), "\u{FFFD}");
        for s in ["", "x y:z", "ñandú @ 10:00", "%4a", "\r\n\t"] {
            assert_eq!(decode(&encode(s)), s);
        }
    }
}
