//! Tenant isolation over every RPC of the agent service, and who may write what.

use agentic_e2e::agent::{
    AgentFixture, AgentHarness, agent, create_agent, create_mcp_server, get_agent, mask, mcp_server,
};
use agentic_platform::auth::roles;
use agentic_proto::agent::v1 as pb;
use tonic::Code;

fn step(agent_id: &str) -> pb::WorkflowStep {
    pb::WorkflowStep {
        name: "only".into(),
        agent_id: agent_id.to_owned(),
        input_template: "{{input}}".into(),
    }
}

fn workflow(agent_id: &str) -> pb::Workflow {
    pb::Workflow {
        name: "Flow".into(),
        steps: vec![step(agent_id)],
        ..Default::default()
    }
}

fn not_found<T: std::fmt::Debug>(result: Result<T, tonic::Status>, rpc: &str) {
    let status = result.expect_err(rpc);
    assert_eq!(status.code(), Code::NotFound, "{rpc}: {status:?}");
}

#[tokio::test]
async fn another_tenant_sees_and_changes_nothing_through_any_rpc() {
    let harness = AgentHarness::start().await;
    let (_, mut a) = harness.service.tenant().await;
    let (_, mut b) = harness.service.tenant().await;

    let server = create_mcp_server(&mut a, mcp_server("a-tools", "a-secret")).await;
    let victim = create_agent(
        &mut a,
        pb::Agent {
            mcp_server_ids: vec![server.id.clone()],
            ..agent("victim", "m")
        },
    )
    .await;
    let deleted = create_agent(&mut a, agent("deleted-victim", "m")).await;
    a.delete_agent(pb::DeleteAgentRequest {
        id: deleted.id.clone(),
        etag: String::new(),
    })
    .await
    .expect("delete in A");
    let flow = a
        .create_workflow(pb::CreateWorkflowRequest {
            request_id: String::new(),
            workflow: Some(workflow(&victim.id)),
        })
        .await
        .expect("workflow in A")
        .into_inner()
        .workflow
        .expect("workflow");

    // Agents.
    not_found(b.get_agent(get_agent(&victim.id)).await, "GetAgent");
    not_found(
        b.get_agent_by_slug(pb::GetAgentBySlugRequest {
            slug: "victim".into(),
            read_mask: None,
        })
        .await,
        "GetAgentBySlug",
    );
    let batch = b
        .batch_get_agents(pb::BatchGetAgentsRequest {
            ids: vec![victim.id.clone()],
            read_mask: None,
        })
        .await
        .expect("BatchGetAgents")
        .into_inner();
    assert!(batch.agents.is_empty() && batch.missing_ids == [victim.id.clone()]);
    let listed = b
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .expect("ListAgents")
        .into_inner();
    assert!(listed.agents.is_empty());
    not_found(
        b.update_agent(pb::UpdateAgentRequest {
            agent: Some(pb::Agent {
                id: victim.id.clone(),
                name: "pwned".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await,
        "UpdateAgent",
    );
    not_found(
        b.delete_agent(pb::DeleteAgentRequest {
            id: victim.id.clone(),
            etag: String::new(),
        })
        .await,
        "DeleteAgent",
    );
    not_found(
        b.undelete_agent(pb::UndeleteAgentRequest {
            id: deleted.id.clone(),
        })
        .await,
        "UndeleteAgent",
    );
    // A's server does not exist for B's agents.
    let borrowed = b
        .create_agent(pb::CreateAgentRequest {
            request_id: String::new(),
            agent: Some(pb::Agent {
                mcp_server_ids: vec![server.id.clone()],
                ..agent("borrower", "m")
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(borrowed.code(), Code::FailedPrecondition, "CreateAgent");
    // The same slug is free in B.
    create_agent(&mut b, agent("victim", "m")).await;

    // MCP servers.
    not_found(
        b.get_mcp_server(pb::GetMcpServerRequest {
            id: server.id.clone(),
        })
        .await,
        "GetMcpServer",
    );
    let servers = b
        .list_mcp_servers(pb::ListMcpServersRequest::default())
        .await
        .expect("ListMcpServers")
        .into_inner();
    assert!(servers.mcp_servers.is_empty());
    not_found(
        b.update_mcp_server(pb::UpdateMcpServerRequest {
            mcp_server: Some(pb::McpServer {
                id: server.id.clone(),
                enabled: false,
                ..Default::default()
            }),
            update_mask: mask(&["enabled"]),
        })
        .await,
        "UpdateMcpServer",
    );
    not_found(
        b.delete_mcp_server(pb::DeleteMcpServerRequest {
            id: server.id.clone(),
        })
        .await,
        "DeleteMcpServer",
    );
    create_mcp_server(&mut b, mcp_server("a-tools", "b-secret")).await;

    // Workflows.
    not_found(
        b.get_workflow(pb::GetWorkflowRequest {
            id: flow.id.clone(),
        })
        .await,
        "GetWorkflow",
    );
    let flows = b
        .list_workflows(pb::ListWorkflowsRequest::default())
        .await
        .expect("ListWorkflows")
        .into_inner();
    assert!(flows.workflows.is_empty());
    not_found(
        b.update_workflow(pb::UpdateWorkflowRequest {
            workflow: Some(pb::Workflow {
                id: flow.id.clone(),
                name: "pwned".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await,
        "UpdateWorkflow",
    );
    not_found(
        b.delete_workflow(pb::DeleteWorkflowRequest {
            id: flow.id.clone(),
        })
        .await,
        "DeleteWorkflow",
    );
    not_found(
        b.validate_workflow(pb::ValidateWorkflowRequest {
            id: flow.id.clone(),
        })
        .await,
        "ValidateWorkflow",
    );
    // B's workflow naming A's agent finds no such agent.
    let b_flow = b
        .create_workflow(pb::CreateWorkflowRequest {
            request_id: String::new(),
            workflow: Some(workflow(&victim.id)),
        })
        .await
        .expect("CreateWorkflow")
        .into_inner()
        .workflow
        .expect("workflow");
    let validation = b
        .validate_workflow(pb::ValidateWorkflowRequest { id: b_flow.id })
        .await
        .expect("validate")
        .into_inner();
    assert!(!validation.valid && validation.problems[0].reason == "agent not found");

    // Nothing of A's changed.
    let still = a
        .get_agent(get_agent(&victim.id))
        .await
        .expect("A reads its agent")
        .into_inner()
        .agent;
    assert_eq!(still, Some(victim));
    let still = a
        .get_mcp_server(pb::GetMcpServerRequest { id: server.id })
        .await
        .expect("A reads its server")
        .into_inner()
        .mcp_server
        .expect("server");
    assert!(still.enabled);
    let still = a
        .get_workflow(pb::GetWorkflowRequest {
            id: flow.id.clone(),
        })
        .await
        .expect("A reads its workflow")
        .into_inner()
        .workflow;
    assert_eq!(still, Some(flow));
}

#[tokio::test]
async fn viewers_read_members_create_agents_and_admins_do_the_rest() {
    let harness = AgentHarness::start().await;
    let (tenant, mut admin) = harness.service.tenant().await;
    let existing = create_agent(&mut admin, agent("existing", "m")).await;
    let server = create_mcp_server(&mut admin, mcp_server("srv", "x")).await;
    let mut viewer = harness.service.client_as(tenant, roles::VIEWER).await;
    let mut member = harness.service.client_as(tenant, roles::MEMBER).await;

    viewer
        .get_agent(get_agent(&existing.id))
        .await
        .expect("viewer reads");
    viewer
        .list_mcp_servers(pb::ListMcpServersRequest::default())
        .await
        .expect("viewer lists");
    let denied = viewer
        .create_agent(pb::CreateAgentRequest {
            request_id: String::new(),
            agent: Some(agent("by-viewer", "m")),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    create_agent(&mut member, agent("by-member", "m")).await;
    let update = pb::UpdateAgentRequest {
        agent: Some(pb::Agent {
            id: existing.id.clone(),
            name: "x".into(),
            ..Default::default()
        }),
        update_mask: mask(&["name"]),
    };
    for client in [&mut member, &mut viewer] {
        let results = [
            client.update_agent(update.clone()).await.map(|_| ()),
            client
                .delete_agent(pb::DeleteAgentRequest {
                    id: existing.id.clone(),
                    etag: String::new(),
                })
                .await
                .map(|_| ()),
            client
                .create_mcp_server(pb::CreateMcpServerRequest {
                    request_id: String::new(),
                    mcp_server: Some(mcp_server("other", "y")),
                })
                .await
                .map(|_| ()),
            client
                .delete_mcp_server(pb::DeleteMcpServerRequest {
                    id: server.id.clone(),
                })
                .await
                .map(|_| ()),
            client
                .create_workflow(pb::CreateWorkflowRequest {
                    request_id: String::new(),
                    workflow: Some(workflow(&existing.id)),
                })
                .await
                .map(|_| ()),
        ];
        for result in results {
            assert_eq!(result.unwrap_err().code(), Code::PermissionDenied);
        }
    }

    let anonymous = harness
        .service
        .client(None)
        .await
        .get_agent(get_agent(&existing.id))
        .await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
    let platform = harness
        .service
        .client(Some(&harness.service.platform_token()))
        .await
        .get_agent(get_agent(&existing.id))
        .await;
    assert_eq!(platform.unwrap_err().code(), Code::PermissionDenied);
}
