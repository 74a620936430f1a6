//! The deploy files, checked without a cluster or an engine: `kustomize build` renders
//! every kustomization and `kubernetes-validate --strict` accepts what it renders; the
//! Compose file passes the Compose specification's JSON schema (`check-jsonschema`); every
//! object a Kubernetes manifest refers to is one the kustomization renders (or the Secret
//! the README asks for); ports and probes match the services' own defaults; each service
//! has its autoscaler and disruption budget; and every setting named in the manifests and
//! the Compose file is one a service accepts (read from the services' command-line
//! definitions, not from a hand-kept list). The tools come from `scripts/tools.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use agentic_agent::AgentApp;
use agentic_conversation::ConversationApp;
use agentic_e2e::{local_tool, run_to_success};
use agentic_platform::server::readiness::LIVENESS;
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

/// Every kustomization (the base and each overlay), as `deploy/k8s/...` directories.
fn kustomizations() -> Vec<PathBuf> {
    let mut dirs = vec![deploy("k8s/base")];
    let overlays = std::fs::read_dir(deploy("k8s/overlays")).expect("deploy/k8s/overlays");
    let mut overlays: Vec<PathBuf> = overlays
        .map(|entry| entry.expect("an overlay").path())
        .filter(|dir| dir.join("kustomization.yaml").exists())
        .collect();
    overlays.sort();
    assert!(!overlays.is_empty(), "no overlay under deploy/k8s/overlays");
    dirs.extend(overlays);
    dirs
}

/// What `kustomize build` renders of `dir`.
fn build(dir: &Path) -> String {
    run_to_success(
        Command::new(local_tool("kustomize")).arg("build").arg(dir),
        &format!("kustomize build {dir:?}"),
    )
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("a YAML document"))
        .filter(|value| !value.is_null())
        .collect()
}

/// Every object the base kustomization renders.
fn rendered() -> Vec<Value> {
    documents(&build(&deploy("k8s/base")))
}

/// A Kubernetes memory quantity (`256Mi`, `1Gi`) in MiB.
fn mebibytes(quantity: &Value) -> u64 {
    let text = quantity.as_str().expect("a memory limit");
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let number: u64 = number.parse().expect("a number");
    match unit {
        "Mi" => number,
        "Gi" => number * 1024,
        other => panic!("unexpected memory unit {other} in {text}"),
    }
}

/// A setting's value in the rendered ConfigMap, if it sets it.
fn config_value(objects: &[Value], key: &str) -> Option<String> {
    objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .find_map(|o| o["data"][key].as_str().map(str::to_owned))
}

/// Any service's arguments: the shared settings are the same in each.
type ServiceArgsOf = UserApp;

/// The default of the setting read from `env`, from service `S`'s definition.
fn default_of<S: ServiceType>(env: &str) -> String {
    ServiceCli::<S>::augment_args(clap::Command::new("s"))
        .get_arguments()
        .find(|arg| arg.get_env().is_some_and(|e| e == env))
        .and_then(|arg| arg.get_default_values().first().cloned())
        .unwrap_or_else(|| panic!("{env} has no default"))
        .to_string_lossy()
        .into_owned()
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
            // Readiness asks for the whole server (""), which follows the database;
            // liveness and startup ask for LIVENESS, which answers while the process runs.
            for (probe, health_name) in [
                ("readinessProbe", ""),
                ("livenessProbe", LIVENESS),
                ("startupProbe", LIVENESS),
            ] {
                let grpc = &container[probe]["grpc"];
                assert_eq!(
                    grpc["port"].as_u64(),
                    Some(u64::from(spec.grpc_port)),
                    "{name}: {probe} asks grpc.health.v1 on the gRPC port"
                );
                assert_eq!(
                    grpc["service"].as_str().unwrap_or(""),
                    health_name,
                    "{name}: {probe} names a health service the server answers for"
                );
            }
            assert_eq!(container["args"][1], *name, "{name}: serves itself");
            // Memory: well under the seeds' 2 GB, and room for the L1 cache's budget
            // (its setting in the pod or the ConfigMap, else the service's default) and
            // the process beside it.
            let limit = mebibytes(&container["resources"]["limits"]["memory"]);
            assert!(limit <= 2048, "{name}: a memory limit of {limit} MiB");
            let l1 = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == "CACHE_L1_MAX_MB")
                .and_then(|v| v["value"].as_str().map(str::to_owned))
                .or_else(|| config_value(&objects, "CACHE_L1_MAX_MB"))
                .unwrap_or_else(|| default_of::<ServiceArgsOf>("CACHE_L1_MAX_MB"))
                .parse::<u64>()
                .expect("CACHE_L1_MAX_MB is a number");
            assert!(
                l1 + 96 <= limit,
                "{name}: an L1 budget of {l1} MB leaves too little of {limit} MiB"
            );
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

#[test]
fn every_kustomization_renders_and_passes_strict_kubernetes_validation() {
    let out = std::env::temp_dir().join(format!("agentic-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("a temporary directory");
    for dir in kustomizations() {
        let text = build(&dir);
        let objects = documents(&text);
        assert!(
            objects.iter().filter(|o| o["kind"] == "Deployment").count() == 4,
            "{dir:?} renders the four services"
        );
        let file = out.join("rendered.yaml");
        std::fs::write(&file, &text).expect("write the rendered manifests");
        run_to_success(
            Command::new(local_tool("kubernetes-validate"))
                .args(["--strict", "--quiet"])
                .arg(&file),
            &format!("kubernetes-validate --strict on {dir:?}"),
        );
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn each_service_has_an_autoscaler_at_the_seeds_cpu_target_and_a_disruption_budget() {
    let objects = rendered();
    for name in services().keys() {
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == *name)
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];

        let autoscalers: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                o["kind"] == "HorizontalPodAutoscaler"
                    && o["spec"]["scaleTargetRef"]["kind"] == "Deployment"
                    && o["spec"]["scaleTargetRef"]["name"] == *name
            })
            .collect();
        assert_eq!(autoscalers.len(), 1, "{name}: one HorizontalPodAutoscaler");
        let cpu = autoscalers[0]["spec"]["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["resource"]["name"] == "cpu")
            .unwrap_or_else(|| panic!("{name}: the autoscaler follows CPU"));
        assert_eq!(
            cpu["resource"]["target"]["averageUtilization"], 70,
            "{name}"
        );
        assert!(
            autoscalers[0]["spec"]["minReplicas"].as_u64() >= Some(2),
            "{name}: a disruption budget needs a second pod"
        );

        let budgets: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "PodDisruptionBudget")
            .filter(|o| {
                let selector = o["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .expect("matchLabels");
                !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels[k] == *v)
            })
            .collect();
        assert_eq!(
            budgets.len(),
            1,
            "{name}: one PodDisruptionBudget selects its pods"
        );
        // The Deployment's requests make the CPU target meaningful.
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert!(
            container["resources"]["requests"]["cpu"].is_string(),
            "{name}: requests CPU"
        );
    }
}

#[test]
fn the_compose_file_passes_the_compose_specification_schema() {
    run_to_success(
        Command::new(local_tool("check-jsonschema"))
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(deploy("compose/compose.yaml")),
        "check-jsonschema against the Compose specification",
    );
}
