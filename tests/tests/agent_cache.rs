//! The agent service's caching and queries, asserted by counting the statements it sends
//! to PostgreSQL, and its indexes, asserted with EXPLAIN on a table of 10,000 agents.

use std::time::Duration;

use agentic_e2e::Options;
use agentic_e2e::agent::{
    AgentClient, AgentFixture, AgentHarness, AgentService, agent, create_agent, create_mcp_server,
    get_agent, mask, mcp_server,
};
use agentic_platform::auth::roles;
use agentic_proto::agent::v1 as pb;
use tokio::time::Instant;

fn by_slug(slug: &str) -> pb::GetAgentBySlugRequest {
    pb::GetAgentBySlugRequest {
        slug: slug.to_owned(),
        read_mask: None,
    }
}

#[tokio::test]
async fn cached_reads_make_no_query_and_batch_get_and_list_make_one() {
    let harness = AgentHarness::start().await;
    let service = &harness.service;
    let (_, mut admin) = service.tenant().await;
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            create_agent(&mut admin, agent(&format!("count-{i:03}"), "m"))
                .await
                .id,
        );
    }

    let before = service.queries();
    let cold = admin.get_agent(get_agent(&ids[0])).await.expect("cold");
    assert_eq!(service.queries() - before, 1, "a cold get queries once");
    for _ in 0..5 {
        let warm = admin.get_agent(get_agent(&ids[0])).await.expect("warm");
        assert_eq!(warm.into_inner(), cold.get_ref().clone());
    }
    assert_eq!(service.queries() - before, 1, "cached gets make no query");

    let before = service.queries();
    admin
        .get_agent_by_slug(by_slug("count-007"))
        .await
        .expect("cold slug");
    for _ in 0..5 {
        admin
            .get_agent_by_slug(by_slug("count-007"))
            .await
            .expect("warm slug");
    }
    assert_eq!(
        service.queries() - before,
        1,
        "cached slug lookups make no query"
    );

    let before = service.queries();
    let batch = admin
        .batch_get_agents(pb::BatchGetAgentsRequest {
            ids: ids.clone(),
            read_mask: None,
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.agents.len(), 100);
    assert_eq!(service.queries() - before, 1, "a batch of 100 is one query");

    let before = service.queries();
    let page = admin
        .list_agents(pb::ListAgentsRequest {
            page_size: 20,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.agents.len(), 20);
    assert!(!page.next_page_token.is_empty());
    assert_eq!(service.queries() - before, 1, "a page is one query");
}

/// Reads `id` on `client` until `check` holds or the stated cross-replica bound passes.
async fn read_within_bound(
    client: &mut AgentClient,
    id: &str,
    check: impl Fn(&pb::Agent) -> bool,
) -> pb::Agent {
    let deadline = Instant::now() + Duration::from_millis(100);
    loop {
        let agent = client
            .get_agent(get_agent(id))
            .await
            .expect("get")
            .into_inner()
            .agent
            .expect("agent");
        if check(&agent) || Instant::now() > deadline {
            return agent;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_write_on_one_replica_is_fresh_on_another_including_tenant_wide_ones() {
    let harness = AgentHarness::start().await;
    let (tenant, mut on_a) = harness.service.tenant().await;
    let replica_b =
        AgentService::start_on(&harness.db.url, &harness.db.name, &Options::default()).await;
    let mut on_b = replica_b.client_as(tenant, roles::ADMIN).await;

    let server = create_mcp_server(&mut on_a, mcp_server("shared", "k")).await;
    let mut tooled = Vec::new();
    for i in 0..3 {
        let new = pb::Agent {
            mcp_server_ids: vec![server.id.clone()],
            ..agent(&format!("fresh-{i}"), "m")
        };
        tooled.push(create_agent(&mut on_a, new).await);
    }
    // Both replicas hold every agent, by id and by slug.
    for client in [&mut on_a, &mut on_b] {
        for agent in &tooled {
            client.get_agent(get_agent(&agent.id)).await.expect("warm");
            client
                .get_agent_by_slug(by_slug(&agent.slug))
                .await
                .expect("warm");
        }
    }
    let queries_on_b = replica_b.queries();
    on_b.get_agent(get_agent(&tooled[0].id))
        .await
        .expect("cached");
    assert_eq!(replica_b.queries(), queries_on_b, "B serves from its cache");

    // One agent renamed and re-slugged on A.
    on_a.update_agent(pb::UpdateAgentRequest {
        agent: Some(pb::Agent {
            id: tooled[0].id.clone(),
            name: "Renamed".into(),
            slug: "renamed".into(),
            ..Default::default()
        }),
        update_mask: mask(&["name", "slug"]),
    })
    .await
    .expect("update on A");
    let seen = read_within_bound(&mut on_b, &tooled[0].id, |a| a.name == "Renamed").await;
    assert_eq!(seen.slug, "renamed", "B reads the write");
    let old = on_b.get_agent_by_slug(by_slug(&tooled[0].slug)).await;
    assert_eq!(
        old.unwrap_err().code(),
        tonic::Code::NotFound,
        "old slug dropped on B"
    );
    let new = on_b
        .get_agent_by_slug(by_slug("renamed"))
        .await
        .expect("new slug on B");
    assert_eq!(new.into_inner().agent.expect("agent").id, tooled[0].id);

    // Deleting the server changes every agent that used it: one tenant-wide invalidation.
    on_a.delete_mcp_server(pb::DeleteMcpServerRequest {
        id: server.id.clone(),
    })
    .await
    .expect("delete server");
    for agent in &tooled {
        for (name, client) in [("A", &mut on_a), ("B", &mut on_b)] {
            let seen = read_within_bound(client, &agent.id, |a| a.mcp_server_ids.is_empty()).await;
            assert!(seen.mcp_server_ids.is_empty(), "replica {name}: {seen:?}");
        }
        let by_slug_on_b = on_b
            .get_agent_by_slug(by_slug(&agent.slug))
            .await
            .map(|r| r.into_inner().agent.expect("agent").mcp_server_ids);
        if let Ok(ids) = by_slug_on_b {
            assert!(ids.is_empty(), "slug entries are in the namespace too");
        }
    }
}

#[tokio::test]
async fn list_and_slug_lookups_use_indexes_on_ten_thousand_agents() {
    let harness = AgentHarness::start().await;
    let tenant = uuid::Uuid::now_v7();
    // 10,000 agents of this tenant (every tenth deleted) and 10,000 of others.
    harness
        .db
        .execute(&format!(
            "INSERT INTO agents.agents (id, tenant_id, name, slug, model, temperature, max_tokens,
                                        status, created_by, deleted_at)
             SELECT gen_random_uuid(),
                    CASE WHEN n <= 10000 THEN '{tenant}'::uuid ELSE gen_random_uuid() END,
                    'Agent ' || n, 'agent-' || n, 'model-' || (n % 7), 0.7, 2048,
                    (ARRAY['active', 'paused', 'archived'])[1 + n % 3], 'seed',
                    CASE WHEN n % 10 = 0 THEN now() END
             FROM generate_series(1, 20000) AS n;
             ANALYZE agents.agents;"
        ))
        .await;

    let live = format!("tenant_id = '{tenant}' AND deleted_at IS NULL");
    let after = uuid::Uuid::nil();
    for (what, query) in [
        (
            "list",
            format!("SELECT * FROM agents.agents WHERE {live} ORDER BY id LIMIT 21"),
        ),
        (
            "list, next page",
            format!(
                "SELECT * FROM agents.agents WHERE {live} AND id > '{after}' ORDER BY id LIMIT 21"
            ),
        ),
        (
            "list by status",
            format!(
                "SELECT * FROM agents.agents WHERE {live} AND status = 'paused' ORDER BY id LIMIT 21"
            ),
        ),
        (
            "get by slug",
            format!("SELECT * FROM agents.agents WHERE {live} AND slug = 'agent-5001' LIMIT 1"),
        ),
    ] {
        let plan = harness.db.explain(&query).await;
        assert!(
            !plan.contains("Seq Scan"),
            "{what} scans the table:\n{plan}"
        );
        assert!(plan.contains("Index"), "{what} uses no index:\n{plan}");
    }
    let slug_plan = harness
        .db
        .explain(&format!(
            "SELECT * FROM agents.agents WHERE {live} AND slug = 'agent-5001' LIMIT 1"
        ))
        .await;
    assert!(
        slug_plan.contains("agents_tenant_slug_live_key"),
        "{slug_plan}"
    );
}
