//! The agent service end to end: agents, MCP servers and workflows over real gRPC,
//! against real PostgreSQL and Redis.

use std::collections::HashSet;

use agentic_e2e::agent::{
    AgentFixture, AgentHarness, agent, create_agent, create_mcp_server, get_agent, mask, mcp_server,
};
use agentic_platform::auth::roles;
use agentic_proto::agent::v1 as pb;
use prost::Message;
use tonic::Code;

#[tokio::test]
async fn an_agent_is_created_read_updated_deleted_and_restored() {
    let harness = AgentHarness::start().await;
    let (tenant, mut admin) = harness.service.tenant().await;
    let created = create_agent(&mut admin, agent("support-bot", "gpt-4o")).await;
    assert_eq!(created.tenant_id, tenant.to_string());
    assert_eq!(created.status, pb::AgentStatus::Active as i32);
    assert_eq!(created.temperature, Some(0.7));
    assert_eq!(created.max_tokens, Some(2048));
    assert_eq!(created.system_prompt, "You are helpful.\nBe brief.");
    assert!(!created.created_by.is_empty() && !created.etag.is_empty());

    let got = admin.get_agent(get_agent(&created.id)).await.expect("get");
    assert_eq!(got.into_inner().agent.as_ref(), Some(&created));
    let by_slug = admin
        .get_agent_by_slug(pb::GetAgentBySlugRequest {
            slug: "support-bot".into(),
            read_mask: None,
        })
        .await
        .expect("by slug");
    assert_eq!(by_slug.into_inner().agent.as_ref(), Some(&created));

    // A read mask returns only what it names.
    let masked = admin
        .get_agent(pb::GetAgentRequest {
            id: created.id.clone(),
            read_mask: mask(&["id", "slug"]),
        })
        .await
        .expect("masked")
        .into_inner()
        .agent
        .expect("agent");
    assert_eq!(
        masked,
        pb::Agent {
            id: created.id.clone(),
            slug: created.slug.clone(),
            ..Default::default()
        }
    );

    // Update with the current etag, then a stale one.
    let config: prost_types::Struct = prost_types::Struct {
        fields: [(
            "retries".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(3.0)),
            },
        )]
        .into_iter()
        .collect(),
    };
    let updated = admin
        .update_agent(pb::UpdateAgentRequest {
            agent: Some(pb::Agent {
                id: created.id.clone(),
                etag: created.etag.clone(),
                slug: "helpdesk".into(),
                temperature: Some(0.2),
                config: Some(config.clone()),
                status: pb::AgentStatus::Paused as i32,
                ..Default::default()
            }),
            update_mask: mask(&["slug", "temperature", "config", "status"]),
        })
        .await
        .expect("update")
        .into_inner()
        .agent
        .expect("agent");
    assert_eq!(updated.slug, "helpdesk");
    assert_eq!(updated.temperature, Some(0.2));
    assert_eq!(updated.config, Some(config));
    assert_eq!(updated.status, pb::AgentStatus::Paused as i32);
    assert_eq!(updated.name, created.name, "unmasked fields are kept");
    assert_ne!(updated.etag, created.etag);
    let stale = admin
        .update_agent(pb::UpdateAgentRequest {
            agent: Some(pb::Agent {
                id: created.id.clone(),
                etag: created.etag.clone(),
                name: "Lost update".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let old_slug = admin
        .get_agent_by_slug(pb::GetAgentBySlugRequest {
            slug: "support-bot".into(),
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(old_slug.code(), Code::NotFound, "the old slug is gone");

    // Soft delete: gone from every read, and the slug is free at once.
    admin
        .delete_agent(pb::DeleteAgentRequest {
            id: created.id.clone(),
            etag: String::new(),
        })
        .await
        .expect("delete");
    let gone = admin.get_agent(get_agent(&created.id)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let listed = admin
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.agents.is_empty());
    let batch = admin
        .batch_get_agents(pb::BatchGetAgentsRequest {
            ids: vec![created.id.clone()],
            read_mask: None,
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.missing_ids, std::slice::from_ref(&created.id));
    let again = admin
        .delete_agent(pb::DeleteAgentRequest {
            id: created.id.clone(),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);

    // Undelete while the slug is taken by a new agent: ALREADY_EXISTS; once free: restored.
    let reuse = create_agent(&mut admin, agent("helpdesk", "gpt-4o")).await;
    let taken = admin
        .undelete_agent(pb::UndeleteAgentRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    admin
        .delete_agent(pb::DeleteAgentRequest {
            id: reuse.id.clone(),
            etag: reuse.etag.clone(),
        })
        .await
        .expect("delete the reuser");
    let restored = admin
        .undelete_agent(pb::UndeleteAgentRequest {
            id: created.id.clone(),
        })
        .await
        .expect("undelete")
        .into_inner()
        .agent
        .expect("agent");
    assert_eq!(restored.slug, "helpdesk");
    let read = admin
        .get_agent(get_agent(&created.id))
        .await
        .expect("get restored")
        .into_inner()
        .agent;
    assert_eq!(read, Some(restored.clone()));
    let live = admin
        .undelete_agent(pb::UndeleteAgentRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(live.code(), Code::FailedPrecondition, "not deleted");

    // A member may create agents, and is recorded as their creator; not update them.
    let (token, _) = harness
        .service
        .tokens
        .issue("member-7", Some(tenant), roles::MEMBER, None)
        .expect("token");
    let mut member = harness.service.client(Some(&token)).await;
    let by_member = create_agent(&mut member, agent("members-own", "gpt-4o")).await;
    assert_eq!(by_member.created_by, "member-7");
    let denied = member
        .delete_agent(pb::DeleteAgentRequest {
            id: by_member.id.clone(),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn batch_get_answers_in_request_order_and_names_the_missing_ids() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;
    let a = create_agent(&mut admin, agent("batch-a", "m")).await;
    let b = create_agent(&mut admin, agent("batch-b", "m")).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let response = admin
        .batch_get_agents(pb::BatchGetAgentsRequest {
            ids: vec![b.id.clone(), unknown.clone(), a.id.clone(), b.id.clone()],
            read_mask: mask(&["id", "name"]),
        })
        .await
        .expect("batch")
        .into_inner();
    let ids: Vec<_> = response.agents.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, [b.id.as_str(), a.id.as_str()]);
    assert_eq!(response.agents[0].name, b.name);
    assert!(response.agents[0].slug.is_empty(), "masked");
    assert_eq!(response.missing_ids, [unknown]);

    let too_many = admin
        .batch_get_agents(pb::BatchGetAgentsRequest {
            ids: vec![a.id.clone(); 101],
            read_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn paging_returns_every_agent_exactly_once_while_agents_are_added_and_filters_hold() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;
    let mut expected = HashSet::new();
    for i in 0..25 {
        let model = if i % 2 == 0 {
            "even-model"
        } else {
            "odd-model"
        };
        let mut new = agent(&format!("page-{i:02}"), model);
        if i % 5 == 0 {
            new.status = pb::AgentStatus::Paused as i32;
        }
        expected.insert(create_agent(&mut admin, new).await.id);
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut added = 0;
    loop {
        let page = admin
            .list_agents(pb::ListAgentsRequest {
                page_size: 7,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        assert!(page.agents.len() <= 7);
        seen.extend(page.agents.into_iter().map(|a| a.id));
        // Agents created mid-listing come after the cursor: listed at most once.
        if added < 3 {
            create_agent(&mut admin, agent(&format!("late-{added}"), "even-model")).await;
            added += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no agent twice");
    assert!(expected.is_subset(&unique), "every earlier agent once");

    let paused = admin
        .list_agents(pb::ListAgentsRequest {
            status: pb::AgentStatus::Paused as i32,
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("paused")
        .into_inner();
    assert_eq!(paused.agents.len(), 5);
    let odd = admin
        .list_agents(pb::ListAgentsRequest {
            model: "odd-model".into(),
            page_size: 100,
            read_mask: mask(&["model"]),
            ..Default::default()
        })
        .await
        .expect("odd")
        .into_inner();
    assert_eq!(odd.agents.len(), 12);
    assert!(
        odd.agents
            .iter()
            .all(|a| a.model == "odd-model" && a.id.is_empty())
    );

    // A token from one filter does not page another.
    let first = admin
        .list_agents(pb::ListAgentsRequest {
            model: "odd-model".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .expect("first")
        .into_inner();
    let replayed = admin
        .list_agents(pb::ListAgentsRequest {
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(replayed.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn mcp_header_values_are_never_returned_or_stored_in_the_clear() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;
    let secret = "s3cr3t-token-value-7f1d";
    let created = create_mcp_server(&mut admin, mcp_server("tools", secret)).await;
    assert_eq!(created.header_names, ["authorization"]);
    assert!(created.headers.is_empty());

    let got = admin
        .get_mcp_server(pb::GetMcpServerRequest {
            id: created.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    let listed = admin
        .list_mcp_servers(pb::ListMcpServersRequest::default())
        .await
        .expect("list")
        .into_inner();
    let updated = admin
        .update_mcp_server(pb::UpdateMcpServerRequest {
            mcp_server: Some(pb::McpServer {
                id: created.id.clone(),
                name: "renamed tools".into(),
                ..mcp_server("", secret)
            }),
            update_mask: mask(&["name", "headers"]),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(
        updated.mcp_server.as_ref().expect("server").name,
        "renamed tools"
    );
    for bytes in [
        got.encode_to_vec(),
        listed.encode_to_vec(),
        updated.encode_to_vec(),
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a header value was returned"
        );
    }

    let stored = harness
        .db
        .query_bytes("SELECT coalesce(headers_sealed, ''::bytea) AS value FROM agents.mcp_servers")
        .await;
    assert!(!stored.is_empty() && stored.iter().all(|row| !row.is_empty()));
    for row in stored {
        assert!(
            !row.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "sealed at rest"
        );
    }

    // The endpoint must fit the transport.
    let bad = admin
        .create_mcp_server(pb::CreateMcpServerRequest {
            request_id: String::new(),
            mcp_server: Some(pb::McpServer {
                transport: pb::McpTransport::Stdio as i32,
                command: String::new(),
                url: String::new(),
                ..mcp_server("stdio-without-command", "x")
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("mcp_server.command"), "{bad:?}");
    let duplicate = admin
        .create_mcp_server(pb::CreateMcpServerRequest {
            request_id: String::new(),
            mcp_server: Some(mcp_server("renamed tools", "x")),
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn agents_may_only_use_enabled_servers_and_lose_a_deleted_one() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;
    let enabled = create_mcp_server(&mut admin, mcp_server("enabled", "a")).await;
    let disabled = create_mcp_server(
        &mut admin,
        pb::McpServer {
            enabled: false,
            ..mcp_server("disabled", "b")
        },
    )
    .await;
    let missing = uuid::Uuid::now_v7().to_string();

    for (ids, what) in [
        (vec![disabled.id.clone()], "disabled"),
        (vec![enabled.id.clone(), missing.clone()], "does not exist"),
    ] {
        let refused = admin
            .create_agent(pb::CreateAgentRequest {
                request_id: String::new(),
                agent: Some(pb::Agent {
                    mcp_server_ids: ids,
                    ..agent("tooling", "m")
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains(what), "{refused:?}");
    }

    let tooled = create_agent(
        &mut admin,
        pb::Agent {
            mcp_server_ids: vec![enabled.id.clone()],
            ..agent("tooled", "m")
        },
    )
    .await;
    assert_eq!(tooled.mcp_server_ids, std::slice::from_ref(&enabled.id));
    let refused = admin
        .update_agent(pb::UpdateAgentRequest {
            agent: Some(pb::Agent {
                id: tooled.id.clone(),
                mcp_server_ids: vec![disabled.id.clone()],
                ..Default::default()
            }),
            update_mask: mask(&["mcp_server_ids"]),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // Warm the cache, delete the server: the cached agent no longer names it.
    admin.get_agent(get_agent(&tooled.id)).await.expect("warm");
    admin
        .delete_mcp_server(pb::DeleteMcpServerRequest {
            id: enabled.id.clone(),
        })
        .await
        .expect("delete server");
    let after = admin
        .get_agent(get_agent(&tooled.id))
        .await
        .expect("get")
        .into_inner()
        .agent
        .expect("agent");
    assert!(after.mcp_server_ids.is_empty(), "{after:?}");
    assert_ne!(after.etag, tooled.etag, "the agent changed");
    let gone = admin
        .get_mcp_server(pb::GetMcpServerRequest {
            id: enabled.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn workflows_are_stored_in_order_and_validated_against_live_agents() {
    let harness = AgentHarness::start().await;
    let (_, mut admin) = harness.service.tenant().await;
    let active = create_agent(&mut admin, agent("wf-active", "m")).await;
    let paused = create_agent(
        &mut admin,
        pb::Agent {
            status: pb::AgentStatus::Paused as i32,
            ..agent("wf-paused", "m")
        },
    )
    .await;
    let missing = uuid::Uuid::now_v7().to_string();
    let step = |agent_id: &str, template: &str| pb::WorkflowStep {
        name: String::new(),
        agent_id: agent_id.to_owned(),
        input_template: template.to_owned(),
    };
    let workflow = admin
        .create_workflow(pb::CreateWorkflowRequest {
            request_id: String::new(),
            workflow: Some(pb::Workflow {
                name: "Triage".into(),
                steps: vec![
                    step(&active.id, "{{input}}"),
                    step(&paused.id, "{{steps.0.output}}"),
                    step(&missing, "done"),
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("create")
        .into_inner()
        .workflow
        .expect("workflow");
    assert_eq!(workflow.steps[1].input_template, "{{steps.0.output}}");

    let validation = admin
        .validate_workflow(pb::ValidateWorkflowRequest {
            id: workflow.id.clone(),
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(!validation.valid);
    let problems: Vec<_> = validation
        .problems
        .iter()
        .map(|p| (p.step, p.reason.as_str()))
        .collect();
    assert_eq!(problems, [(1, "agent is paused"), (2, "agent not found")]);

    let updated = admin
        .update_workflow(pb::UpdateWorkflowRequest {
            workflow: Some(pb::Workflow {
                id: workflow.id.clone(),
                etag: workflow.etag.clone(),
                steps: vec![step(&active.id, "{{input}}")],
                ..Default::default()
            }),
            update_mask: mask(&["steps"]),
        })
        .await
        .expect("update")
        .into_inner()
        .workflow
        .expect("workflow");
    assert_eq!(updated.name, "Triage");
    let valid = admin
        .validate_workflow(pb::ValidateWorkflowRequest {
            id: workflow.id.clone(),
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(valid.valid, "{valid:?}");
    let got = admin
        .get_workflow(pb::GetWorkflowRequest {
            id: workflow.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.workflow, Some(updated));
    assert_eq!(
        admin
            .list_workflows(pb::ListWorkflowsRequest::default())
            .await
            .expect("list")
            .into_inner()
            .workflows
            .len(),
        1
    );
    admin
        .delete_workflow(pb::DeleteWorkflowRequest {
            id: workflow.id.clone(),
        })
        .await
        .expect("delete");
    let gone = admin
        .get_workflow(pb::GetWorkflowRequest {
            id: workflow.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}
