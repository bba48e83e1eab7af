//! The matching core shared by whole-text and streaming masking.
//!
//! Semantics: every occurrence of every pattern is found (for each start position the
//! longest pattern there); occurrences that overlap are merged into one region; each
//! region becomes one `***`. Streaming gives exactly the output of masking the whole
//! concatenated stream at once, for any split into writes.
//!
//! Streaming works on a buffer whose prefix may be *context*: bytes already emitted as
//! part of a `***` region that a later occurrence could still extend. The *safe* point
//! of a buffer is the first position from which a pattern could still be completed by
//! bytes not seen yet; every occurrence starting before it is complete and final.

use aho_corasick::{AhoCorasick, Input, Match};

/// What replaces a masked region.
pub const MASK: &[u8] = b"***";

/// The compiled pattern set.
pub struct Patterns {
    ac: AhoCorasick,
    /// Every pattern, sorted, to answer "could a pattern start with these bytes?".
    sorted: Vec<Box<[u8]>>,
    /// Bit set of the bytes some pattern starts with (a cheap filter before the search).
    first_byte: [u64; 4],
    /// Length of the longest pattern.
    longest: usize,
}

/// State carried from one buffer to the next.
#[derive(Debug, Clone, Copy, Default)]
pub struct Carry {
    /// A `***` region is open: its current end is `context` bytes into the next buffer.
    pub open: bool,
    /// Bytes at the start of the next buffer that are already emitted (only when open).
    pub context: usize,
}

impl Patterns {
    pub fn new(ac: AhoCorasick, mut sorted: Vec<Box<[u8]>>) -> Self {
        sorted.sort_unstable();
        let mut first_byte = [0u64; 4];
        for p in &sorted {
            if let Some(&b) = p.first() {
                first_byte[usize::from(b >> 6)] |= 1 << (b & 63);
            }
        }
        let longest = sorted.iter().map(|p| p.len()).max().unwrap_or(0);
        Self {
            ac,
            sorted,
            first_byte,
            longest,
        }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn longest(&self) -> usize {
        self.longest
    }

    fn find(&self, b: &[u8], from: usize) -> Option<Match> {
        self.ac.find(Input::new(b).span(from..b.len()))
    }

    fn starts_some(&self, byte: u8) -> bool {
        self.first_byte[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
    }

    /// Whether `tail` is a strict prefix of some pattern.
    fn could_continue(&self, tail: &[u8]) -> bool {
        let i = self.sorted.partition_point(|p| &p[..] < tail);
        // Sorted order puts `tail` itself (if it is a pattern) first, then the patterns
        // that extend it.
        self.sorted[i..]
            .iter()
            .take(2)
            .any(|p| p.len() > tail.len() && p.starts_with(tail))
    }

    /// The first position from which a pattern could be completed by later bytes.
    fn safe_point(&self, b: &[u8]) -> usize {
        let from = b.len().saturating_sub(self.longest.saturating_sub(1));
        (from..b.len())
            .find(|&p| self.starts_some(b[p]) && self.could_continue(&b[p..]))
            .unwrap_or(b.len())
    }

    /// Masks `b` into `out`. Returns where the bytes to keep for the next buffer start
    /// (`b.len()` when `last`) and the carry describing them.
    pub fn run(&self, b: &[u8], carry: Carry, last: bool, out: &mut Vec<u8>) -> (usize, Carry) {
        let safe = if last { b.len() } else { self.safe_point(b) };
        let mut pos = 0;
        let mut next;
        if carry.open {
            // Extend the region left open by the previous buffer.
            let (end, after) = self.extend(b, carry.context, self.find(b, 0));
            if end > safe {
                return (safe, open_at(end, safe));
            }
            pos = end;
            next = after;
        } else {
            next = self.find(b, 0);
        }
        loop {
            match next {
                Some(m) if m.start() < safe => {
                    out.extend_from_slice(&b[pos..m.start()]);
                    out.extend_from_slice(MASK);
                    let (end, after) = self.extend(b, m.end(), self.find(b, m.start() + 1));
                    if end > safe {
                        return (safe, open_at(end, safe));
                    }
                    pos = end;
                    next = after;
                }
                _ => {
                    out.extend_from_slice(&b[pos..safe]);
                    return (safe, Carry::default());
                }
            }
        }
    }

    /// Grows a region ending at `end` by every occurrence starting inside it. Returns
    /// the final end and the first occurrence starting at or after it.
    fn extend(&self, b: &[u8], mut end: usize, mut next: Option<Match>) -> (usize, Option<Match>) {
        while let Some(m) = next {
            if m.start() >= end {
                break;
            }
            end = end.max(m.end());
            next = self.find(b, m.start() + 1);
        }
        (end, next)
    }
}

fn open_at(end: usize, safe: usize) -> Carry {
    Carry {
        open: true,
        context: end - safe,
    }
}
