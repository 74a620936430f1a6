//! `db_query_duration_seconds`: each statement's time from diesel's start event to its
//! finish event, by pool and operation (`select`, `insert`, `update`, `delete`, `other`);
//! and, where spans are exported, a CLIENT span per statement under the call's own span
//! (`db.system.name` `postgresql`, `db.operation.name`, `db.collection.name`; never the
//! statement's text or its bound values).
//!
//! The operation is the statement's first word, read without formatting the whole
//! statement: the writer stops diesel's formatter after a few characters. Only a span
//! that will be recorded reads on, to the first table named, and never into the binds.
//! Pipelined statements on one connection finish in the order they started, so starts
//! wait in a queue.

use std::collections::VecDeque;
use std::fmt::{self, Write};
use std::time::Instant;

use metrics::Histogram;
use tracing::Span;

const OPERATIONS: [&str; 5] = ["select", "insert", "update", "delete", "other"];

/// One connection's timer.
pub(crate) struct QueryTimer {
    histograms: [Histogram; 5],
    started: VecDeque<(Instant, usize, Span)>,
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
        let span = statement_span(statement, first.word());
        self.started.push_back((Instant::now(), operation, span));
    }

    /// The oldest statement in flight finished (its span ends here).
    pub(crate) fn finish(&mut self) {
        if let Some((started, operation, _span)) = self.started.pop_front() {
            self.histograms[operation].record(started.elapsed().as_secs_f64());
        }
    }
}

/// The CLIENT span of one statement within a call, named `<OPERATION> <table>` as the
/// database conventions ask; disabled (and free) where no subscriber records it.
fn statement_span(statement: &dyn fmt::Display, operation: &str) -> Span {
    // Statements outside a call (readiness pings, a new connection's settings) would each
    // be a trace of their own: noise, not insight.
    if !crate::telemetry::exporting() || Span::current().is_none() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "db",
        otel.name = tracing::field::Empty,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = tracing::field::Empty,
        db.collection.name = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let operation = operation.to_ascii_uppercase();
    let mut sql = SqlPrefix::default();
    let _ = write!(sql, "{statement}");
    let collection = collection(sql.text());
    let name = match &collection {
        Some(table) => format!("{operation} {table}"),
        None if operation.is_empty() => "postgresql".to_owned(),
        None => operation.clone(),
    };
    span.record("otel.name", name);
    if !operation.is_empty() {
        span.record("db.operation.name", operation);
    }
    if let Some(table) = collection {
        span.record("db.collection.name", table);
    }
    span
}

/// Keeps a statement's SQL, and stops the formatter at its bound values (diesel writes
/// them after ` -- binds: `) or after [`SqlPrefix::LIMIT`] bytes.
#[derive(Default)]
struct SqlPrefix {
    text: String,
}

impl SqlPrefix {
    const LIMIT: usize = 4096;
    const BINDS: &str = " -- binds";

    fn text(&self) -> &str {
        match self.text.find(Self::BINDS) {
            Some(at) => &self.text[..at],
            None => &self.text,
        }
    }
}

impl Write for SqlPrefix {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let from = self.text.len().saturating_sub(Self::BINDS.len());
        let room = Self::LIMIT.saturating_sub(self.text.len());
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&text[..end]);
        let mut tail = from;
        while !self.text.is_char_boundary(tail) {
            tail -= 1;
        }
        if end < text.len() || self.text[tail..].contains(Self::BINDS) {
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// The first table a statement names (after `FROM`, `INTO` or `UPDATE`), without quotes:
/// `"users"."tenant_rate_limits"` is `users.tenant_rate_limits`.
fn collection(sql: &str) -> Option<String> {
    let mut words = sql.split_ascii_whitespace();
    while let Some(word) = words.next() {
        let keyword = word.trim_start_matches('(');
        if !["FROM", "INTO", "UPDATE"]
            .iter()
            .any(|k| keyword.eq_ignore_ascii_case(k))
        {
            continue;
        }
        let next = words.next()?;
        let name: String = next
            .trim_start_matches('(')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '"'))
            .filter(|c| *c != '"')
            .collect();
        let quoted = next.trim_start_matches('(').starts_with('"');
        // `FROM (SELECT ...)` names no table; the subquery's own FROM does.
        if name.is_empty() || (!quoted && is_keyword(&name)) {
            continue;
        }
        return Some(name);
    }
    None
}

fn is_keyword(word: &str) -> bool {
    ["SELECT", "WITH", "VALUES", "ONLY", "LATERAL", "UNNEST"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
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
    fn the_collection_is_the_first_table_named() {
        let table = |sql: &str| collection(sql);
        assert_eq!(
            table("SELECT \"users\".\"id\" FROM \"users\" WHERE \"users\".\"id\" = $1").as_deref(),
            Some("users")
        );
        assert_eq!(
            table("INSERT INTO \"users\".\"tenant_rate_limits\" (\"a\") VALUES ($1)").as_deref(),
            Some("users.tenant_rate_limits")
        );
        assert_eq!(table("UPDATE agents SET x = 1").as_deref(), Some("agents"));
        assert_eq!(
            table("DELETE FROM \"chunks\" WHERE 1=1").as_deref(),
            Some("chunks")
        );
        assert_eq!(
            table("SELECT * FROM (SELECT 1 FROM \"messages\") AS m").as_deref(),
            Some("messages")
        );
        assert_eq!(table("SELECT 1"), None);
    }

    #[test]
    fn the_sql_is_kept_and_the_binds_are_not() {
        let mut sql = SqlPrefix::default();
        let _ = write!(
            sql,
            "SELECT 1 FROM \"t\" WHERE a = $1 -- binds: [\"secret\"]"
        );
        assert_eq!(sql.text(), "SELECT 1 FROM \"t\" WHERE a = $1");
        let mut long = SqlPrefix::default();
        let _ = write!(long, "{}", "x".repeat(10_000));
        assert_eq!(long.text().len(), SqlPrefix::LIMIT);
    }

    #[test]
    fn the_first_word_is_read_and_nothing_after_it() {
        assert_eq!(first("SELECT \"users\".\"id\" FROM x"), "SELECT");
        assert_eq!(first("  insert into t"), "insert");
        assert_eq!(first("WITH x AS (select 1)"), "WITH");
        assert_eq!(first("(SELECT 1)"), "");
    }
}
