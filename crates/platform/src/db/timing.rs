//! `db_query_duration_seconds`: each statement's time from diesel's start event to its
//! finish event, by pool and operation (`select`, `insert`, `update`, `delete`, `other`).
//!
//! The operation is the statement's first word, read without formatting the whole
//! statement: the writer stops diesel's formatter after a few characters. Pipelined
//! statements on one connection finish in the order they started, so starts wait in a
//! queue.

use std::collections::VecDeque;
use std::fmt::{self, Write};
use std::time::Instant;

use metrics::Histogram;

const OPERATIONS: [&str; 5] = ["select", "insert", "update", "delete", "other"];

/// One connection's timer.
pub(crate) struct QueryTimer {
    histograms: [Histogram; 5],
    started: VecDeque<(Instant, usize)>,
}

impl QueryTimer {
    /// A timer recording under `pool`; every operation's series registered now.
    pub(crate) fn new(pool: &'static str) -> Self {
        Self {
            histograms: OPERATIONS.map(|operation| {
                metrics::histogram!("db_query_duration_seconds", "pool" => pool, "operation" => operation)
            }),
            started: VecDeque::new(),
        }
    }

    /// A statement started.
    pub(crate) fn start(&mut self, statement: &dyn fmt::Display) {
        let mut first = FirstWord::default();
        let _ = write!(first, "{statement}");
        let operation = OPERATIONS
            .iter()
            .position(|op| first.word().eq_ignore_ascii_case(op))
            .unwrap_or(OPERATIONS.len() - 1);
        self.started.push_back((Instant::now(), operation));
    }

    /// The oldest statement in flight finished.
    pub(crate) fn finish(&mut self) {
        if let Some((started, operation)) = self.started.pop_front() {
            self.histograms[operation].record(started.elapsed().as_secs_f64());
        }
    }
}

/// Keeps the first word written to it, then refuses more (ending the formatting).
#[derive(Default)]
struct FirstWord {
    buffer: [u8; 8],
    len: usize,
    done: bool,
}

impl FirstWord {
    fn word(&self) -> &str {
        std::str::from_utf8(&self.buffer[..self.len]).unwrap_or("")
    }
}

impl Write for FirstWord {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            if byte.is_ascii_alphabetic() && !self.done {
                if self.len == self.buffer.len() {
                    return Err(fmt::Error);
                }
                self.buffer[self.len] = byte;
                self.len += 1;
            } else if self.len > 0 || !byte.is_ascii_whitespace() {
                self.done = true;
                return Err(fmt::Error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str) -> String {
        let mut word = FirstWord::default();
        let _ = write!(word, "{text}");
        word.word().to_owned()
    }

    #[test]
    fn the_first_word_is_read_and_nothing_after_it() {
        assert_eq!(first("SELECT \"users\".\"id\" FROM x"), "SELECT");
        assert_eq!(first("  insert into t"), "insert");
        assert_eq!(first("WITH x AS (select 1)"), "WITH");
        assert_eq!(first("(SELECT 1)"), "");
    }
}
