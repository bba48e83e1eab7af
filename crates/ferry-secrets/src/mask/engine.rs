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
use memchr::memmem;

/// What replaces a masked region.
pub const MASK: &[u8] = b"***";

/// Patterns per SIMD searcher (slim Teddy's sweet spot).
const GROUP_SIZE: usize = 32;
/// Beyond this many groups, one automaton pass beats one SIMD pass per group.
const MAX_GROUPS: usize = 6;
/// At most this many patterns get a searcher of their own (see [`Group::Single`]).
const MAX_SINGLES: usize = 4;

/// How occurrences are found; every variant gives leftmost-longest matches.
pub enum Finder {
    /// Searchers run side by side over the same buffer, each remembering its next
    /// match (see [`Cursor`]); the leftmost-longest of their matches wins.
    Groups(Vec<Group>),
    /// The general automaton (a DFA), for large pattern sets or other targets.
    Automaton(AhoCorasick),
}

/// One searcher of [`Finder::Groups`].
pub enum Group {
    /// One pattern, found with `memchr::memmem`: a few nanoseconds per occurrence.
    /// Used for the secret values themselves, the forms most often printed: a step
    /// that prints its token on every line makes millions of occurrences, and a
    /// multi-pattern searcher pays several times more to start each search.
    Single(memmem::Finder<'static>),
    /// SIMD (Teddy) searcher over at most [`GROUP_SIZE`] patterns (x86-64 and
    /// aarch64): several GB/s on text without matches, whatever the bytes.
    Packed(packed::Searcher),
}

impl Group {
    /// The leftmost-longest occurrence in `b[from..]`.
    fn find(&self, b: &[u8], from: usize) -> Option<Match> {
        match self {
            Group::Single(f) => {
                let rest = b.get(from..)?;
                f.find(rest).map(|i| {
                    let start = from + i;
                    Match::must(0, start..start + f.needle().len())
                })
            }
            Group::Packed(s) => s.find_in(b, Span::from(from..b.len())),
        }
    }
}

impl Finder {
    /// The fastest finder for these patterns; `None` if none can be built. `singles`
    /// are the patterns most likely to occur (a subset of `patterns`): when there are
    /// few of them, each gets a [`Group::Single`] searcher.
    pub fn build(patterns: &[Vec<u8>], singles: &[Vec<u8>]) -> Option<Self> {
        let singles: &[Vec<u8>] = if singles.len() <= MAX_SINGLES {
            singles
        } else {
            &[]
        };
        let rest: Vec<&Vec<u8>> = patterns.iter().filter(|p| !singles.contains(p)).collect();
        if rest.len() <= GROUP_SIZE * MAX_GROUPS {
            let mut groups: Vec<Group> = singles
                .iter()
                .map(|p| Group::Single(memmem::Finder::new(p).into_owned()))
                .collect();
            let packed: Option<Vec<_>> = rest
                .chunks(GROUP_SIZE)
                .map(|group| {
                    packed::Config::new()
                        .match_kind(packed::MatchKind::LeftmostLongest)
                        .builder()
                        .extend(group)
                        .build()
                })
                .collect();
            if let Some(packed) = packed {
                groups.extend(packed.into_iter().map(Group::Packed));
                return Some(Self::Groups(groups));
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
            Finder::Groups(groups) => groups.len(),
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
    /// The finder is one [`Group::Single`] whose pattern cannot overlap itself, then
    /// packed groups: see [`Patterns::run_single`].
    single_fast: bool,
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
        let single_fast = match &finder {
            Finder::Groups(groups) => match groups.split_first() {
                Some((Group::Single(f), rest)) => {
                    !overlaps_itself(f.needle())
                        && rest.iter().all(|g| matches!(g, Group::Packed(_)))
                }
                _ => false,
            },
            Finder::Automaton(_) => false,
        };
        Self {
            finder,
            sorted,
            first_byte,
            longest,
            single_fast,
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
            Finder::Groups(groups) => groups,
        };
        let mut best: Option<Match> = None;
        for (group, memo) in groups.iter().zip(cursor.next.iter_mut()) {
            let found = match *memo {
                Some(None) => None,
                Some(Some(m)) if m.start() >= from => Some(m),
                _ => {
                    let m = group.find(b, from);
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
        if !carry.open
            && let Some(done) = self.run_single(cursor, b, safe, out)
        {
            return done;
        }
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

    /// The bulk path for the common case — one secret, printed as is, maybe on every
    /// line — when it gives the same output as the general loop: the finder is one
    /// [`Group::Single`] (a pattern that cannot overlap itself) plus packed groups,
    /// and no packed pattern occurs before `safe`. Then the occurrences before `safe`
    /// are exactly the single pattern's, none overlapping another, and one pass of
    /// `memmem` replaces them with no per-occurrence bookkeeping. Returns `None` (the
    /// memos in `cursor` stay valid) when the general loop must run.
    fn run_single(
        &self,
        cursor: &mut Cursor,
        b: &[u8],
        safe: usize,
        out: &mut Vec<u8>,
    ) -> Option<(usize, Carry)> {
        if !self.single_fast {
            return None;
        }
        let Finder::Groups(groups) = &self.finder else {
            return None;
        };
        let (Group::Single(single), packed) = groups.split_first()? else {
            return None;
        };
        for (group, memo) in packed.iter().zip(cursor.next.iter_mut().skip(1)) {
            let m = group.find(b, 0);
            *memo = Some(m);
            if m.is_some_and(|m| m.start() < safe) {
                return None;
            }
        }
        let len = single.needle().len();
        let mut pos = 0;
        for start in single.find_iter(b) {
            if start >= safe {
                break;
            }
            out.extend_from_slice(&b[pos..start]);
            out.extend_from_slice(MASK);
            let end = start + len;
            if end > safe {
                // Whatever occurs from `safe` on extends the region in the next buffer.
                return Some((safe, open_at(end, safe)));
            }
            pos = end;
        }
        out.extend_from_slice(&b[pos..safe]);
        Some((safe, Carry::default()))
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

/// Whether two occurrences of `p` can overlap: some proper prefix is also a suffix.
fn overlaps_itself(p: &[u8]) -> bool {
    (1..p.len()).any(|k| p[..k] == p[p.len() - k..])
}

fn open_at(end: usize, safe: usize) -> Carry {
    Carry {
        open: true,
        context: end - safe,
    }
}

#[cfg(test)]
mod tests {
    use super::super::forms::push_forms;
    use super::*;

    /// The masking rule stated plainly: every occurrence of every form, overlapping
    /// occurrences merged, each region replaced by `***`.
    fn reference(values: &[&[u8]], text: &[u8]) -> Vec<u8> {
        let mut forms = Vec::new();
        for v in values {
            push_forms(v, &mut forms);
        }
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for f in &forms {
            for start in 0..text.len() {
                if text[start..].starts_with(f) {
                    spans.push((start, start + f.len()));
                }
            }
        }
        spans.sort_unstable();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while i < spans.len() {
            let (start, mut end) = spans[i];
            i += 1;
            while i < spans.len() && spans[i].0 < end {
                end = end.max(spans[i].1);
                i += 1;
            }
            out.extend_from_slice(&text[pos..start]);
            out.extend_from_slice(MASK);
            pos = end;
        }
        out.extend_from_slice(&text[pos..]);
        out
    }

    fn next(seed: &mut u64, bound: usize) -> usize {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as usize) % bound.max(1)
    }

    #[test]
    fn values_get_searchers_of_their_own_and_forms_share_one() {
        let m = crate::Masker::new(["s3cr3t-value-123"]);
        let crate::mask::Inner::Patterns(p) = &*m.inner else {
            panic!("no patterns");
        };
        let Finder::Groups(groups) = &p.finder else {
            panic!("not grouped");
        };
        assert!(matches!(groups[0], Group::Single(_)));
        assert!(groups[1..].iter().all(|g| matches!(g, Group::Packed(_))));
    }

    #[test]
    fn only_a_value_that_cannot_overlap_itself_takes_the_bulk_path() {
        let fast = |v: &str| match &*crate::Masker::new([v]).inner {
            crate::mask::Inner::Patterns(p) => p.single_fast,
            _ => panic!("no patterns"),
        };
        assert!(fast("s3cr3t-value-123"));
        assert!(!fast("abcab"), "`ab` is a prefix and a suffix");
        assert!(!fast(" padded "), "two values: as is and trimmed");
    }

    #[test]
    fn single_and_packed_searchers_together_mask_like_the_plain_rule() {
        // Values that overlap each other and their own encodings, so regions merge
        // across searchers; several values (up to `MAX_SINGLES` and beyond it).
        let value_sets: [&[&[u8]]; 5] = [
            &[b"abcabd"],
            &[b"abab"],
            &[b" abcabd\n"],
            &[b"abcabd", b"bcab", b"xyzzy-1", b"yzzy-1-2"],
            &[b"abcabd", b"bcab", b"xyzzy-1", b"yzzy-1-2", b"YWJj", b"q q"],
        ];
        let pieces: &[&[u8]] = &[
            b"abc",
            b"ab",
            b"d",
            b"bca",
            b"xyzz",
            b"y-1",
            b"-2",
            b" ",
            b"\n",
            b"YWJjYWJk",
            b"q",
            b"q%20q",
            b"eXp6",
            b"\xff",
            b"abab",
            b"YWJhYg",
        ];
        let mut seed = 11;
        for values in value_sets {
            let m = crate::Masker::new(values);
            for _ in 0..400 {
                let mut text = Vec::new();
                for _ in 0..next(&mut seed, 60) {
                    text.extend_from_slice(pieces[next(&mut seed, pieces.len())]);
                }
                let want = reference(values, &text);
                assert_eq!(
                    m.mask_bytes(&text),
                    want,
                    "text {:?}",
                    String::from_utf8_lossy(&text)
                );
                let split = next(&mut seed, text.len() + 1);
                let mut s = m.stream();
                let mut out = Vec::new();
                s.push(&text[..split], &mut out);
                s.push(&text[split..], &mut out);
                s.finish(&mut out);
                assert_eq!(out, want, "split at {split}");
            }
        }
    }
}
