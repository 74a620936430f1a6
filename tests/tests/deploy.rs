//! The deploy files, checked without a cluster or an engine: every object a Kubernetes
//! manifest refers to is one the kustomization renders (or the Secret the README asks for),
//! ports and probes match the services' own defaults, and every setting named in the
//! manifests and the Compose file is one a service accepts (read from the services'
//! command-line definitions, not from a hand-kept list).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use agentic_agent::AgentApp;
use agentic_conversation::ConversationApp;
use agentic_platform::service::{ServiceCli, ServiceSpec, ServiceType};
use agentic_rag::RagApp;
use agentic_user::UserApp;
use clap::Args;
use serde::Deserialize;
use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Every document of every resource the base kustomization lists.
fn rendered() -> Vec<Value> {
    let kustomization: Value = serde_norway::from_str(
        &std::fs::read_to_string(deploy("k8s/base/kustomization.yaml")).expect("kustomization"),
    )
    .expect("YAML");
    let mut objects = Vec::new();
    for resource in kustomization["resources"].as_array().expect("resources") {
        let path = deploy(&format!("k8s/base/{}", resource.as_str().expect("a path")));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).expect("a YAML document");
            if !value.is_null() {
                objects.push(value);
            }
        }
    }
    objects
}

/// The environment variables service `S` reads, from its command-line definition.
fn accepted<S: ServiceType>() -> BTreeSet<String> {
    ServiceCli::<S>::augment_args(clap::Command::new("s"))
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

/// Each service's name, default ports and accepted variables.
fn services() -> BTreeMap<&'static str, (ServiceSpec, BTreeSet<String>)> {
    BTreeMap::from([
        (UserApp::SPEC.name, (UserApp::SPEC, accepted::<UserApp>())),
        (
            AgentApp::SPEC.name,
            (AgentApp::SPEC, accepted::<AgentApp>()),
        ),
        (
            ConversationApp::SPEC.name,
            (ConversationApp::SPEC, accepted::<ConversationApp>()),
        ),
        (RagApp::SPEC.name, (RagApp::SPEC, accepted::<RagApp>())),
    ])
}

fn named<'a>(objects: &'a [Value], kind: &str) -> BTreeSet<&'a str> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect()
}

#[test]
fn every_reference_resolves_and_every_port_and_probe_matches_the_service() {
    let objects = rendered();
    let config_maps = named(&objects, "ConfigMap");
    let accounts = named(&objects, "ServiceAccount");
    let services = services();
    let config: BTreeSet<String> = objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .flat_map(|o| o["data"].as_object().expect("data").keys().cloned())
        .collect();

    let mut deployments = 0;
    for object in objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "Job")
    {
        let name = object["metadata"]["name"].as_str().expect("name");
        let pod = &object["spec"]["template"]["spec"];
        if let Some(account) = pod["serviceAccountName"].as_str() {
            assert!(
                accounts.contains(account),
                "{name}: no ServiceAccount {account}"
            );
        }
        for container in pod["containers"].as_array().expect("containers") {
            for source in container["envFrom"].as_array().into_iter().flatten() {
                if let Some(map) = source["configMapRef"]["name"].as_str() {
                    assert!(config_maps.contains(map), "{name}: no ConfigMap {map}");
                }
                if let Some(secret) = source["secretRef"]["name"].as_str() {
                    assert_eq!(
                        secret, "agentic",
                        "{name}: the README asks for the Secret agentic"
                    );
                }
            }
            if object["kind"] != "Deployment" {
                continue;
            }
            deployments += 1;
            let (spec, env) = &services[name];
            let port = |port_name: &str| {
                container["ports"]
                    .as_array()
                    .expect("ports")
                    .iter()
                    .find(|p| p["name"] == port_name)
                    .and_then(|p| p["containerPort"].as_u64())
                    .unwrap_or_else(|| panic!("{name}: no {port_name} port"))
            };
            assert_eq!(port("grpc"), u64::from(spec.grpc_port), "{name}: gRPC port");
            assert_eq!(
                port("admin"),
                u64::from(spec.admin_port),
                "{name}: admin port"
            );
            assert_eq!(
                container["readinessProbe"]["grpc"]["port"].as_u64(),
                Some(u64::from(spec.grpc_port)),
                "{name}: readiness asks grpc.health.v1 on the gRPC port"
            );
            assert_eq!(container["args"][1], *name, "{name}: serves itself");
            for variable in container["env"].as_array().into_iter().flatten() {
                let key = variable["name"].as_str().expect("env name");
                assert!(env.contains(key), "{name} does not read {key}");
            }
        }
    }
    assert_eq!(deployments, 4, "one Deployment per service");
    for key in &config {
        assert!(
            services.values().any(|(_, env)| env.contains(key)),
            "no service reads the ConfigMap's {key}"
        );
    }
}

#[test]
fn every_setting_in_the_compose_file_is_one_its_service_reads() {
    let mut compose: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(deploy("compose/compose.yaml")).expect("compose"),
    )
    .expect("YAML");
    // Anchors and `<<:` merges, as Compose reads them.
    compose.apply_merge().expect("merge keys");
    let compose: Value = serde_json::to_value(&compose).expect("JSON-like");
    let services = services();
    let mut checked = 0;
    for (name, (spec, env)) in &services {
        let service = &compose["services"][name];
        for key in service["environment"]
            .as_object()
            .expect("environment")
            .keys()
        {
            assert!(env.contains(key), "compose: {name} does not read {key}");
            checked += 1;
        }
        let ports: Vec<&str> = service["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for port in [spec.grpc_port, spec.admin_port] {
            assert!(
                ports
                    .iter()
                    .any(|p| p.ends_with(&format!(":{port}:{port}"))),
                "compose: {name} publishes {port} on loopback"
            );
        }
        let health = service["healthcheck"]["test"].to_string();
        assert!(
            health.contains(&format!("127.0.0.1:{}", spec.grpc_port)),
            "compose: {name}'s health check asks its gRPC port"
        );
    }
    assert!(checked > 20, "the services' environments were read");
}
