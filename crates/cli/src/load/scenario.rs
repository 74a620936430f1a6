//! A scenario: weighted steps over the four services, read from TOML and checked before
//! any load is sent. Every error names the line it is about.

use std::ops::Range;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::Spanned;

/// The scenario that ships with the project (`--profile` runs it).
pub(crate) const DEFAULT: &str = include_str!("../../scenarios/suite.toml");

/// What a step does: one RPC (two for `respond`'s stream, counted as one answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Call {
    /// grpc.health.v1.Health/Check of the user service.
    Health,
    /// UserService/Authenticate with the virtual user's email and password.
    Authenticate,
    /// UserService/GetUser of the virtual user itself.
    GetUser,
    /// UserService/ListUsers, `page_size` per page.
    ListUsers,
    /// UserService/CreateUser with a fresh email (admin token; `password` hashes one).
    CreateUser,
    /// AgentService/GetAgent of one of the tenant's agents.
    GetAgent,
    /// AgentService/ListAgents, `page_size` per page.
    ListAgents,
    /// ConversationService/CreateConversation of the virtual user with an agent.
    CreateConversation,
    /// ConversationService/AppendMessages of `messages` generated messages.
    AppendMessages,
    /// ConversationService/ListMessages of the virtual user's conversation.
    ListMessages,
    /// RagService/IngestDocuments of one generated document.
    IngestDocument,
    /// RagService/Search of the collection, with a query drawn from the ingested text.
    Search,
    /// ConversationService/Respond: a question answered by the agent, streamed.
    Respond,
}

impl Call {
    /// The service and method a report names the step by.
    pub(crate) fn rpc(self) -> (&'static str, &'static str) {
        match self {
            Self::Health => ("grpc.health.v1.Health", "Check"),
            Self::Authenticate => ("user", "Authenticate"),
            Self::GetUser => ("user", "GetUser"),
            Self::ListUsers => ("user", "ListUsers"),
            Self::CreateUser => ("user", "CreateUser"),
            Self::GetAgent => ("agent", "GetAgent"),
            Self::ListAgents => ("agent", "ListAgents"),
            Self::CreateConversation => ("conversation", "CreateConversation"),
            Self::AppendMessages => ("conversation", "AppendMessages"),
            Self::ListMessages => ("conversation", "ListMessages"),
            Self::IngestDocument => ("rag", "IngestDocuments"),
            Self::Search => ("rag", "Search"),
            Self::Respond => ("conversation", "Respond"),
        }
    }

    /// The token kinds the call can be made with.
    fn tokens(self) -> &'static [TokenKind] {
        use TokenKind::*;
        match self {
            Self::Health | Self::Authenticate => &[None],
            Self::CreateUser => &[Admin],
            _ => &[User, Admin],
        }
    }
}

/// Whose token a step sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TokenKind {
    /// The virtual user's own member token.
    User,
    /// The tenant admin's token (one for every virtual user).
    Admin,
    /// No token.
    None,
}

/// How `search` searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SearchMode {
    Dense,
    Lexical,
    #[default]
    Hybrid,
}

/// One step as the file gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    call: Call,
    #[serde(default)]
    name: Option<String>,
    weight: Spanned<u32>,
    token: Spanned<TokenKind>,
    #[serde(default)]
    page_size: Option<Spanned<i32>>,
    #[serde(default)]
    messages: Option<Spanned<usize>>,
    #[serde(default)]
    top_k: Option<Spanned<i32>>,
    #[serde(default)]
    mode: Option<SearchMode>,
    #[serde(default)]
    max_tokens: Option<Spanned<i32>>,
    #[serde(default)]
    password: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    think_time: Option<Spanned<String>>,
    #[serde(default)]
    setup: SetupSpec,
    #[serde(default)]
    step: Vec<Spanned<StepSpec>>,
}

/// What the load tester creates before the load starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SetupSpec {
    /// Agents in the tenant (1 to 50).
    pub(crate) agents: usize,
    /// Documents ingested into the tenant's collection (1 to 500).
    pub(crate) documents: usize,
}

impl Default for SetupSpec {
    fn default() -> Self {
        Self {
            agents: 4,
            documents: 40,
        }
    }
}

/// A checked step.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) call: Call,
    pub(crate) weight: u32,
    pub(crate) token: TokenKind,
    pub(crate) page_size: i32,
    pub(crate) messages: usize,
    pub(crate) top_k: i32,
    pub(crate) mode: SearchMode,
    pub(crate) max_tokens: i32,
    pub(crate) password: bool,
}

/// A checked scenario.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) name: String,
    pub(crate) think_time: Range<Duration>,
    pub(crate) setup: SetupSpec,
    pub(crate) steps: Vec<Step>,
}

impl Scenario {
    /// Reads and checks the scenario in `text` (`origin` names it in errors).
    pub(crate) fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let file: File = toml::from_str(text).with_context(|| format!("scenario {origin}"))?;
        let at = |span: Range<usize>| format!("scenario {origin}, line {}", line_of(text, span));
        let think_time = match &file.think_time {
            None => Duration::ZERO..Duration::ZERO,
            Some(spec) => parse_think_time(spec.get_ref())
                .with_context(|| format!("{}: think_time", at(spec.span())))?,
        };
        if !(1..=50).contains(&file.setup.agents) {
            bail!("scenario {origin}: setup.agents must be 1 to 50");
        }
        if !(1..=500).contains(&file.setup.documents) {
            bail!("scenario {origin}: setup.documents must be 1 to 500");
        }
        if file.step.is_empty() {
            bail!("scenario {origin}: no [[step]]");
        }
        let mut steps = Vec::with_capacity(file.step.len());
        for spanned in &file.step {
            let spec = spanned.get_ref();
            let (service, method) = spec.call.rpc();
            if *spec.weight.get_ref() == 0 {
                bail!("{}: weight must be at least 1", at(spec.weight.span()));
            }
            let token = *spec.token.get_ref();
            if !spec.call.tokens().contains(&token) {
                bail!(
                    "{}: {:?} cannot be called with token = {:?} (it takes {:?})",
                    at(spec.token.span()),
                    spec.call,
                    token,
                    spec.call.tokens()
                );
            }
            let page_size = within(&spec.page_size, 20, 1..=1000, "page_size", &at)?;
            let top_k = within(&spec.top_k, 5, 1..=100, "top_k", &at)?;
            let max_tokens = within(&spec.max_tokens, 16, 1..=4096, "max_tokens", &at)?;
            let messages = match &spec.messages {
                None => 1,
                Some(value) if (1..=100).contains(value.get_ref()) => *value.get_ref(),
                Some(value) => bail!("{}: messages must be 1 to 100", at(value.span())),
            };
            steps.push(Step {
                name: spec
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{service}/{method}")),
                call: spec.call,
                weight: *spec.weight.get_ref(),
                token,
                page_size,
                messages,
                top_k,
                mode: spec.mode.unwrap_or_default(),
                max_tokens,
                password: spec.password,
            });
        }
        let mut names = std::collections::HashSet::new();
        for (step, spanned) in steps.iter().zip(&file.step) {
            if !names.insert(step.name.clone()) {
                bail!(
                    "{}: a second step named {:?} (give it a `name`)",
                    at(spanned.span()),
                    step.name
                );
            }
        }
        Ok(Self {
            name: file.name,
            think_time,
            setup: file.setup,
            steps,
        })
    }

    /// The step whose cumulative weight covers `ticket` (0 ≤ ticket < total weight).
    pub(crate) fn pick(&self, mut ticket: u32) -> usize {
        for (index, step) in self.steps.iter().enumerate() {
            if ticket < step.weight {
                return index;
            }
            ticket -= step.weight;
        }
        self.steps.len() - 1
    }

    pub(crate) fn total_weight(&self) -> u32 {
        self.steps.iter().map(|step| step.weight).sum()
    }
}

fn within(
    value: &Option<Spanned<i32>>,
    default: i32,
    range: std::ops::RangeInclusive<i32>,
    field: &str,
    at: &dyn Fn(Range<usize>) -> String,
) -> anyhow::Result<i32> {
    match value {
        None => Ok(default),
        Some(value) if range.contains(value.get_ref()) => Ok(*value.get_ref()),
        Some(value) => bail!(
            "{}: {field} must be {} to {}",
            at(value.span()),
            range.start(),
            range.end()
        ),
    }
}

/// `"2s"` or `"1s..3s"` (uniform between the two).
fn parse_think_time(spec: &str) -> anyhow::Result<Range<Duration>> {
    let (low, high) = spec.split_once("..").unwrap_or((spec, spec));
    let low = humantime::parse_duration(low.trim()).with_context(|| format!("{low:?}"))?;
    let high = humantime::parse_duration(high.trim()).with_context(|| format!("{high:?}"))?;
    if high < low {
        bail!("{spec:?}: the upper bound is below the lower one");
    }
    Ok(low..high)
}

/// The 1-based line a byte offset of `text` is on.
fn line_of(text: &str, span: Range<usize>) -> usize {
    text[..span.start.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario_parses() {
        let scenario = Scenario::parse(DEFAULT, "default").unwrap();
        assert_eq!(scenario.name, "suite");
        assert!(scenario.steps.len() >= 10);
        assert_eq!(scenario.think_time.start, Duration::from_secs(1));
        assert_eq!(scenario.think_time.end, Duration::from_secs(3));
    }

    #[test]
    fn an_unknown_step_is_named_with_its_line() {
        let text = "name = \"x\"\n\n[[step]]\ncall = \"fly\"\nweight = 1\ntoken = \"user\"\n";
        let error = format!("{:#}", Scenario::parse(text, "x.toml").unwrap_err());
        assert!(error.contains("line 4"), "{error}");
        assert!(error.contains("fly"), "{error}");
    }

    #[test]
    fn a_missing_token_kind_is_named_with_its_line() {
        let text = "name = \"x\"\n[[step]]\ncall = \"get_user\"\nweight = 1\n";
        let error = format!("{:#}", Scenario::parse(text, "x.toml").unwrap_err());
        assert!(error.contains("token"), "{error}");
        assert!(
            error.contains("line 2") || error.contains("line 3"),
            "{error}"
        );
    }

    #[test]
    fn a_token_the_call_cannot_use_is_refused_at_its_line() {
        let text = "name = \"x\"\n[[step]]\ncall = \"create_user\"\nweight = 1\ntoken = \"user\"\n";
        let error = format!("{:#}", Scenario::parse(text, "x.toml").unwrap_err());
        assert!(error.contains("line 5"), "{error}");
    }

    #[test]
    fn options_out_of_range_are_refused_at_their_line() {
        let text = "name = \"x\"\n[[step]]\ncall = \"list_users\"\nweight = 1\ntoken = \"user\"\npage_size = 0\n";
        let error = format!("{:#}", Scenario::parse(text, "x.toml").unwrap_err());
        assert!(
            error.contains("line 6") && error.contains("page_size"),
            "{error}"
        );
        let text = "name = \"x\"\nthink_time = \"3s..1s\"\n[[step]]\ncall = \"health\"\nweight = 1\ntoken = \"none\"\n";
        let error = format!("{:#}", Scenario::parse(text, "x.toml").unwrap_err());
        assert!(
            error.contains("line 2") && error.contains("think_time"),
            "{error}"
        );
    }

    #[test]
    fn steps_are_picked_by_weight() {
        let text = "name = \"x\"\n[[step]]\ncall = \"health\"\nweight = 1\ntoken = \"none\"\n[[step]]\ncall = \"get_user\"\nweight = 3\ntoken = \"user\"\n";
        let scenario = Scenario::parse(text, "x").unwrap();
        assert_eq!(scenario.total_weight(), 4);
        let picks: Vec<usize> = (0..4).map(|t| scenario.pick(t)).collect();
        assert_eq!(picks, vec![0, 1, 1, 1]);
    }
}
