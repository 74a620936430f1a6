//! Prompt assembly: the agent's system prompt, as much of the conversation as fits the
//! model's context window (newest kept, oldest dropped first), then the new message,
//! leaving room for the answer.

use agentic_platform::error::{Error, Result};
use agentic_proto::agent::v1::ContextChunk;

use super::chat::{ChatMessage, Role};

/// Retrieved context takes at most this share of the context window; the best chunks
/// are kept.
const CONTEXT_SHARE: usize = 2;

/// The best of `chunks` (best first) that fit in a share of the model's window.
pub fn fitting_context(measure: &dyn Measure, chunks: Vec<ContextChunk>) -> Vec<ContextChunk> {
    let mut room = measure.context_window() / CONTEXT_SHARE;
    let mut kept = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let tokens = measure.message_tokens(&ChatMessage::new(Role::System, chunk.text.as_str()));
        if tokens > room {
            break;
        }
        room -= tokens;
        kept.push(chunk);
    }
    kept
}

/// The agent's system prompt, then the retrieved context marked as such.
pub fn with_context(system: &str, chunks: &[ContextChunk]) -> String {
    let mut text = String::with_capacity(
        system.len() + chunks.iter().map(|c| c.text.len() + 64).sum::<usize>(),
    );
    text.push_str(system);
    if !system.is_empty() {
        text.push_str("\n\n");
    }
    if chunks.is_empty() {
        text.push_str("No context was found in the knowledge base for this message.");
        return text;
    }
    text.push_str(
        "Context from the knowledge base, most relevant first. Answer from it; if it does not hold the answer, say so.",
    );
    for (index, chunk) in chunks.iter().enumerate() {
        text.push_str(&format!(
            "\n\n[{}] {}\n{}",
            index + 1,
            chunk.title,
            chunk.text
        ));
    }
    text
}

/// What a prompt is measured against: the model's context window, and its own count of a
/// message's tokens (template included).
pub trait Measure {
    /// Tokens the model sees at most: prompt and answer together.
    fn context_window(&self) -> usize;
    /// Tokens `message` takes in the prompt.
    fn message_tokens(&self, message: &ChatMessage) -> usize;
    /// Tokens the prompt takes beyond its messages (the answer's opening).
    fn prompt_overhead(&self) -> usize;
}

/// A prompt that fits.
#[derive(Debug)]
pub struct Fitted {
    pub messages: Vec<ChatMessage>,
    /// Its tokens, as the model counts them.
    pub tokens: usize,
    /// The answer's room: `max_tokens`, or less where the window leaves less.
    pub max_tokens: u32,
    /// History messages left out, oldest first.
    pub dropped: usize,
}

/// The prompt for `message` after `history` (oldest first), under `system`.
/// INVALID_ARGUMENT naming `message` when the system prompt and the message alone leave no
/// room for an answer.
pub fn fit(
    measure: &dyn Measure,
    system: &str,
    history: Vec<ChatMessage>,
    message: ChatMessage,
    max_tokens: u32,
) -> Result<Fitted> {
    let window = measure.context_window();
    let system = (!system.is_empty()).then(|| ChatMessage::new(Role::System, system));
    let fixed = measure.prompt_overhead()
        + system.as_ref().map_or(0, |s| measure.message_tokens(s))
        + measure.message_tokens(&message);
    if fixed >= window {
        return Err(Error::invalid(
            "message",
            format!(
                "with the agent's system prompt it takes {fixed} tokens; the model's context window is {window}"
            ),
        ));
    }
    let answer = (max_tokens as usize).min(window - fixed);
    let mut room = window - fixed - answer;
    // Newest first: the turns nearest the message matter most.
    let mut kept = 0;
    for turn in history.iter().rev() {
        let tokens = measure.message_tokens(turn);
        if tokens > room {
            break;
        }
        room -= tokens;
        kept += 1;
    }
    let dropped = history.len() - kept;
    let history_tokens = window - fixed - answer - room;
    let mut messages = Vec::with_capacity(kept + 2);
    messages.extend(system);
    messages.extend(history.into_iter().skip(dropped));
    messages.push(message);
    Ok(Fitted {
        messages,
        tokens: fixed + history_tokens,
        max_tokens: answer as u32,
        dropped,
    })
}

/// A measure for models whose tokenizer the suite does not have: about four bytes a token
/// (English text in the BPE vocabularies of current models), plus the chat template's
/// few tokens per message.
pub struct Estimate {
    pub window: usize,
}

impl Measure for Estimate {
    fn context_window(&self) -> usize {
        self.window
    }

    fn message_tokens(&self, message: &ChatMessage) -> usize {
        message.content.len().div_ceil(4) + 4
    }

    fn prompt_overhead(&self) -> usize {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per word, one per message for the template.
    struct Words(usize);

    impl Measure for Words {
        fn context_window(&self) -> usize {
            self.0
        }
        fn message_tokens(&self, message: &ChatMessage) -> usize {
            message.content.split_whitespace().count() + 1
        }
        fn prompt_overhead(&self) -> usize {
            1
        }
    }

    fn turns(n: usize) -> Vec<ChatMessage> {
        (0..n)
            .map(|i| ChatMessage::new(Role::User, format!("turn {i} four five")))
            .collect()
    }

    #[test]
    fn everything_fits_in_a_large_window() {
        let fitted = fit(
            &Words(1000),
            "be brief",
            turns(3),
            ChatMessage::new(Role::User, "hi"),
            100,
        )
        .unwrap();
        assert_eq!(fitted.dropped, 0);
        assert_eq!(fitted.messages.len(), 5);
        assert_eq!(
            fitted.messages[0],
            ChatMessage::new(Role::System, "be brief")
        );
        assert_eq!(fitted.messages[4].content, "hi");
        // 1 overhead + 3 system + 2 message + 3 × 5 history.
        assert_eq!(fitted.tokens, 21);
        assert_eq!(fitted.max_tokens, 100);
    }

    #[test]
    fn the_oldest_turns_go_first_and_the_answer_keeps_its_room() {
        // Fixed: 1 + 3 + 2 = 6; answer 10; room for history 24 - 16 = 8: one turn of 5.
        let fitted = fit(
            &Words(24),
            "be brief",
            turns(3),
            ChatMessage::new(Role::User, "hi"),
            10,
        )
        .unwrap();
        assert_eq!(fitted.dropped, 2);
        assert_eq!(fitted.messages[1].content, "turn 2 four five");
        assert_eq!(fitted.tokens, 11);
        assert_eq!(fitted.max_tokens, 10);
    }

    #[test]
    fn an_answer_larger_than_the_window_leaves_no_history_and_is_capped() {
        let fitted = fit(
            &Words(20),
            "",
            turns(3),
            ChatMessage::new(Role::User, "hi"),
            1000,
        )
        .unwrap();
        assert_eq!(fitted.dropped, 3);
        assert_eq!(fitted.messages.len(), 1);
        assert_eq!(fitted.max_tokens, 17);
    }

    #[test]
    fn a_message_that_fills_the_window_is_refused_naming_it() {
        let long = ChatMessage::new(Role::User, "word ".repeat(50));
        let error = fit(&Words(20), "", vec![], long, 10).unwrap_err();
        assert!(error.to_string().contains("message"), "{error}");
    }
}
