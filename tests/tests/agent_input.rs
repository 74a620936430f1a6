//! Bad input to the agent service: INVALID_ARGUMENT naming the field (never INTERNAL or
//! UNKNOWN), a stale etag ABORTED, and nothing stored.

use agentic_e2e::agent::{AgentFixture, AgentHarness, agent, create_agent, mask, mcp_server};
use agentic_e2e::violated_fields;
use agentic_proto::agent::v1 as pb;
use prost_types::value::Kind;
use tonic::Code;

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = result.expect_err(field);
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        violated_fields(&status).iter().any(|f| f == field),
        "{field} not named: {:?}",
        violated_fields(&status)
    );
}

fn config_of(bytes: usize) -> prost_types::Struct {
    prost_types::Struct {
        fields: [(
            "blob".to_owned(),
            prost_types::Value {
                kind: Some(Kind::StringValue("x".repeat(bytes))),
            },
        )]
        .into_iter()
        .collect(),
    }
}

#[tokio::test]
async fn every_bad_agent_field_is_named_and_nothing_is_stored() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;
    let long = |n: usize| "x".repeat(n);
    let nan_config = prost_types::Struct {
        fields: [(
            "n".to_owned(),
            prost_types::Value {
                kind: Some(Kind::NumberValue(f64::NAN)),
            },
        )]
        .into_iter()
        .collect(),
    };
    let nul_config = prost_types::Struct {
        fields: [(
            "key".to_owned(),
            prost_types::Value {
                kind: Some(Kind::StringValue("a\0b".into())),
            },
        )]
        .into_iter()
        .collect(),
    };
    let base = agent("valid-slug", "gpt-4o");
    let cases: Vec<(pb::Agent, &str)> = vec![
        (
            pb::Agent {
                name: long(201),
                ..base.clone()
            },
            "agent.name",
        ),
        (
            pb::Agent {
                name: "a\0b".into(),
                ..base.clone()
            },
            "agent.name",
        ),
        (
            pb::Agent {
                slug: "Not A Slug".into(),
                ..base.clone()
            },
            "agent.slug",
        ),
        (
            pb::Agent {
                slug: long(64),
                ..base.clone()
            },
            "agent.slug",
        ),
        (
            pb::Agent {
                description: long(2001),
                ..base.clone()
            },
            "agent.description",
        ),
        (
            pb::Agent {
                model: long(101),
                ..base.clone()
            },
            "agent.model",
        ),
        (
            pb::Agent {
                model: "gpt 4o".into(),
                ..base.clone()
            },
            "agent.model",
        ),
        (
            pb::Agent {
                system_prompt: long(100_001),
                ..base.clone()
            },
            "agent.system_prompt",
        ),
        (
            pb::Agent {
                system_prompt: "nul\0".into(),
                ..base.clone()
            },
            "agent.system_prompt",
        ),
        (
            pb::Agent {
                temperature: Some(2.01),
                ..base.clone()
            },
            "agent.temperature",
        ),
        (
            pb::Agent {
                temperature: Some(-0.1),
                ..base.clone()
            },
            "agent.temperature",
        ),
        (
            pb::Agent {
                temperature: Some(f32::NAN),
                ..base.clone()
            },
            "agent.temperature",
        ),
        (
            pb::Agent {
                max_tokens: Some(0),
                ..base.clone()
            },
            "agent.max_tokens",
        ),
        (
            pb::Agent {
                max_tokens: Some(1_000_001),
                ..base.clone()
            },
            "agent.max_tokens",
        ),
        (
            pb::Agent {
                config: Some(config_of(70_000)),
                ..base.clone()
            },
            "agent.config",
        ),
        (
            pb::Agent {
                config: Some(nan_config),
                ..base.clone()
            },
            "agent.config",
        ),
        (
            pb::Agent {
                config: Some(nul_config),
                ..base.clone()
            },
            "agent.config",
        ),
        (
            pb::Agent {
                mcp_server_ids: vec![uuid::Uuid::now_v7().to_string(); 33],
                ..base.clone()
            },
            "agent.mcp_server_ids",
        ),
        (
            pb::Agent {
                mcp_server_ids: vec!["x".into()],
                ..base.clone()
            },
            "agent.mcp_server_ids[0]",
        ),
        (
            pb::Agent {
                status: 99,
                ..base.clone()
            },
            "agent.status",
        ),
    ];
    for (bad, field) in cases {
        let result = admin
            .create_agent(pb::CreateAgentRequest {
                request_id: String::new(),
                agent: Some(bad),
            })
            .await;
        assert_invalid(result, field);
    }
    assert_invalid(
        admin
            .create_agent(pb::CreateAgentRequest {
                request_id: String::new(),
                agent: None,
            })
            .await,
        "agent",
    );
    let listed = admin
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.agents.is_empty(), "nothing was stored");

    // A config just under the cap is fine.
    create_agent(
        &mut admin,
        pb::Agent {
            config: Some(config_of(60_000)),
            ..base.clone()
        },
    )
    .await;
}

#[tokio::test]
async fn bad_updates_reads_and_lists_are_named_and_a_stale_etag_is_aborted() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;
    let existing = create_agent(&mut admin, agent("target", "m")).await;
    let update = |agent: pb::Agent, paths: &[&str]| pb::UpdateAgentRequest {
        agent: Some(pb::Agent {
            id: existing.id.clone(),
            ..agent
        }),
        update_mask: mask(paths),
    };

    assert_invalid(
        admin
            .update_agent(update(pb::Agent::default(), &["owner"]))
            .await,
        "update_mask",
    );
    assert_invalid(
        admin.update_agent(update(pb::Agent::default(), &[])).await,
        "update_mask",
    );
    assert_invalid(
        admin
            .update_agent(update(
                pb::Agent {
                    etag: "yesterday".into(),
                    ..Default::default()
                },
                &["name"],
            ))
            .await,
        "agent.etag",
    );
    assert_invalid(
        admin
            .update_agent(update(pb::Agent::default(), &["temperature"]))
            .await,
        "agent.temperature",
    );
    assert_invalid(
        admin
            .update_agent(pb::UpdateAgentRequest {
                agent: Some(pb::Agent {
                    id: "nope".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            })
            .await,
        "agent.id",
    );
    let stale = admin
        .update_agent(update(
            pb::Agent {
                etag: "1".into(),
                name: "x".into(),
                ..Default::default()
            },
            &["name"],
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let stale_delete = admin
        .delete_agent(pb::DeleteAgentRequest {
            id: existing.id.clone(),
            etag: "1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale_delete.code(), Code::Aborted);

    assert_invalid(
        admin
            .get_agent(pb::GetAgentRequest {
                id: String::new(),
                read_mask: None,
            })
            .await,
        "id",
    );
    assert_invalid(
        admin
            .get_agent(pb::GetAgentRequest {
                id: existing.id.clone(),
                read_mask: mask(&["secret"]),
            })
            .await,
        "read_mask",
    );
    assert_invalid(
        admin
            .get_agent_by_slug(pb::GetAgentBySlugRequest {
                slug: "BAD SLUG".into(),
                read_mask: None,
            })
            .await,
        "slug",
    );
    for (request, field) in [
        (
            pb::ListAgentsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListAgentsRequest {
                status: 42,
                ..Default::default()
            },
            "status",
        ),
        (
            pb::ListAgentsRequest {
                model: "bad model".into(),
                ..Default::default()
            },
            "model",
        ),
        (
            pb::ListAgentsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        assert_invalid(admin.list_agents(request).await, field);
    }
    assert_invalid(
        admin
            .batch_get_agents(pb::BatchGetAgentsRequest {
                ids: vec![],
                read_mask: None,
            })
            .await,
        "ids",
    );
    assert_invalid(
        admin
            .batch_get_agents(pb::BatchGetAgentsRequest {
                ids: vec!["x".into()],
                read_mask: None,
            })
            .await,
        "ids[0]",
    );

    let read = admin
        .get_agent(agentic_e2e::agent::get_agent(&existing.id))
        .await
        .expect("get")
        .into_inner()
        .agent;
    assert_eq!(read, Some(existing), "nothing changed");
}

#[tokio::test]
async fn bad_mcp_servers_and_workflows_are_named() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;
    let base = mcp_server("srv", "v");
    let mut bad_header_name = base.clone();
    bad_header_name.headers = [("Bad Name".to_owned(), "v".to_owned())]
        .into_iter()
        .collect();
    let mut bad_header_value = base.clone();
    bad_header_value.headers = [("x-key".to_owned(), "a\r\nInjected: 1".to_owned())]
        .into_iter()
        .collect();
    let cases: Vec<(pb::McpServer, &str)> = vec![
        (
            pb::McpServer {
                name: String::new(),
                ..base.clone()
            },
            "mcp_server.name",
        ),
        (
            pb::McpServer {
                transport: 0,
                ..base.clone()
            },
            "mcp_server.transport",
        ),
        (
            pb::McpServer {
                transport: 9,
                ..base.clone()
            },
            "mcp_server.transport",
        ),
        (
            pb::McpServer {
                url: "ftp://x".into(),
                ..base.clone()
            },
            "mcp_server.url",
        ),
        (
            pb::McpServer {
                url: "x".repeat(3000),
                ..base.clone()
            },
            "mcp_server.url",
        ),
        (
            pb::McpServer {
                args: vec!["a".into(); 65],
                ..base.clone()
            },
            "mcp_server.args",
        ),
        (
            pb::McpServer {
                tools: vec![
                    pb::McpTool {
                        name: "t".into(),
                        ..Default::default()
                    };
                    257
                ],
                ..base.clone()
            },
            "mcp_server.tools",
        ),
        (bad_header_name, "mcp_server.headers[\"Bad Name\"]"),
        (bad_header_value, "mcp_server.headers[\"x-key\"]"),
    ];
    for (bad, field) in cases {
        assert_invalid(
            admin
                .create_mcp_server(pb::CreateMcpServerRequest {
                    request_id: String::new(),
                    mcp_server: Some(bad),
                })
                .await,
            field,
        );
    }

    let step = |agent_id: &str, template: String| pb::WorkflowStep {
        name: String::new(),
        agent_id: agent_id.to_owned(),
        input_template: template,
    };
    let id = uuid::Uuid::now_v7().to_string();
    let cases: Vec<(Vec<pb::WorkflowStep>, &str)> = vec![
        (vec![], "workflow.steps"),
        (vec![step(&id, String::new()); 51], "workflow.steps"),
        (vec![step("x", String::new())], "workflow.steps[0].agent_id"),
        (
            vec![step(&id, "t".repeat(20_001))],
            "workflow.steps[0].input_template",
        ),
    ];
    for (steps, field) in cases {
        assert_invalid(
            admin
                .create_workflow(pb::CreateWorkflowRequest {
                    request_id: String::new(),
                    workflow: Some(pb::Workflow {
                        name: "Flow".into(),
                        steps,
                        ..Default::default()
                    }),
                })
                .await,
            field,
        );
    }
    let servers = admin
        .list_mcp_servers(pb::ListMcpServersRequest::default())
        .await
        .expect("list")
        .into_inner();
    let flows = admin
        .list_workflows(pb::ListWorkflowsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(servers.mcp_servers.is_empty() && flows.workflows.is_empty());
}
