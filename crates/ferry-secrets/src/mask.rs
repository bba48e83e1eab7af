//! Masking of secret values in byte streams.
//!
//! [`Masker`] compiles every form of every secret value (see the rules below) into a
//! set of searchers; [`StreamMasker`] runs them over a stream written in arbitrary
//! chunks. Each masked region becomes `***`; overlapping occurrences (of one secret or
//! of two) become a single `***`.
//!
//! # What is masked
//!
//! * Values shorter than [`MIN_SECRET_LEN`] bytes (after trimming whitespace) are not
//!   masked at all; every other value is masked whatever it looks like.
//! * The value itself, and the value with surrounding whitespace trimmed.
//! * Each line (trimmed) of a multi-line value that is at least [`MIN_FRAGMENT_LEN`]
//!   bytes long.
//! * Base64 (standard and URL-safe, padded or not), including the stable inner part of
//!   the encoding when the value sits at offset 1 or 2 of a larger encoded blob.
//! * Percent-encoding as common encoders write it (`%20` or `+` for spaces, upper- or
//!   lower-case hex), and JSON string escaping.
//!
//! Derived forms (lines, encodings) shorter than [`MIN_FRAGMENT_LEN`] are not masked.
//!
//! # Streaming and latency
//!
//! `push` emits everything that cannot be the start of a secret at once and holds back
//! only a suffix that is the beginning of some form (at most the longest form minus one
//! byte), so a live log shows a finished line immediately. The values themselves (the
//! forms printed most often) each get a `memchr::memmem` searcher, cheap per
//! occurrence; derived forms share SIMD (Teddy) searchers of up to 32 patterns; large
//! pattern sets fall back to a DFA. With one secret and no encoded form in a chunk,
//! the chunk is masked in one `memmem` pass (a step printing its token on every line
//! makes millions of occurrences). One secret masks at several GB/s (see
//! `examples/mask_throughput.rs` for figures and how to measure).

mod engine;
mod forms;

use std::fmt;
use std::sync::Arc;

use engine::{Carry, Cursor, Finder, Patterns};
pub use forms::{MIN_FRAGMENT_LEN, MIN_SECRET_LEN};

/// The set of byte patterns to hide, built once per job from its secret values.
///
/// Cloning is cheap (the compiled automaton is shared). `Debug` never shows the values.
#[derive(Clone)]
pub struct Masker {
    inner: Arc<Inner>,
}

enum Inner {
    /// No value long enough to mask: output passes through unchanged.
    Empty,
    Patterns(Patterns),
    /// The automaton could not be built (only possible for gigabytes of secret values).
    /// Fail closed: every non-empty write becomes `***`.
    Unavailable,
}

impl Masker {
    /// Builds a masker for these secret values (every derived form is included).
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut forms = Vec::new();
        let mut values_as_is = Vec::new();
        for value in values {
            let first = forms.len();
            let n = forms::push_forms(value.as_ref(), &mut forms);
            values_as_is.extend_from_slice(&forms[first..first + n]);
        }
        forms.sort_unstable();
        forms.dedup();
        values_as_is.sort_unstable();
        values_as_is.dedup();
        let inner = if forms.is_empty() {
            Inner::Empty
        } else {
            match Finder::build(&forms, &values_as_is) {
                Some(finder) => Inner::Patterns(Patterns::new(
                    finder,
                    forms.into_iter().map(Vec::into_boxed_slice).collect(),
                )),
                None => Inner::Unavailable,
            }
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Whether this masker leaves output unchanged (no value long enough to mask).
    pub fn is_empty(&self) -> bool {
        matches!(*self.inner, Inner::Empty)
    }

    /// A streaming masker for one output stream.
    pub fn stream(&self) -> StreamMasker {
        StreamMasker {
            masker: self.clone(),
            tail: Vec::new(),
            carry: Carry::default(),
            cursor: Cursor::default(),
            hidden: false,
        }
    }

    /// Masks a complete, self-contained text.
    ///
    /// Secret values that are not valid UTF-8 can match inside a character; the few
    /// bytes left invalid by that are shown as U+FFFD.
    pub fn mask_str(&self, text: &str) -> String {
        match String::from_utf8(self.mask_bytes(text.as_bytes())) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Masks a complete, self-contained byte string.
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut stream = self.stream();
        stream.push(bytes, &mut out);
        stream.finish(&mut out);
        out
    }
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::Empty => f.write_str("Masker(empty)"),
            Inner::Patterns(p) => f
                .debug_struct("Masker")
                .field("patterns", &p.len())
                .field("longest", &p.longest())
                .finish_non_exhaustive(),
            Inner::Unavailable => f.write_str("Masker(fail-closed)"),
        }
    }
}

/// Masks one stream incrementally: bytes that may be the start of a secret split across
/// writes are held back until the next write (or [`StreamMasker::finish`]) decides.
pub struct StreamMasker {
    masker: Masker,
    /// Held-back bytes; the first `carry.context` of them are already emitted (as part of
    /// a `***` region that may still grow) and kept only as search context.
    tail: Vec<u8>,
    carry: Carry,
    /// Scratch for the search, reused across writes.
    cursor: Cursor,
    /// Fail-closed mode has emitted its `***` for the current run of output.
    hidden: bool,
}

impl StreamMasker {
    /// Feeds `input`; appends the bytes that are now safe to emit to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        let patterns = match &*self.masker.inner {
            Inner::Empty => {
                out.extend_from_slice(input);
                return;
            }
            Inner::Unavailable => {
                if !self.hidden {
                    out.extend_from_slice(engine::MASK);
                    self.hidden = true;
                }
                return;
            }
            Inner::Patterns(p) => p,
        };
        if self.tail.is_empty() {
            let (keep, carry) = patterns.run(&mut self.cursor, input, Carry::default(), false, out);
            self.tail.extend_from_slice(&input[keep..]);
            self.carry = carry;
            return;
        }
        // The seam: the held-back bytes plus enough of `input` that whatever must be held
        // after it lies inside `input`, so the rest of `input` is scanned in place.
        let held = self.tail.len();
        let seam = input.len().min(patterns.longest());
        self.tail.extend_from_slice(&input[..seam]);
        let (keep, carry) = patterns.run(&mut self.cursor, &self.tail, self.carry, false, out);
        self.carry = carry;
        // With a full-pattern-length seam, what must be held starts past the old tail
        // (the safe point is at least `len - (longest - 1)`), i.e. inside `input`.
        match keep.checked_sub(held) {
            Some(start) if seam < input.len() => {
                let rest = &input[start..];
                let (keep, carry) = patterns.run(&mut self.cursor, rest, carry, false, out);
                self.tail.clear();
                self.tail.extend_from_slice(&rest[keep..]);
                self.carry = carry;
            }
            _ => {
                self.tail.drain(..keep);
                if seam < input.len() {
                    // Not reached (see above); correct anyway, at the cost of a copy.
                    self.tail.extend_from_slice(&input[seam..]);
                    let (keep, carry) =
                        patterns.run(&mut self.cursor, &self.tail, self.carry, false, out);
                    self.tail.drain(..keep);
                    self.carry = carry;
                }
            }
        }
    }

    /// Flushes what was held back, masked, at the end of the stream. The masker can
    /// then be reused for a new stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Inner::Patterns(patterns) = &*self.masker.inner
            && !self.tail.is_empty()
        {
            patterns.run(&mut self.cursor, &self.tail, self.carry, true, out);
        }
        self.tail.clear();
        self.carry = Carry::default();
        self.hidden = false;
    }

    /// How many not-yet-emitted bytes are held back, waiting for the next write.
    pub fn pending(&self) -> usize {
        self.tail.len() - self.carry.context
    }
}

impl fmt::Debug for StreamMasker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamMasker")
            .field("masker", &self.masker)
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}
