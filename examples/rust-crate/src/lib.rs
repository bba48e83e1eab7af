//! Counts words in text.

/// The number of whitespace-separated words in `text`.
pub fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::count_words;

    #[test]
    fn counts_words_separated_by_any_whitespace() {
        assert_eq!(count_words("one two\tthree\nfour"), 4);
    }

    #[test]
    fn empty_text_has_no_words() {
        assert_eq!(count_words("   "), 0);
    }
}
