//! Rules: who is counted (the key), for which methods, in which windows. Read from the
//! defaults, a rules file (`RATE_LIMIT_RULES`) or a tenant's plan, and checked once, when
//! read: a bad rule never reaches a request.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::args::RateLimitArgs;
use crate::error::{Error, FieldViolation, Result};

/// What a rule counts per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Key {
    /// The token's subject: its user, or a platform or service token's own name.
    User,
    /// The token's tenant (platform tokens have none and are not counted).
    Tenant,
    /// The peer address, for calls without a token.
    Address,
    /// Failed sign-ins per tenant slug and email, from any address (counted by the
    /// sign-in handler, which alone knows the account and the outcome).
    Account,
}

impl Key {
    /// The key's name in rules and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Key::User => "user",
            Key::Tenant => "tenant",
            Key::Address => "address",
            Key::Account => "account",
        }
    }
}

/// Whether a rule rejects calls over its limit or only counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Calls over the limit are rejected.
    Enforce,
    /// Calls over the limit are counted (`shadow_rejected`) and served.
    Shadow,
}

/// One window of a rule as written: `limit` calls `per` unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Calls allowed in any window of this length.
    pub limit: i64,
    /// `second`, `minute`, `hour` or `day`.
    pub per: String,
}

/// One rule as written in a rules file or a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Names the rule in metadata, errors and metrics; a plan's rule of the same name as a
    /// default rule replaces it for the tenant.
    pub name: String,
    /// What the rule counts per.
    pub key: Key,
    /// Methods it applies to: `Method`, `package.Service/Method`, or globs of either
    /// (`*`, `?`); all methods when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Its windows, all of which must allow a call.
    pub windows: Vec<WindowSpec>,
    /// Overrides `RATE_LIMIT_MODE` for this rule.
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// A rules file: `[[rules]]` tables in TOML, a `rules:` list in YAML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<RuleSpec>,
}

/// A window, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Calls allowed in any window of `period`.
    pub limit: u64,
    /// The window's length.
    pub period: Duration,
}

/// A rule, checked and ready to match methods.
#[derive(Debug)]
pub struct Rule {
    /// Distinguishes this compiled rule from every other in the process (local state
    /// is kept per rule id, so a changed plan starts afresh locally).
    pub id: u32,
    /// Its name.
    pub name: Arc<str>,
    /// What it counts per.
    pub key: Key,
    /// Its windows, shortest first.
    pub windows: Vec<Window>,
    /// Its mode.
    pub mode: Mode,
    methods: Vec<String>,
    /// `"<name>-<window>";q=<limit>;w=<seconds>` per window, for `ratelimit-policy`.
    pub policies: Vec<String>,
    /// `"<name>-<window>"` per window: the policy's name as `ratelimit` quotes it.
    pub quoted_names: Vec<String>,
    /// Each window's limit as an `x-ratelimit-limit` value, built once.
    pub limit_headers: Vec<http::HeaderValue>,
    /// The `ratelimit-policy` field of this rule alone (every window), built once.
    pub policy_header: http::HeaderValue,
}

static NEXT_RULE_ID: AtomicU32 = AtomicU32::new(1);

impl Rule {
    /// Whether the rule applies to `method` (`package.Service/Method`).
    pub fn matches(&self, method: &str) -> bool {
        if self.methods.is_empty() {
            return true;
        }
        let short = method.rsplit('/').next().unwrap_or(method);
        self.methods.iter().any(|pattern| {
            let subject = if pattern.contains('/') { method } else { short };
            glob(pattern.as_bytes(), subject.as_bytes())
        })
    }
}

/// `*` matches any run of characters, `?` any one; everything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

fn unit_period(unit: &str) -> Option<Duration> {
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "second" | "seconds" | "s" => 1,
        "minute" | "minutes" | "m" => 60,
        "hour" | "hours" | "h" => 3600,
        "day" | "days" | "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

fn unit_name(period: Duration) -> &'static str {
    match period.as_secs() {
        1 => "second",
        60 => "minute",
        3600 => "hour",
        _ => "day",
    }
}

/// Longest rule name: it travels in every response's metadata.
const MAX_NAME_LEN: usize = 64;
/// Most rules in a file or plan.
pub const MAX_RULES: usize = 32;
/// Most windows of one rule (a second, a minute, an hour, a day).
pub(crate) const MAX_WINDOWS: usize = 4;
const MAX_METHODS: usize = 32;

/// Checks `specs` (`field` names where they came from in errors: `rules` for a plan's
/// request, the setting for a file) and compiles them. Every problem is reported.
pub fn compile(specs: &[RuleSpec], field: &str, default_mode: Mode) -> Result<Vec<Arc<Rule>>> {
    let mut violations = Vec::new();
    let mut violation = |path: String, text: &str| {
        violations.push(FieldViolation {
            field: path,
            description: text.to_owned(),
        })
    };
    if specs.len() > MAX_RULES {
        violation(field.to_owned(), "at most 32 rules");
    }
    let mut rules = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let name_ok = !spec.name.is_empty()
            && spec.name.len() <= MAX_NAME_LEN
            && spec
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            violation(
                format!("{at}.name"),
                "must be 1 to 64 letters, digits, '-' or '_'",
            );
        }
        if specs[..i].iter().any(|other| other.name == spec.name) {
            violation(format!("{at}.name"), "names another rule already");
        }
        if spec.methods.len() > MAX_METHODS
            || spec
                .methods
                .iter()
                .any(|m| m.is_empty() || m.len() > 200 || !m.is_ascii())
        {
            violation(
                format!("{at}.methods"),
                "at most 32 method names or globs of 1 to 200 ASCII characters",
            );
        }
        if spec.windows.is_empty() || spec.windows.len() > MAX_WINDOWS {
            violation(format!("{at}.windows"), "one to four windows");
        }
        let mut windows = Vec::new();
        for (j, window) in spec.windows.iter().enumerate() {
            let period = unit_period(&window.per);
            if period.is_none() {
                violation(
                    format!("{at}.windows[{j}].per"),
                    "must be second, minute, hour or day",
                );
            }
            if window.limit <= 0 {
                violation(
                    format!("{at}.windows[{j}].limit"),
                    "must be a positive number of calls",
                );
            }
            if let (Some(period), Ok(limit @ 1..)) = (period, u64::try_from(window.limit)) {
                if windows.iter().any(|w: &Window| w.period == period) {
                    violation(
                        format!("{at}.windows[{j}].per"),
                        "two windows of one rule have this length",
                    );
                }
                windows.push(Window { limit, period });
            }
        }
        windows.sort_by_key(|w| w.period);
        let mode = spec.mode.unwrap_or(default_mode);
        let name: Arc<str> = spec.name.as_str().into();
        let quoted_names: Vec<String> = windows
            .iter()
            .map(|w| format!("\"{name}-{}\"", unit_name(w.period)))
            .collect();
        let policies: Vec<String> = windows
            .iter()
            .zip(&quoted_names)
            .map(|(w, quoted)| format!("{quoted};q={};w={}", w.limit, w.period.as_secs()))
            .collect();
        let limit_headers = windows
            .iter()
            .map(|w| http::HeaderValue::from(w.limit))
            .collect();
        // Names are checked above to be letters, digits, '-' and '_': a valid value.
        let policy_header = http::HeaderValue::try_from(policies.join(", "))
            .unwrap_or_else(|_| http::HeaderValue::from_static(""));
        rules.push(Arc::new(Rule {
            id: NEXT_RULE_ID.fetch_add(1, Ordering::Relaxed),
            name,
            key: spec.key,
            windows,
            mode,
            methods: spec.methods.clone(),
            policies,
            quoted_names,
            limit_headers,
            policy_header,
        }));
    }
    if violations.is_empty() {
        Ok(rules)
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

/// The methods the seeds call expensive: 10 a minute per user on top of the rest.
pub const EXPENSIVE_METHODS: &[&str] = &[
    "IngestDocuments",
    "StreamIngestDocuments",
    "Embed",
    "BatchCreateUsers",
    "Respond",
    "RunAgent",
    "ExecuteWorkflow",
];

/// The default rules, as `--help` and the README show them.
pub const DEFAULT_RULES_HELP: &str = "\
A rules file (TOML, or YAML by its .yaml/.yml name) that replaces the default rules.

The default rules (RATE_LIMIT_PER_MINUTE and RATE_LIMIT_PER_HOUR set the first):
  per-user   key user     all methods            RATE_LIMIT_PER_MINUTE/minute, RATE_LIMIT_PER_HOUR/hour
  anonymous  key address  all methods            1000/hour (calls without a token)
  expensive  key user     IngestDocuments, StreamIngestDocuments, Embed, BatchCreateUsers,
                          Respond, RunAgent, ExecuteWorkflow  10/minute
  sign-in    key address  Authenticate           100/minute
  sign-in-failures  key account  Authenticate    10 failed attempts/minute per tenant and email

A file of the same shape:
  [[rules]]
  name = \"per-user\"
  key = \"user\"            # user | tenant | address | account
  methods = [\"*\"]          # Method, package.Service/Method, or globs (* ?)
  windows = [{ limit = 60, per = \"minute\" }, { limit = 1000, per = \"hour\" }]
  mode = \"enforce\"        # optional: enforce | shadow

Health and reflection are never limited.";

fn window(limit: u64, per: &str) -> WindowSpec {
    WindowSpec {
        limit: i64::try_from(limit).unwrap_or(i64::MAX),
        per: per.to_owned(),
    }
}

fn rule(name: &str, key: Key, methods: &[&str], windows: Vec<WindowSpec>) -> RuleSpec {
    RuleSpec {
        name: name.to_owned(),
        key,
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        windows,
        mode: None,
    }
}

/// The seeds' rules, with the per-user figures of `args`.
pub fn default_specs(args: &RateLimitArgs) -> Vec<RuleSpec> {
    vec![
        rule(
            "per-user",
            Key::User,
            &[],
            vec![
                window(args.rate_limit_per_minute, "minute"),
                window(args.rate_limit_per_hour, "hour"),
            ],
        ),
        rule("anonymous", Key::Address, &[], vec![window(1000, "hour")]),
        rule(
            "expensive",
            Key::User,
            EXPENSIVE_METHODS,
            vec![window(10, "minute")],
        ),
        rule(
            "sign-in",
            Key::Address,
            &["Authenticate"],
            vec![window(100, "minute")],
        ),
        rule(
            "sign-in-failures",
            Key::Account,
            &["Authenticate"],
            vec![window(10, "minute")],
        ),
    ]
}

/// The rules a process starts with: the file's when `RATE_LIMIT_RULES` names one, else
/// the defaults. A problem stops the process with a message naming the setting.
pub fn configured(args: &RateLimitArgs) -> Result<Vec<Arc<Rule>>> {
    let specs = match &args.rate_limit_rules {
        Some(path) => read_file(path)?,
        None => default_specs(args),
    };
    compile(&specs, "RATE_LIMIT_RULES", args.rate_limit_mode).map_err(|error| match error {
        Error::InvalidArgument(violations) => Error::internal(format!(
            "RATE_LIMIT_RULES: {}",
            violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        other => other,
    })
}

fn read_file(path: &Path) -> Result<Vec<RuleSpec>> {
    let bad =
        |what: String| Error::internal(format!("RATE_LIMIT_RULES={}: {what}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let file: RulesFile = if yaml {
        serde_norway::from_str(&text).map_err(|e| bad(e.to_string()))?
    } else {
        toml::from_str(&text).map_err(|e| bad(e.to_string()))?
    };
    Ok(file.rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(specs: &[RuleSpec]) -> Result<Vec<Arc<Rule>>> {
        compile(specs, "rules", Mode::Enforce)
    }

    #[test]
    fn globs_match_short_and_full_method_names() {
        let rules = compiled(&[rule(
            "r",
            Key::User,
            &["Ingest*", "agentic.user.v1.UserService/Get?ser"],
            vec![window(1, "second")],
        )])
        .unwrap();
        let r = &rules[0];
        assert!(r.matches("agentic.rag.v1.RagService/IngestDocuments"));
        assert!(r.matches("agentic.user.v1.UserService/GetUser"));
        assert!(!r.matches("agentic.agent.v1.AgentService/GetUser"));
        assert!(!r.matches("agentic.rag.v1.RagService/StreamIngestDocuments"));
    }

    #[test]
    fn bad_rules_name_every_field() {
        let mut bad = rule("bad name", Key::User, &[], vec![window(1, "fortnight")]);
        bad.windows.push(WindowSpec {
            limit: -3,
            per: "minute".into(),
        });
        let Err(Error::InvalidArgument(violations)) = compiled(&[bad]) else {
            panic!("accepted");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rules[0].name",
                "rules[0].windows[0].per",
                "rules[0].windows[1].limit"
            ]
        );
    }

    #[test]
    fn defaults_are_the_seeds_figures() {
        let rules = configured(&RateLimitArgs::default()).unwrap();
        let names: Vec<&str> = rules.iter().map(|r| &*r.name).collect();
        assert_eq!(
            names,
            [
                "per-user",
                "anonymous",
                "expensive",
                "sign-in",
                "sign-in-failures"
            ]
        );
        assert_eq!(rules[0].windows[0].limit, 60);
        assert_eq!(rules[0].windows[1].limit, 1000);
        assert_eq!(rules[0].policies[0], "\"per-user-minute\";q=60;w=60");
    }

    #[test]
    fn files_parse_as_toml_and_yaml() {
        let dir = std::env::temp_dir().join(format!("rl-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("rules.toml");
        std::fs::write(
            &toml_path,
            "[[rules]]\nname = \"a\"\nkey = \"tenant\"\nwindows = [{ limit = 5, per = \"second\" }]\n",
        )
        .unwrap();
        let yaml_path = dir.join("rules.yaml");
        std::fs::write(
            &yaml_path,
            "rules:\n  - name: b\n    key: address\n    mode: shadow\n    windows:\n      - { limit: 7, per: day }\n",
        )
        .unwrap();
        let args = |path: &Path| RateLimitArgs {
            rate_limit_rules: Some(path.to_owned()),
            ..RateLimitArgs::default()
        };
        let toml_rules = configured(&args(&toml_path)).unwrap();
        assert_eq!(toml_rules[0].key, Key::Tenant);
        let yaml_rules = configured(&args(&yaml_path)).unwrap();
        assert_eq!(yaml_rules[0].mode, Mode::Shadow);
        assert_eq!(yaml_rules[0].windows[0].period, Duration::from_secs(86_400));

        std::fs::write(&toml_path, "[[rules]]\nname = \"a\"\n").unwrap();
        let error = configured(&args(&toml_path)).unwrap_err().to_string();
        assert!(error.contains("RATE_LIMIT_RULES"), "{error}");
        std::fs::remove_dir_all(dir).ok();
    }
}
