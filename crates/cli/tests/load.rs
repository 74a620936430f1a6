//! `agentic load` against the four services as processes on one database, rate limits on:
//! a scenario run over every kind of step reports each with calls and no errors, states
//! the limits the suite answered with, and writes its JSON, Markdown and SVG; the open
//! model sends exactly its arrivals; a breached threshold fails the exit code; a bad
//! scenario or plan is refused, naming its line or stage, before any connection is made.

use std::path::{Path, PathBuf};
use std::process::Output;

use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{JWT_SECRET, ServiceProcess, TestDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_agentic");
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.local/models");

struct Suite {
    user: ServiceProcess,
    agent: ServiceProcess,
    conversation: ServiceProcess,
    rag: ServiceProcess,
    _db: TestDatabase,
}

impl Suite {
    async fn start() -> Self {
        let db = TestDatabase::create("load", agentic_user::UserApp::MIGRATIONS).await;
        for migrations in [
            agentic_agent::AgentApp::MIGRATIONS,
            agentic_conversation::ConversationApp::MIGRATIONS,
            agentic_rag::RagApp::MIGRATIONS,
        ] {
            agentic_platform::db::run_migrations(&db.url, migrations)
                .await
                .expect("migrations");
        }
        // Rate limits on (the default rules, in-process: no Redis is named), so the
        // report has limits to state.
        let limits = ("RATE_LIMIT_ENABLED", "true");
        let rag = ServiceProcess::start_command(
            BIN,
            &["serve", "rag"],
            &db.url,
            &[limits, ("EMBEDDING_MODEL_DIR", MODELS)],
        )
        .await;
        let user = ServiceProcess::start_command(BIN, &["serve", "user"], &db.url, &[limits]).await;
        let rag_url = format!("http://{}", rag.addr);
        let model = format!("{MODELS}/SmolLM2-135M-Instruct.Q4_1.gguf");
        let agent = ServiceProcess::start_command(
            BIN,
            &["serve", "agent"],
            &db.url,
            &[
                limits,
                ("RAG_SERVICE_URL", &rag_url),
                ("LOCAL_MODEL_PATH", &model),
                ("SECRETS_KEY", "a-secrets-key-of-at-least-thirty-two-bytes"),
                ("RAYON_NUM_THREADS", "1"),
            ],
        )
        .await;
        let (user_url, agent_url) = (
            format!("http://{}", user.addr),
            format!("http://{}", agent.addr),
        );
        let conversation = ServiceProcess::start_command(
            BIN,
            &["serve", "conversation"],
            &db.url,
            &[
                limits,
                ("USER_SERVICE_URL", &user_url),
                ("AGENT_SERVICE_URL", &agent_url),
            ],
        )
        .await;
        Self {
            user,
            agent,
            conversation,
            rag,
            _db: db,
        }
    }

    /// `agentic load` with the suite's addresses and `args`.
    async fn load(&self, args: &[&str]) -> Output {
        let addresses = [
            ("--user-addr", &self.user),
            ("--agent-addr", &self.agent),
            ("--conversation-addr", &self.conversation),
            ("--rag-addr", &self.rag),
        ]
        .map(|(flag, process)| [flag.to_owned(), format!("http://{}", process.addr)]);
        load(addresses.iter().flatten().map(String::as_str), args).await
    }
}

async fn load<'a>(addresses: impl Iterator<Item = &'a str>, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("load")
        .args(addresses)
        .args(args)
        .args(["--progress", "0s"])
        .env("JWT_SECRET", JWT_SECRET)
        .output()
        .await
        .expect("run agentic load")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("agentic-load-{}-{name}", uuid::Uuid::new_v4()))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a scenario");
}

/// Every step kind but `respond` (the local model answers slowly in a debug build;
/// Respond has its own tests), equally weighted.
const EVERY_STEP: &str = r#"
name = "every step"
think_time = "300ms..500ms"

[setup]
agents = 2
documents = 5

[[step]]
call = "health"
weight = 1
token = "none"

[[step]]
call = "authenticate"
weight = 1
token = "none"

[[step]]
call = "get_user"
weight = 1
token = "user"

[[step]]
call = "list_users"
weight = 1
token = "user"

[[step]]
call = "create_user"
weight = 1
token = "admin"

[[step]]
call = "get_agent"
weight = 1
token = "user"

[[step]]
call = "list_agents"
weight = 1
token = "user"

[[step]]
call = "create_conversation"
weight = 1
token = "user"

[[step]]
call = "append_messages"
weight = 1
token = "user"
messages = 3

[[step]]
call = "list_messages"
weight = 1
token = "user"

[[step]]
call = "ingest_document"
weight = 1
token = "user"

[[step]]
call = "search"
weight = 1
token = "user"
mode = "hybrid"
"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_over_the_suite_is_measured_and_reported() {
    let suite = Suite::start().await;
    let scenario = temp("every.toml");
    write(&scenario, EVERY_STEP);
    let (report, summary, plot) = (temp("r.json"), temp("r.md"), temp("r.svg"));
    let output = suite
        .load(&[
            "--scenario",
            scenario.to_str().unwrap(),
            "--users",
            "6",
            "--duration",
            "10s",
            "--timeout",
            "20s",
            "--report",
            report.to_str().unwrap(),
            "--summary",
            summary.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
            "--threshold",
            "errors<=0%",
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["schema"], "agentic-load/1");
    assert_eq!(json["model"], "closed");
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 12);
    for step in steps {
        assert!(step["count"].as_u64().unwrap() >= 1, "no calls: {step}");
        assert_eq!(step["errors"], serde_json::json!({}), "{step}");
        assert!(step["p95_ms"].as_f64().unwrap() > 0.0, "{step}");
    }
    let total: u64 = steps.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert_eq!(json["overall"]["count"].as_u64().unwrap(), total);
    // The suite's limits as it announced them: the user's own budget on its calls.
    let limits = json["rate_limits"].as_object().unwrap();
    assert!(
        limits["user/GetUser"]
            .as_str()
            .unwrap()
            .contains("\"per-user-minute\";q=60;w=60"),
        "{limits:?}"
    );
    assert!(
        limits["rag/IngestDocuments"]
            .as_str()
            .unwrap()
            .contains("expensive"),
        "{limits:?}"
    );
    assert!(!json["series"].as_array().unwrap().is_empty());
    assert_eq!(json["thresholds"][0]["passed"], true);

    let markdown = std::fs::read_to_string(&summary).unwrap();
    assert!(markdown.contains("| **all** |"), "{markdown}");
    assert!(markdown.contains("rag/Search"), "{markdown}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );

    // The open model: 20 arrivals a second for 3 s are 60 calls, whatever they take.
    let open_report = temp("open.json");
    let output = suite
        .load(&[
            "--scenario",
            scenario.to_str().unwrap(),
            "--rate",
            "20",
            "--duration",
            "3s",
            "--users",
            "2",
            "--report",
            open_report.to_str().unwrap(),
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&open_report).unwrap()).unwrap();
    assert_eq!(json["model"], "open");
    assert_eq!(json["overall"]["count"], 60);

    // A threshold no run meets fails the exit code, after the report.
    let output = suite
        .load(&[
            "--scenario",
            scenario.to_str().unwrap(),
            "--users",
            "1",
            "--duration",
            "2s",
            "--threshold",
            "p50<1us",
        ])
        .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("a threshold failed"),
        "{}",
        stderr(&output)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAILED"));
}

#[tokio::test]
async fn bad_input_is_refused_before_any_load() {
    // Nothing listens here: an error about connecting would mean load was about to start.
    let nowhere = [
        "--user-addr",
        "http://127.0.0.1:9",
        "--agent-addr",
        "http://127.0.0.1:9",
        "--conversation-addr",
        "http://127.0.0.1:9",
        "--rag-addr",
        "http://127.0.0.1:9",
    ];
    let unknown = temp("unknown.toml");
    write(
        &unknown,
        "name = \"x\"\n\n[[step]]\ncall = \"teleport\"\nweight = 1\ntoken = \"user\"\n",
    );
    let no_token = temp("no-token.toml");
    write(
        &no_token,
        "name = \"x\"\n[[step]]\ncall = \"health\"\nweight = 1\ntoken = \"none\"\n[[step]]\ncall = \"get_user\"\nweight = 1\n",
    );
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["--scenario", unknown.to_str().unwrap()], "line 4"),
        (vec!["--scenario", no_token.to_str().unwrap()], "token"),
        (vec!["--plan", "10,30s;lots,1m"], "stage 2"),
        (vec!["--threshold", "p95<soon"], "not a duration"),
    ];
    for (args, wanted) in cases {
        let output = load(nowhere.iter().copied(), &args).await;
        let message = stderr(&output);
        assert!(!output.status.success(), "{args:?}");
        assert!(message.contains(wanted), "{args:?}: {message}");
        assert!(!message.contains("cannot connect"), "{args:?}: {message}");
    }
}
