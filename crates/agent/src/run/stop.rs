//! Stop sequences in streamed text: text is passed on as soon as it cannot be the start
//! of a stop sequence, and the answer ends before the first one.

/// Watches a stream of text for stop sequences.
pub struct StopScanner {
    stops: Vec<String>,
    /// Text that may be the start of a stop sequence, held back until it is known.
    held: String,
}

/// What a piece of text gave.
#[derive(Debug, PartialEq, Eq)]
pub struct Scanned {
    /// Text to pass on.
    pub text: String,
    /// A stop sequence was met: the answer ends here.
    pub stopped: bool,
}

impl StopScanner {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Takes the next piece of text.
    pub fn push(&mut self, text: &str) -> Scanned {
        self.held.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min();
        if let Some(at) = first_stop {
            let text = self.held[..at].to_owned();
            self.held.clear();
            return Scanned {
                text,
                stopped: true,
            };
        }
        let keep = self.longest_stop_prefix_suffix();
        let text = self.held[..self.held.len() - keep].to_owned();
        self.held.drain(..self.held.len() - keep);
        Scanned {
            text,
            stopped: false,
        }
    }

    /// The text still held back, at the end of the answer: it was no stop sequence.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The length of the longest end of `held` that begins some stop sequence.
    fn longest_stop_prefix_suffix(&self) -> usize {
        self.held
            .char_indices()
            .map(|(at, _)| at)
            .find(|&at| {
                let tail = &self.held[at..];
                self.stops.iter().any(|stop| stop.starts_with(tail))
            })
            .map_or(0, |at| self.held.len() - at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(stops: &[&str]) -> StopScanner {
        StopScanner::new(&stops.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn text_without_stops_passes_at_once() {
        let mut s = scanner(&[]);
        assert_eq!(s.push("hello").text, "hello");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn a_possible_start_is_held_until_it_is_known() {
        let mut s = scanner(&["END"]);
        assert_eq!(s.push("hello E").text, "hello ");
        assert_eq!(s.push("x").text, "Ex");
        assert_eq!(s.push("EN").text, "");
        let last = s.push("D and more");
        assert_eq!(
            last,
            Scanned {
                text: String::new(),
                stopped: true
            }
        );
    }

    #[test]
    fn the_answer_ends_before_the_first_stop() {
        let mut s = scanner(&["\n\n", "User:"]);
        let scanned = s.push("an answer\n\nUser: more");
        assert_eq!(
            scanned,
            Scanned {
                text: "an answer".into(),
                stopped: true
            }
        );
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let mut s = scanner(&["éé"]);
        assert_eq!(s.push("café").text, "caf");
        assert_eq!(s.push("!").text, "é!");
    }
}
