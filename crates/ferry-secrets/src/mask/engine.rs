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

use aho_corasick::{AhoCorasick, Input, Match, Span, packed};

/// What replaces a masked region.
pub const MASK: &[u8] = b"***";

/// Patterns per SIMD searcher (slim Teddy's sweet spot).
const GROUP_SIZE: usize = 32;
/// Beyond this many groups, one automaton pass beats one SIMD pass per group.
const MAX_GROUPS: usize = 6;

/// How occurrences are found; every variant gives leftmost-longest matches.
pub enum Finder {
    /// SIMD (Teddy) searchers over groups of at most [`GROUP_SIZE`] patterns (x86-64 and
    /// aarch64): several GB/s per group on text without matches, whatever the bytes.
    Packed(Vec<packed::Searcher>),
    /// The general automaton (a DFA), for large pattern sets or other targets.
    Automaton(AhoCorasick),
}

impl Finder {
    /// The fastest finder these patterns allow; `None` if none can be built.
    pub fn build(patterns: &[Vec<u8>]) -> Option<Self> {
        if patterns.len() <= GROUP_SIZE * MAX_GROUPS {
            let groups: Option<Vec<_>> = patterns
                .chunks(GROUP_SIZE)
                .map(|group| {
                    packed::Config::new()
                        .match_kind(packed::MatchKind::LeftmostLongest)
                        .builder()
                        .extend(group)
                        .build()
                })
                .collect();
            if let Some(groups) = groups {
                return Some(Self::Packed(groups));
            }
        }
        // The automaton's prefilter heuristics pick rare bytes that are common in logs
        // (100 MB/s measured); a plain DFA scan is steadier.
        AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .prefilter(false)
            .build(patterns)
            .ok()
            .map(Self::Automaton)
    }
}

/// Per-buffer memo of each group's next match. Searches within one buffer only move
/// forward, so a group's match at or after the new start is still its leftmost one, and
/// a group that found nothing will find nothing later either.
/// Owned by the stream and reused, so masking a chunk allocates nothing.
#[derive(Debug, Default)]
pub struct Cursor {
    next: Vec<Option<Option<Match>>>,
}

impl Cursor {
    /// Forgets every memo, for a new buffer.
    fn reset(&mut self, finder: &Finder) {
        let groups = match finder {
            Finder::Packed(groups) => groups.len(),
            Finder::Automaton(_) => 0,
        };
        self.next.clear();
        self.next.resize(groups, None);
    }
}

/// The compiled pattern set.
pub struct Patterns {
    finder: Finder,
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
    pub fn new(finder: Finder, mut sorted: Vec<Box<[u8]>>) -> Self {
        sorted.sort_unstable();
        let mut first_byte = [0u64; 4];
        for p in &sorted {
            if let Some(&b) = p.first() {
                first_byte[usize::from(b >> 6)] |= 1 << (b & 63);
            }
        }
        let longest = sorted.iter().map(|p| p.len()).max().unwrap_or(0);
        Self {
            finder,
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

    /// The leftmost-longest occurrence in `b` starting at or after `from`.
    fn find(&self, cursor: &mut Cursor, b: &[u8], from: usize) -> Option<Match> {
        let groups = match &self.finder {
            Finder::Automaton(ac) => return ac.find(Input::new(b).span(from..b.len())),
            Finder::Packed(groups) => groups,
        };
        let mut best: Option<Match> = None;
        for (searcher, memo) in groups.iter().zip(cursor.next.iter_mut()) {
            let found = match *memo {
                Some(None) => None,
                Some(Some(m)) if m.start() >= from => Some(m),
                _ => {
                    let m = searcher.find_in(b, Span::from(from..b.len()));
                    *memo = Some(m);
                    m
                }
            };
            if let Some(m) = found {
                let better = best.is_none_or(|b| {
                    m.start() < b.start() || (m.start() == b.start() && m.end() > b.end())
                });
                if better {
                    best = Some(m);
                }
            }
        }
        best
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
    pub fn run(
        &self,
        cursor: &mut Cursor,
        b: &[u8],
        carry: Carry,
        last: bool,
        out: &mut Vec<u8>,
    ) -> (usize, Carry) {
        let safe = if last { b.len() } else { self.safe_point(b) };
        cursor.reset(&self.finder);
        let mut pos = 0;
        let mut next;
        if carry.open {
            // Extend the region left open by the previous buffer.
            let first = self.find(cursor, b, 0);
            let (end, after) = self.extend(cursor, b, carry.context, first);
            if end > safe {
                return (safe, open_at(end, safe));
            }
            pos = end;
            next = after;
        } else {
            next = self.find(cursor, b, 0);
        }
        loop {
            match next {
                Some(m) if m.start() < safe => {
                    out.extend_from_slice(&b[pos..m.start()]);
                    out.extend_from_slice(MASK);
                    let after = self.find(cursor, b, m.start() + 1);
                    let (end, after) = self.extend(cursor, b, m.end(), after);
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
    fn extend(
        &self,
        cursor: &mut Cursor,
        b: &[u8],
        mut end: usize,
        mut next: Option<Match>,
    ) -> (usize, Option<Match>) {
        while let Some(m) = next {
            if m.start() >= end {
                break;
            }
            end = end.max(m.end());
            next = self.find(cursor, b, m.start() + 1);
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
