//! Splitting a document into chunks of at most `size` tokens (of the collection's model),
//! each starting with up to `overlap` tokens of the one before.
//!
//! A text is cut at the largest boundary that fits: paragraphs (blank lines), then
//! sentences, then words, and only a single word longer than a chunk is cut between
//! characters, never inside one. Chunks are slices of the original text, so nothing in
//! them is rewritten.

use std::ops::Range;

/// How long a text is, in tokens.
pub trait TokenCount {
    fn tokens(&self, text: &str) -> usize;
}

impl<F: Fn(&str) -> usize> TokenCount for F {
    fn tokens(&self, text: &str) -> usize {
        self(text)
    }
}

/// A chunk: its place in the document and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub span: Range<usize>,
    pub text: &'a str,
    pub tokens: usize,
}

/// The chunks of `text`. `size` is at least 1; `overlap` is kept below `size`.
pub fn chunk<'a>(
    text: &'a str,
    size: usize,
    overlap: usize,
    count: &impl TokenCount,
) -> Vec<Chunk<'a>> {
    let size = size.max(1);
    let overlap = overlap.min(size - 1);
    let mut pieces = Vec::new();
    split(
        text,
        0..text.len(),
        Level::Paragraph,
        size,
        count,
        &mut pieces,
    );

    let mut chunks = Vec::new();
    // The pieces of the chunk being built, with their token counts.
    let mut current: Vec<(Range<usize>, usize)> = Vec::new();
    let mut current_tokens = 0;
    for (span, tokens) in pieces {
        if current_tokens + tokens > size && !current.is_empty() {
            chunks.push(make(text, &current, current_tokens));
            // Carry the tail of this chunk into the next, up to `overlap` tokens.
            let mut kept = 0;
            let mut start = current.len();
            while start > 0 && kept + current[start - 1].1 <= overlap {
                start -= 1;
                kept += current[start].1;
            }
            // Never carry so much that the next piece would not fit.
            while start < current.len() && kept + tokens > size {
                kept -= current[start].1;
                start += 1;
            }
            current.drain(..start);
            current_tokens = kept;
        }
        current.push((span, tokens));
        current_tokens += tokens;
    }
    if !current.is_empty() {
        chunks.push(make(text, &current, current_tokens));
    }
    chunks
}

fn make<'a>(text: &'a str, pieces: &[(Range<usize>, usize)], tokens: usize) -> Chunk<'a> {
    let span = pieces[0].0.start..pieces[pieces.len() - 1].0.end;
    Chunk {
        text: &text[span.clone()],
        span,
        tokens,
    }
}

#[derive(Debug, Clone, Copy)]
enum Level {
    Paragraph,
    Sentence,
    Word,
    Character,
}

impl Level {
    fn finer(self) -> Self {
        match self {
            Self::Paragraph => Self::Sentence,
            Self::Sentence => Self::Word,
            Self::Word | Self::Character => Self::Character,
        }
    }
}

/// Appends the pieces of `range` (each fitting `size`, or a single character) with their
/// token counts, splitting at `level` and finer where needed.
///
/// A paragraph is counted from its sentences (their sum is its count), not tokenized
/// whole and then again sentence by sentence: every character of a document goes
/// through the tokenizer once here. With SentencePiece-style tokenizers (WordLlama's
/// among them) the sum errs high: cut after a sentence's trailing space, each sentence
/// carries that space as a token of its own, and its first word takes the same prefix
/// it has inside the whole. Only a piece that opens a paragraph (after a newline, not a
/// space) can tokenize a little differently alone, so a chunk's count may be a token low.
fn split(
    text: &str,
    range: Range<usize>,
    level: Level,
    size: usize,
    count: &impl TokenCount,
    out: &mut Vec<(Range<usize>, usize)>,
) {
    for part in parts(text, range, level) {
        let piece = &text[part.clone()];
        if piece.trim().is_empty() {
            continue;
        }
        if matches!(level, Level::Paragraph) {
            let mut sentences = Vec::new();
            split(
                text,
                part.clone(),
                Level::Sentence,
                size,
                count,
                &mut sentences,
            );
            let tokens: usize = sentences.iter().map(|(_, tokens)| tokens).sum();
            if tokens <= size {
                out.push((part, tokens));
            } else {
                out.append(&mut sentences);
            }
            continue;
        }
        let tokens = count.tokens(piece);
        if tokens <= size || matches!(level, Level::Character) {
            out.push((part, tokens));
        } else {
            split(text, part, level.finer(), size, count, out);
        }
    }
}

/// `range` cut at the boundaries of `level`; every byte stays in exactly one part.
fn parts(text: &str, range: Range<usize>, level: Level) -> Vec<Range<usize>> {
    let slice = &text[range.clone()];
    let base = range.start;
    let mut cuts = vec![0];
    match level {
        Level::Paragraph => {
            let mut search = 0;
            while let Some(found) = slice[search..].find("\n\n") {
                let mut end = search + found;
                while slice[end..].starts_with('\n') {
                    end += 1;
                }
                cuts.push(end);
                search = end;
            }
        }
        Level::Sentence => {
            let mut chars = slice.char_indices().peekable();
            while let Some((_, c)) = chars.next() {
                if matches!(c, '.' | '!' | '?' | '。')
                    && let Some(&(next, n)) = chars.peek()
                    && n.is_whitespace()
                {
                    cuts.push(next + n.len_utf8());
                }
            }
        }
        Level::Word => {
            let mut in_space = false;
            for (at, c) in slice.char_indices() {
                if c.is_whitespace() {
                    in_space = true;
                } else if in_space {
                    cuts.push(at);
                    in_space = false;
                }
            }
        }
        Level::Character => cuts.extend(slice.char_indices().map(|(at, _)| at).skip(1)),
    }
    cuts.push(slice.len());
    cuts.dedup();
    cuts.windows(2)
        .map(|w| base + w[0]..base + w[1])
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per word, as a stand-in for a tokenizer.
    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    #[test]
    fn short_text_is_one_chunk() {
        let chunks = chunk("One two three.", 10, 2, &words);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "One two three.");
    }

    #[test]
    fn paragraphs_are_kept_whole_when_they_fit() {
        let text = "Alpha beta gamma.\n\nDelta epsilon zeta.\n\nEta theta iota.";
        let chunks = chunk(text, 6, 0, &words);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.trim()).collect();
        assert_eq!(
            texts,
            [
                "Alpha beta gamma.\n\nDelta epsilon zeta.",
                "Eta theta iota."
            ]
        );
    }

    #[test]
    fn long_paragraphs_split_at_sentences_then_words_with_overlap() {
        let text = "One two three four. Five six seven eight. Nine ten eleven twelve thirteen fourteen fifteen.";
        let chunks = chunk(text, 5, 2, &words);
        for c in &chunks {
            assert!(c.tokens <= 5, "{c:?}");
            assert!(words(c.text) <= 5, "{c:?}");
        }
        assert!(chunks[0].text.starts_with("One two three four."));
        // The last sentence is too long for one chunk: it is split between words, and each
        // chunk after the first repeats the end of the one before.
        let tail: Vec<&str> = chunks.iter().map(|c| c.text).collect();
        assert!(tail.iter().any(|t| t.contains("fifteen.")));
        assert!(
            chunks.windows(2).any(|p| p[1].span.start < p[0].span.end),
            "chunks overlap: {chunks:?}"
        );
        let without = chunk(text, 5, 0, &words);
        assert!(without.windows(2).all(|p| p[1].span.start >= p[0].span.end));
        // Every word of the text is in some chunk.
        for word in text.split_whitespace() {
            assert!(chunks.iter().any(|c| c.text.contains(word)), "{word} lost");
        }
    }

    #[test]
    fn a_word_longer_than_a_chunk_is_cut_between_characters_never_inside_one() {
        let text = "é".repeat(10) + " 🙂🙂🙂";
        // Characters as tokens: each chunk holds at most 4.
        let chars = |t: &str| t.chars().filter(|c| !c.is_whitespace()).count();
        let chunks = chunk(&text, 4, 1, &chars);
        assert!(chunks.len() >= 4);
        for c in &chunks {
            assert!(chars(c.text) <= 4, "{c:?}");
            assert!(text.is_char_boundary(c.span.start) && text.is_char_boundary(c.span.end));
        }
        let all: String = chunks.iter().map(|c| c.text).collect();
        assert!(all.contains('🙂'));
    }

    #[test]
    fn every_character_is_tokenized_once_when_sentences_fit() {
        let text = "One two three. Four five six. Seven eight.\n\nNine ten. Eleven twelve.";
        let tokenized = std::cell::Cell::new(0);
        let counting = |t: &str| {
            tokenized.set(tokenized.get() + t.len());
            words(t)
        };
        // Both paragraphs fit: each is one piece, counted from its sentences.
        let chunks = chunk(text, 100, 0, &counting);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].tokens, words(text));
        assert!(
            tokenized.get() <= text.len(),
            "{} > {}",
            tokenized.get(),
            text.len()
        );
        // Too long for one chunk: split at sentences, still each character once.
        tokenized.set(0);
        let chunks = chunk(text, 5, 0, &counting);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.tokens <= 5));
        assert!(
            tokenized.get() <= text.len(),
            "{} > {}",
            tokenized.get(),
            text.len()
        );
    }

    #[test]
    fn blank_text_has_no_chunks() {
        assert!(chunk("  \n\n \n", 10, 2, &words).is_empty());
        assert!(chunk("", 10, 2, &words).is_empty());
    }
}
