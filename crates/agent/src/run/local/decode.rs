//! Token ids to text as they come: a token may end inside a character (byte-level BPE),
//! so text is passed on only once the bytes so far decode to whole characters.

use tokenizers::Tokenizer;

pub(super) struct TextDecoder<'t> {
    tokenizer: &'t Tokenizer,
    tokens: Vec<u32>,
    /// Where the text already passed on starts being decoded from (some context before
    /// it, so that a token's leading space survives).
    prefix: usize,
    /// The first token not yet passed on.
    read: usize,
}

impl<'t> TextDecoder<'t> {
    pub(super) fn new(tokenizer: &'t Tokenizer) -> Self {
        Self {
            tokenizer,
            tokens: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    fn decode(&self, tokens: &[u32]) -> String {
        self.tokenizer.decode(tokens, true).unwrap_or_default()
    }

    /// The new text `token` completes, if any.
    pub(super) fn push(&mut self, token: u32) -> Option<String> {
        self.tokens.push(token);
        let before = self.decode(&self.tokens[self.prefix..self.read]);
        let now = self.decode(&self.tokens[self.prefix..]);
        if now.len() > before.len() && !now.ends_with('\u{FFFD}') {
            let text = now[before.len()..].to_owned();
            self.prefix = self.read;
            self.read = self.tokens.len();
            Some(text)
        } else {
            None
        }
    }

    /// Whatever is left undecoded at the end (an unfinished character, replaced).
    pub(super) fn finish(&self) -> Option<String> {
        let before = self.decode(&self.tokens[self.prefix..self.read]);
        let now = self.decode(&self.tokens[self.prefix..]);
        (now.len() > before.len()).then(|| now[before.len()..].to_owned())
    }
}
