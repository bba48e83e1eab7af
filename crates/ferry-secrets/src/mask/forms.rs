//! Which byte strings count as "a form of this secret" in output.
//!
//! The rules, and why:
//!
//! * **Too-short values are not masked.** A value whose trimmed length is below
//!   [`MIN_SECRET_LEN`] (3 bytes) is skipped entirely: masking `a` or `42` everywhere
//!   would wreck the log while protecting nothing (such a value has no entropy worth
//!   hiding). Everything at or above it is masked, whatever it looks like.
//! * **The value itself**, byte for byte, and also with surrounding ASCII whitespace
//!   trimmed (a secret stored from a file usually ends in `\n`, and tools print it with
//!   or without it).
//! * **Each line of a multi-line value** on its own, trimmed of ASCII whitespace (so a
//!   trailing `\r` or indentation does not matter), when the line is at least
//!   [`MIN_FRAGMENT_LEN`] (4) bytes long. Tools often re-indent, re-wrap or re-join a
//!   PEM key or a config file; short lines (`}`, `---`, `end`) are structure, not secret,
//!   and masking them everywhere would hide ordinary output.
//! * **Base64**, standard and URL-safe alphabets, padded and unpadded: the full
//!   encoding of the value, plus the part of the encoding that is the same whatever
//!   bytes surround the value when it sits at offset 0, 1 or 2 (mod 3) of a larger
//!   encoded blob (`kubectl get secret -o yaml`, basic-auth headers, docker configs).
//!   At most one base64 character at each edge, carrying at most 4 bits of the value,
//!   can stay visible in a blob. Base64 wrapped across lines is not recognised.
//! * **Percent-encoding** as the common encoders write it: everything but
//!   alphanumerics, RFC 3986 unreserved (`-._~` kept), JavaScript's
//!   `encodeURIComponent` (also `!*'()` kept), HTML forms (`*-._` kept) and Python's
//!   `quote` (`/` kept); each with a space as `%20` and as `+`, with upper- and
//!   lower-case hex digits.
//! * **JSON string escaping** (`"`, `\`, control characters), for values printed by
//!   `jq`, `docker inspect` and friends.
//!
//! Derived forms (lines and encodings) shorter than [`MIN_FRAGMENT_LEN`] are dropped.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Values whose trimmed length is below this are not masked at all.
pub const MIN_SECRET_LEN: usize = 3;

/// Derived forms (one line of a value, an encoding) shorter than this are not masked.
pub const MIN_FRAGMENT_LEN: usize = 4;

/// RFC 3986 unreserved characters kept (curl, Python `quote(safe="")`, Go).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// JavaScript `encodeURIComponent`.
const JS_COMPONENT: &AsciiSet = &UNRESERVED
    .remove(b'!')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');
/// `application/x-www-form-urlencoded` (WHATWG URL standard).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');
/// Python's `urllib.parse.quote` with its default `safe="/"`.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Appends every maskable form of `value` to `out` (possibly with duplicates).
/// Returns how many of them, pushed first, are the value itself (as is and trimmed):
/// the forms output most often shows.
pub fn push_forms(value: &[u8], out: &mut Vec<Vec<u8>>) -> usize {
    let trimmed = value.trim_ascii();
    if trimmed.len() < MIN_SECRET_LEN {
        return 0;
    }
    let sources: &[&[u8]] = if trimmed.len() == value.len() {
        &[value]
    } else {
        &[value, trimmed]
    };
    for src in sources {
        out.push(src.to_vec());
    }
    if trimmed.contains(&b'\n') {
        for line in trimmed.split(|&b| b == b'\n') {
            push_fragment(line.trim_ascii().to_vec(), out);
        }
    }
    for src in sources {
        push_base64(src, out);
        push_percent(src, out);
        push_json(src, out);
    }
    sources.len()
}

fn push_fragment(form: Vec<u8>, out: &mut Vec<Vec<u8>>) {
    if form.len() >= MIN_FRAGMENT_LEN {
        out.push(form);
    }
}

fn push_base64(src: &[u8], out: &mut Vec<Vec<u8>>) {
    for (padded, unpadded) in [(&STANDARD, &STANDARD_NO_PAD), (&URL_SAFE, &URL_SAFE_NO_PAD)] {
        push_fragment(padded.encode(src).into_bytes(), out);
        push_fragment(unpadded.encode(src).into_bytes(), out);
        // The value at byte offset k (mod 3) of a larger blob: base64 character i covers
        // bits [6i, 6i+6) and the value covers bits [8k, 8(k+n)); only characters lying
        // wholly inside the value are the same whatever surrounds it.
        let mut shifted = Vec::with_capacity(src.len() + 2);
        for k in 0..3 {
            shifted.clear();
            shifted.resize(k, 0);
            shifted.extend_from_slice(src);
            let encoded = unpadded.encode(&shifted).into_bytes();
            let first = (8 * k).div_ceil(6);
            let end = (8 * (k + src.len()) / 6).min(encoded.len());
            if let Some(inner) = encoded.get(first..end) {
                push_fragment(inner.to_vec(), out);
            }
        }
    }
}

fn push_percent(src: &[u8], out: &mut Vec<Vec<u8>>) {
    for set in [NON_ALPHANUMERIC, UNRESERVED, JS_COMPONENT, FORM, PATH] {
        let upper = percent_encoding::percent_encode(src, set)
            .to_string()
            .into_bytes();
        if upper == src {
            continue;
        }
        let plus = space_as_plus(&upper);
        for form in [upper, plus] {
            let lower = lower_hex(&form);
            push_fragment(form, out);
            push_fragment(lower, out);
        }
    }
}

/// `%20` → `+`. A `%` in percent-encoded output always starts a `%XX` escape, so every
/// `%20` found here is an encoded space.
fn space_as_plus(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i..].starts_with(b"%20") {
            out.push(b'+');
            i += 3;
        } else {
            out.push(encoded[i]);
            i += 1;
        }
    }
    out
}

/// Lower-cases the two hex digits after every `%`.
fn lower_hex(encoded: &[u8]) -> Vec<u8> {
    let mut out = encoded.to_vec();
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'%' {
            for digit in out.iter_mut().skip(i + 1).take(2) {
                digit.make_ascii_lowercase();
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

fn push_json(src: &[u8], out: &mut Vec<Vec<u8>>) {
    let Ok(text) = std::str::from_utf8(src) else {
        return;
    };
    // Serialising a `&str` cannot fail; skip the form rather than panic if it ever did.
    let Ok(quoted) = serde_json::to_string(text) else {
        return;
    };
    let escaped = quoted.as_bytes();
    if let Some(inner) = escaped.get(1..escaped.len().saturating_sub(1))
        && inner != src
    {
        push_fragment(inner.to_vec(), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(value: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        push_forms(value, &mut out);
        out
    }

    #[test]
    fn short_values_have_no_forms() {
        assert!(forms(b"ab").is_empty());
        assert!(forms(b"  ab \n").is_empty());
        assert!(!forms(b"abc").is_empty());
    }

    #[test]
    fn shifted_base64_forms_are_substrings_of_any_surrounding_blob() {
        let secret = b"s3cr3t-value!";
        let all = forms(secret);
        for k in 0..3 {
            for filler in [0u8, 0xff, b'x'] {
                let mut blob = vec![filler; k];
                blob.extend_from_slice(secret);
                blob.extend_from_slice(&[filler; 5]);
                let encoded = STANDARD.encode(&blob);
                assert!(
                    all.iter()
                        .any(|f| encoded.as_bytes().windows(f.len()).any(|w| w == f)),
                    "no form inside {encoded} (offset {k})"
                );
            }
        }
    }

    #[test]
    fn percent_forms_cover_plus_and_lower_hex() {
        let all = forms(b"p@ss word/x");
        for want in [
            &b"p%40ss%20word%2Fx"[..],
            b"p%40ss+word%2Fx",
            b"p%40ss%20word%2fx",
            b"p%40ss+word/x",
        ] {
            assert!(
                all.iter().any(|f| f == want),
                "missing {}",
                String::from_utf8_lossy(want)
            );
        }
    }

    #[test]
    fn lines_of_multi_line_values_are_forms_when_long_enough() {
        let all = forms(b"first line\r\n}\r\n  second line  \n");
        assert!(all.iter().any(|f| f == b"first line"));
        assert!(all.iter().any(|f| f == b"second line"));
        assert!(!all.iter().any(|f| f == b"}"));
    }
}
