//! The deployment files (`deploy/`, `docker-compose.yml`) against the server they deploy. Docker
//! and a cluster are not available here, so nothing is run in them; instead every file parses,
//! every `SUMMIT_*` variable they set is one `summit-config --help` lists, the Kubernetes
//! manifests keep what production needs (checked on their parsed structure), every metric the
//! alerting rules and the dashboard query is one a running server exports, and promtool accepts
//! the Prometheus files and passes the rules' unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value as Json, json};
use serde_yaml_ng::Value as Yaml;
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;

use crate::common::{self, TestServer, meta};

// ---- reading the files -----------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every YAML file under `deploy/`, and `docker-compose.yml`, as paths relative to the repo.
fn yaml_files() -> Vec<String> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("reading deploy/") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
            {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo().join("deploy"), &mut found);
    let mut files: Vec<String> = found
        .iter()
        .map(|path| {
            path.strip_prefix(repo())
                .expect("under the repo")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.push("docker-compose.yml".into());
    files.sort();
    files
}

/// Every document of a YAML file, with merge keys (`<<: *anchor`) applied.
fn yaml_documents(relative: &str) -> Vec<Yaml> {
    use serde::Deserialize;
    let text = read(relative);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = Yaml::deserialize(document)
                .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{relative}: merge keys: {e}"));
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn yaml(relative: &str) -> Yaml {
    let mut documents = yaml_documents(relative);
    assert_eq!(documents.len(), 1, "{relative} holds one document");
    documents.remove(0)
}

fn dashboard() -> Json {
    serde_json::from_str(&read("deploy/grafana/summit-config.json"))
        .expect("the dashboard is valid JSON")
}

fn text(value: &Yaml) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string: {value:?}"))
}

fn seq(value: &Yaml) -> &Vec<Yaml> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("a list: {value:?}"))
}

fn keys(value: &Yaml) -> impl Iterator<Item = &str> {
    value
        .as_mapping()
        .into_iter()
        .flat_map(|mapping| mapping.keys())
        .filter_map(Yaml::as_str)
}

/// The Kubernetes objects the kustomization applies, and the migration Job beside it.
struct Manifests {
    objects: Vec<Yaml>,
    migrate_job: Yaml,
}

impl Manifests {
    fn load() -> Manifests {
        let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
        let objects = seq(&kustomization["resources"])
            .iter()
            .flat_map(|file| yaml_documents(&format!("deploy/kubernetes/{}", text(file))))
            .collect();
        Manifests {
            objects,
            migrate_job: yaml("deploy/kubernetes/migrate-job.yaml"),
        }
    }

    fn one(&self, kind: &str, name: &str) -> &Yaml {
        let found: Vec<&Yaml> = self
            .objects
            .iter()
            .filter(|o| {
                o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
            })
            .collect();
        assert_eq!(found.len(), 1, "exactly one {kind} {name}");
        found[0]
    }

    fn deployment(&self) -> &Yaml {
        self.one("Deployment", "summit-config")
    }

    fn config_map(&self) -> &Yaml {
        self.one("ConfigMap", "summit-config")
    }

    /// The server container of the Deployment.
    fn server(&self) -> &Yaml {
        container(
            &self.deployment()["spec"]["template"]["spec"],
            "summit-config",
        )
    }

    /// The variable in the server container: its own `env` entry's `value`, or the entry
    /// itself when it has a `valueFrom`; else the ConfigMap's value (the container's own
    /// entries win, as in Kubernetes).
    fn server_env(&self, name: &str) -> Option<&Yaml> {
        let server = self.server();
        if let Some(entry) = env_entry(server, name) {
            return Some(if entry["value"].is_null() {
                entry
            } else {
                &entry["value"]
            });
        }
        let imports_config_map = seq(&server["envFrom"])
            .iter()
            .any(|from| from["configMapRef"]["name"].as_str() == Some("summit-config"));
        assert!(imports_config_map, "the server imports the ConfigMap");
        self.config_map()["data"].get(name)
    }

    /// The value of a `secretKeyRef`, checked to exist in a Secret of the kustomization.
    fn secret_value(&self, reference: &Yaml) -> &Yaml {
        let reference = &reference["valueFrom"]["secretKeyRef"];
        let secret = self.one("Secret", text(&reference["name"]));
        secret["stringData"]
            .get(text(&reference["key"]))
            .unwrap_or_else(|| panic!("Secret {reference:?} has the key"))
    }
}

fn container<'a>(pod_spec: &'a Yaml, name: &str) -> &'a Yaml {
    seq(&pod_spec["containers"])
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("a container named {name}"))
}

fn env_entry<'a>(container: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|entry| entry["name"].as_str() == Some(name))
}

/// The `env` and `envFrom`-imported variable names a pod spec's containers set.
fn pod_variables(pod_spec: &Yaml, config_maps: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut names = Vec::new();
    for container in seq(&pod_spec["containers"]) {
        for entry in container["env"].as_sequence().into_iter().flatten() {
            names.push(text(&entry["name"]).to_owned());
        }
        for from in container["envFrom"].as_sequence().into_iter().flatten() {
            let map = text(&from["configMapRef"]["name"]);
            names.extend(config_maps.get(map).cloned().unwrap_or_default());
        }
    }
    names
}

/// The numeric uid of the Dockerfile's runtime `USER`.
fn dockerfile_uid() -> i64 {
    let dockerfile = read("Dockerfile");
    let user = dockerfile
        .lines()
        .filter_map(|line| line.trim().strip_prefix("USER "))
        .next_back()
        .expect("the Dockerfile sets a USER");
    user.split(':')
        .next()
        .and_then(|uid| uid.trim().parse().ok())
        .unwrap_or_else(|| panic!("the Dockerfile's USER is numeric: {user}"))
}

/// The base image of the Dockerfile's last stage (the runtime image).
fn dockerfile_runtime_image() -> String {
    read("Dockerfile")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("FROM "))
        .next_back()
        .expect("the Dockerfile has a FROM")
        .split_whitespace()
        .next()
        .expect("an image")
        .to_owned()
}

/// Every `SUMMIT_*` variable `summit-config --help` documents.
fn server_settings() -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_summit-config"))
        .arg("--help")
        .output()
        .expect("summit-config --help runs");
    assert!(output.status.success(), "summit-config --help succeeds");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let settings: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| {
            // `[env: NAME=value]`, or `[env: NAME]` for settings whose values are hidden.
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| name.starts_with("SUMMIT_"))
        .collect();
    assert!(
        settings.contains("SUMMIT_DATABASE_URL"),
        "the help lists the settings' variables: {help}"
    );
    settings
}

// ---- PromQL ----------------------------------------------------------------------------------

/// The metric names a PromQL expression reads: identifiers starting with `summit_`, outside
/// string literals (label values) and Grafana variables (`$__rate_interval`). Prometheus's own
/// series (`up`) are not the server's and are left out.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    let mut after_dollar = false;
    while let Some(c) = chars.next() {
        if matches!(c, '"' | '\'' | '`') {
            while let Some(inner) = chars.next() {
                if inner == '\\' && c != '`' {
                    chars.next();
                } else if inner == c {
                    break;
                }
            }
            after_dollar = false;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut identifier = String::from(c);
            while let Some(&next) = chars.peek() {
                if next.is_ascii_alphanumeric() || next == '_' || next == ':' {
                    identifier.push(next);
                    chars.next();
                } else {
                    break;
                }
            }
            if !after_dollar && identifier.starts_with("summit_") {
                names.insert(identifier);
            }
            after_dollar = false;
        } else {
            after_dollar = c == '$';
        }
    }
    names
}

/// The alerting rules: (alert name, rule).
fn alert_rules() -> Vec<(String, Yaml)> {
    let rules = yaml("deploy/prometheus/summit-config.rules.yml");
    seq(&rules["groups"])
        .iter()
        .flat_map(|group| seq(&group["rules"]).iter())
        .map(|rule| (text(&rule["alert"]).to_owned(), rule.clone()))
        .collect()
}

/// Every PromQL expression of the dashboard: panel targets and query variables.
fn dashboard_exprs() -> Vec<String> {
    let dashboard = dashboard();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("a target's expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    exprs
}

/// `label_values(metric, label)` is Grafana's, not PromQL: its metric is the expression.
fn as_promql(expr: &str) -> String {
    let expr = expr
        .replace("$__rate_interval", "5m")
        .replace("$__range", "1h")
        .replace("$instance", ".*");
    match expr.strip_prefix("label_values(") {
        Some(rest) => rest.split(',').next().expect("a metric").trim().to_owned(),
        None => expr,
    }
}

/// The heading anchors of a Markdown file, as GitHub makes them.
fn markdown_anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// `promtool`: where .ci/run unpacks it, else on PATH. `None` (after saying why) when it is
/// missing outside CI; under CI a missing promtool fails the test.
fn promtool() -> Option<PathBuf> {
    let unpacked = std::env::var_os("HOME").map(|home| {
        PathBuf::from(home).join(".cache/summit-config-test-tools/prometheus/usr/bin/promtool")
    });
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("promtool"));
    let found = unpacked
        .into_iter()
        .chain(on_path)
        .find(|path| path.is_file());
    if found.is_none() {
        let why = "promtool is neither in ~/.cache/summit-config-test-tools/prometheus/usr/bin \
                   nor on PATH (.ci/run unpacks it from the OS package prometheus)";
        assert!(!common::ci_is_set(), "{why}");
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED promtool checks: {why} ***\n"
        );
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str], dir: &Path) {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---- the files parse -------------------------------------------------------------------------

#[test]
fn every_deploy_file_parses() {
    let files = yaml_files();
    for expected in [
        "deploy/kubernetes/kustomization.yaml",
        "deploy/kubernetes/deployment.yaml",
        "deploy/prometheus/summit-config.rules.yml",
        "deploy/prometheus/prometheus.yml",
        "deploy/otel-collector.yaml",
        "docker-compose.yml",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} is there: {files:?}"
        );
    }
    for file in &files {
        assert!(!yaml_documents(file).is_empty(), "{file} holds a document");
    }
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "summit-config");
    assert!(
        dashboard["panels"].as_array().expect("panels").len() > 10,
        "the dashboard has its panels"
    );
}

#[test]
fn kustomization_lists_every_manifest_but_the_migration_job() {
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    let listed: BTreeSet<&str> = seq(&kustomization["resources"]).iter().map(text).collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .expect("deploy/kubernetes")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name != "kustomization.yaml" && name != "migrate-job.yaml")
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    assert_eq!(listed, present, "kustomization.yaml lists every manifest");
    let manifests = Manifests::load();
    let kinds: BTreeSet<&str> = manifests.objects.iter().map(|o| text(&o["kind"])).collect();
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(kind), "a {kind}: {kinds:?}");
    }
}

/// kubectl renders the kustomization offline (no cluster needed) into the objects the files
/// hold. kubectl is not something .ci/run can install, so without it this check is skipped.
#[test]
fn kubectl_kustomize_renders_the_manifests() {
    let output = match Command::new("kubectl")
        .args(["kustomize", "deploy/kubernetes"])
        .current_dir(repo())
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED kubectl kustomize: kubectl does not run ({error}) ***\n"
            );
            return;
        }
    };
    assert!(
        output.status.success(),
        "kubectl kustomize deploy/kubernetes: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    use serde::Deserialize;
    let rendered = String::from_utf8(output.stdout).expect("UTF-8");
    let rendered: Vec<Yaml> = serde_yaml_ng::Deserializer::from_str(&rendered)
        .map(|document| Yaml::deserialize(document).expect("kubectl renders YAML"))
        .collect();
    let names = |objects: &[Yaml]| -> BTreeSet<(String, String)> {
        objects
            .iter()
            .map(|o| {
                (
                    text(&o["kind"]).to_owned(),
                    text(&o["metadata"]["name"]).to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(names(&rendered), names(&Manifests::load().objects));
    let deployment = rendered
        .iter()
        .find(|o| o["kind"].as_str() == Some("Deployment"))
        .expect("a Deployment");
    let image = text(&container(&deployment["spec"]["template"]["spec"], "summit-config")["image"]);
    assert!(
        image.contains('/') && image.contains(':'),
        "the image is set: {image}"
    );
}

// ---- settings exist --------------------------------------------------------------------------

#[test]
fn every_summit_variable_the_deploy_files_set_is_a_server_setting() {
    let settings = server_settings();
    let mut used: BTreeMap<String, String> = BTreeMap::new();

    // Kubernetes: ConfigMap keys and container env of every pod template.
    let mut documents = Vec::new();
    for file in yaml_files()
        .iter()
        .filter(|f| f.starts_with("deploy/kubernetes/"))
    {
        documents.extend(yaml_documents(file).into_iter().map(|d| (file.clone(), d)));
    }
    let config_maps: BTreeMap<String, Vec<String>> = documents
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some("ConfigMap"))
        .map(|(_, d)| {
            let name = text(&d["metadata"]["name"]).to_owned();
            (name, keys(&d["data"]).map(str::to_owned).collect())
        })
        .collect();
    for (file, document) in &documents {
        let pod_spec = match document["kind"].as_str() {
            Some("Deployment") | Some("Job") => &document["spec"]["template"]["spec"],
            _ => continue,
        };
        for name in pod_variables(pod_spec, &config_maps) {
            used.entry(name).or_insert_with(|| file.clone());
        }
    }

    // Compose: the environment of every service (merge keys applied).
    let compose = yaml("docker-compose.yml");
    for (service, definition) in compose["services"].as_mapping().expect("services") {
        let environment = &definition["environment"];
        let names: Vec<String> = match environment {
            Yaml::Mapping(_) => keys(environment).map(str::to_owned).collect(),
            Yaml::Sequence(items) => items
                .iter()
                .map(|item| text(item).split('=').next().unwrap_or_default().to_owned())
                .collect(),
            _ => Vec::new(),
        };
        for name in names {
            used.entry(name)
                .or_insert_with(|| format!("docker-compose.yml ({})", text(service)));
        }
    }

    let used: BTreeMap<String, String> = used
        .into_iter()
        .filter(|(name, _)| name.starts_with("SUMMIT_"))
        .collect();
    for expected in [
        "SUMMIT_DATABASE_URL",
        "SUMMIT_ADMIN_TOKEN",
        "SUMMIT_SECRET_KEY_FILE",
    ] {
        assert!(
            used.contains_key(expected),
            "{expected} is set somewhere: {used:?}"
        );
    }
    let unknown: Vec<String> = used
        .iter()
        .filter(|(name, _)| !settings.contains(*name))
        .map(|(name, file)| format!("{name} (in {file})"))
        .collect();
    assert!(
        unknown.is_empty(),
        "set in the deploy files but not a setting of `summit-config --help`: {unknown:?}"
    );
}

// ---- Kubernetes ------------------------------------------------------------------------------

#[test]
fn deployment_runs_three_replicas_on_postgres_with_probes_and_resources() {
    let manifests = Manifests::load();
    let deployment = manifests.deployment();
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(3));
    let server = manifests.server();

    let ports: BTreeMap<&str, i64> = seq(&server["ports"])
        .iter()
        .map(|p| {
            (
                text(&p["name"]),
                p["containerPort"].as_i64().expect("a port"),
            )
        })
        .collect();
    assert_eq!(ports.get("http"), Some(&8080));
    assert_eq!(ports.get("grpc"), Some(&50051));

    for (probe, path) in [
        ("startupProbe", "/live"),
        ("livenessProbe", "/live"),
        ("readinessProbe", "/ready"),
    ] {
        let get = &server[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        let port = &get["port"];
        let port = port
            .as_i64()
            .or_else(|| port.as_str().and_then(|name| ports.get(name).copied()));
        assert_eq!(port, Some(8080), "{probe} asks the REST port");
    }

    for kind in ["requests", "limits"] {
        assert!(
            server["resources"][kind]["memory"].as_str().is_some(),
            "memory {kind}"
        );
    }
    assert!(
        server["resources"]["requests"]["cpu"].as_str().is_some(),
        "a CPU request"
    );

    let value = |name: &str| {
        manifests
            .server_env(name)
            .unwrap_or_else(|| panic!("the server gets {name}"))
    };
    assert_eq!(text(value("SUMMIT_HTTP_ADDR")), "0.0.0.0:8080");
    assert_eq!(text(value("SUMMIT_GRPC_ADDR")), "0.0.0.0:50051");
    assert_eq!(text(value("SUMMIT_LOG_FORMAT")), "json");
    let database_url = manifests.secret_value(value("SUMMIT_DATABASE_URL"));
    assert!(
        text(database_url).starts_with("postgres://"),
        "replicas share PostgreSQL"
    );
    manifests.secret_value(value("SUMMIT_ADMIN_TOKEN"));

    // A shutdown has time for the preStop pause and a request that runs to its timeout.
    let request_timeout: i64 = text(value("SUMMIT_REQUEST_TIMEOUT_SECS"))
        .parse()
        .expect("seconds");
    let pause: i64 = seq(&server["lifecycle"]["preStop"]["exec"]["command"])
        .last()
        .and_then(|s| s.as_str()?.parse().ok())
        .unwrap_or(0);
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    assert!(grace > pause + request_timeout, "grace {grace}s");
}

#[test]
fn deployment_runs_as_the_images_user_on_a_read_only_root() {
    let manifests = Manifests::load();
    let pod = &manifests.deployment()["spec"]["template"]["spec"];
    let server = manifests.server();
    let uid = dockerfile_uid();
    let (pod_context, context) = (&pod["securityContext"], &server["securityContext"]);
    let either = |key: &str| {
        let own = &context[key];
        if own.is_null() {
            &pod_context[key]
        } else {
            own
        }
    };
    assert_eq!(either("runAsNonRoot").as_bool(), Some(true));
    assert_eq!(
        either("runAsUser").as_i64(),
        Some(uid),
        "the Dockerfile's uid"
    );
    assert_eq!(
        either("seccompProfile")["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(context["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(context["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert!(
        seq(&context["capabilities"]["drop"])
            .iter()
            .any(|c| c.as_str() == Some("ALL")),
        "every capability dropped"
    );

    // The read-only root leaves /tmp writable, on an emptyDir.
    let volumes = seq(&pod["volumes"]);
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("a volume named {name}"))
    };
    let mounts = seq(&server["volumeMounts"]);
    let tmp = mounts
        .iter()
        .find(|m| m["mountPath"].as_str() == Some("/tmp"))
        .expect("/tmp is mounted");
    assert!(
        volume(text(&tmp["name"]))["emptyDir"].is_mapping(),
        "/tmp is an emptyDir"
    );

    // Every replica reads one secret-store key, from a Secret mounted where
    // SUMMIT_SECRET_KEY_FILE points.
    let key_file = text(
        manifests
            .server_env("SUMMIT_SECRET_KEY_FILE")
            .expect("the key file"),
    );
    let mount = mounts
        .iter()
        .find(|m| key_file.starts_with(&format!("{}/", text(&m["mountPath"]))))
        .expect("the key file's directory is mounted");
    let file_in_volume = &key_file[text(&mount["mountPath"]).len() + 1..];
    let secret_volume = &volume(text(&mount["name"]))["secret"];
    let item = seq(&secret_volume["items"])
        .iter()
        .find(|item| item["path"].as_str() == Some(file_in_volume))
        .expect("the Secret volume projects the key file");
    let secret = manifests.one("Secret", text(&secret_volume["secretName"]));
    assert!(
        secret["stringData"].get(text(&item["key"])).is_some(),
        "the key file's Secret has the key"
    );

    // An exec preStop needs its command in the runtime image: no scratch or distroless.
    if !server["lifecycle"]["preStop"]["exec"].is_null() {
        let runtime = dockerfile_runtime_image();
        assert!(
            !runtime.contains("distroless") && runtime != "scratch",
            "the runtime image {runtime} has no shell tools for an exec preStop"
        );
    }
}

#[test]
fn service_and_disruption_budget_cover_the_deployments_pods() {
    let manifests = Manifests::load();
    let pod_labels = &manifests.deployment()["spec"]["template"]["metadata"]["labels"];
    let selects_pods = |selector: &Yaml| {
        keys(selector).all(|key| selector[key].as_str() == pod_labels[key].as_str())
            && selector.as_mapping().is_some_and(|m| !m.is_empty())
    };

    let service = manifests.one("Service", "summit-config");
    assert!(
        selects_pods(&service["spec"]["selector"]),
        "the Service selects the pods"
    );
    let ports = seq(&service["spec"]["ports"]);
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("a Service port named {name}"))
    };
    assert_eq!(port("http")["port"].as_i64(), Some(8080));
    assert_eq!(port("grpc")["port"].as_i64(), Some(50051));
    assert_eq!(port("grpc")["appProtocol"].as_str(), Some("grpc"));

    let budget = manifests.one("PodDisruptionBudget", "summit-config");
    assert!(
        selects_pods(&budget["spec"]["matchLabels"])
            || selects_pods(&budget["spec"]["selector"]["matchLabels"]),
        "the budget selects the pods"
    );
    let min_available = budget["spec"]["minAvailable"].as_i64();
    let max_unavailable = budget["spec"]["maxUnavailable"].as_i64();
    assert!(
        min_available == Some(2) || max_unavailable == Some(1),
        "at most one replica disrupted at a time"
    );
}

#[test]
fn migration_job_migrates_the_deployments_database() {
    let manifests = Manifests::load();
    let job = &manifests.migrate_job;
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let pod = &job["spec"]["template"]["spec"];
    let migrate = container(pod, "migrate");
    assert_eq!(migrate["args"], Yaml::from(vec!["migrate"]));
    let url = env_entry(migrate, "SUMMIT_DATABASE_URL").expect("the database URL");
    assert_eq!(
        url["valueFrom"],
        manifests
            .server_env("SUMMIT_DATABASE_URL")
            .expect("the server's")["valueFrom"],
        "the Job reads the Deployment's Secret"
    );
    assert_eq!(
        migrate["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
}

// ---- compose ---------------------------------------------------------------------------------

#[test]
fn compose_runs_two_replicas_with_postgres_a_collector_and_prometheus() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    for replica in ["summit-1", "summit-2"] {
        let environment = &services[replica]["environment"];
        assert!(
            text(&environment["SUMMIT_DATABASE_URL"]).starts_with("postgres://"),
            "{replica} uses PostgreSQL"
        );
        assert_eq!(
            text(&environment["SUMMIT_OTLP_ENDPOINT"]),
            "http://otel-collector:4317",
            "{replica} sends traces to the collector"
        );
    }
    for service in ["postgres", "otel-collector", "prometheus"] {
        assert!(services[service].is_mapping(), "a {service} service");
    }

    // Every file a service mounts from the repository is there.
    for (name, service) in services.as_mapping().expect("services") {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = text(volume).split(':').next().expect("a source");
            if let Some(relative) = source.strip_prefix("./") {
                assert!(
                    repo().join(relative).exists(),
                    "{} mounts {source}, which is missing",
                    text(name)
                );
            }
        }
    }

    // Prometheus scrapes both replicas' REST ports.
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let targets: BTreeSet<&str> = seq(&prometheus["scrape_configs"])
        .iter()
        .flat_map(|job| seq(&job["static_configs"]).iter())
        .flat_map(|config| seq(&config["targets"]).iter().map(text))
        .collect();
    assert_eq!(targets, BTreeSet::from(["summit-1:8080", "summit-2:8080"]));

    // The collector takes OTLP/gRPC on 4317 and prints traces.
    let collector = yaml("deploy/otel-collector.yaml");
    assert!(
        text(&collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]).ends_with(":4317")
    );
    let traces = &collector["service"]["pipelines"]["traces"];
    assert_eq!(traces["receivers"], Yaml::from(vec!["otlp"]));
    assert_eq!(traces["exporters"], Yaml::from(vec!["debug"]));
}

// ---- Prometheus rules and the dashboard ------------------------------------------------------

#[test]
fn metric_names_skip_label_values_and_grafana_variables() {
    let names = metric_names(
        r#"sum(rate(summit_a_total{route="summit_not_a_metric",x=~'summit_no'}[$__rate_interval]))
           / on(instance) up{job="x"} + histogram_quantile(0.99, summit_b_seconds_bucket) $summit_var"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["summit_a_total".into(), "summit_b_seconds_bucket".into()])
    );
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_runbook_section() {
    let rules = alert_rules();
    let names: BTreeSet<&str> = rules.iter().map(|(name, _)| name.as_str()).collect();
    for required in [
        "SummitConfigDriftDetected",
        "SummitConfigDriftCritical",
        "SummitConfigApprovalStalled",
        "SummitConfigSecretRotationFailed",
        "SummitConfigDatabaseUnavailable",
        "SummitConfigReplicaDown",
        "SummitConfigWebhookDisabled",
        "SummitConfigDeploymentRolledBack",
    ] {
        assert!(names.contains(required), "an alert {required}");
    }
    let anchors = markdown_anchors(&read("docs/observability.md"));
    for (name, rule) in &rules {
        assert!(!text(&rule["expr"]).trim().is_empty(), "{name} has an expr");
        let severity = text(&rule["labels"]["severity"]);
        assert!(
            matches!(severity, "warning" | "critical"),
            "{name}: severity {severity}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                !text(&rule["annotations"][annotation]).is_empty(),
                "{name}: {annotation}"
            );
        }
        let runbook = text(&rule["annotations"]["runbook_url"]);
        let anchor = runbook
            .strip_prefix("docs/observability.md#")
            .unwrap_or_else(|| panic!("{name}: the runbook is in docs/observability.md"));
        assert!(
            anchors.contains(anchor),
            "{name}: docs/observability.md has #{anchor}"
        );
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "{name}: its section is named after it"
        );
    }
}

#[test]
fn promtool_accepts_the_rules_the_config_and_the_dashboards_queries() {
    let Some(promtool) = promtool() else {
        return;
    };
    let prometheus = repo().join("deploy/prometheus");
    run_promtool(
        &promtool,
        &["check", "rules", "summit-config.rules.yml"],
        &prometheus,
    );
    run_promtool(
        &promtool,
        &["check", "config", "prometheus.yml"],
        &prometheus,
    );
    run_promtool(
        &promtool,
        &["test", "rules", "summit-config.rules.test.yml"],
        &prometheus,
    );

    // The dashboard's queries, each as a recording rule, so promtool parses them too.
    let rules: Vec<Json> = dashboard_exprs()
        .iter()
        .enumerate()
        .map(|(i, expr)| json!({"record": format!("dashboard:query_{i}"), "expr": as_promql(expr)}))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dashboard.rules.yml");
    let groups = json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, serde_yaml_ng::to_string(&groups).expect("YAML")).expect("writing");
    run_promtool(
        &promtool,
        &["check", "rules", "dashboard.rules.yml"],
        dir.path(),
    );
}

/// Runs a write, reads (REST and gRPC) and a watch stream, then scrapes, so that what only
/// appears once used (request counters, commit histograms) is there too.
#[tokio::test]
async fn every_metric_the_rules_and_dashboard_query_is_exported() {
    let server = TestServer::spawn().await;
    server
        .put_config(
            "deploy-metrics",
            json!({"config": {"a": 1}, "metadata": meta("tester", "metrics")}),
        )
        .await;
    for _ in 0..2 {
        let (status, _) = server
            .get_json("/api/v1/configs/deploy-metrics/effective?environment=production")
            .await;
        assert_eq!(status, 200);
    }
    // An instance's report, so drift has a config and environment to count.
    let (_, effective) = server
        .get_json("/api/v1/configs/deploy-metrics/effective?environment=production")
        .await;
    let (status, _) = server
        .post_json(
            "/api/v1/configs/deploy-metrics/applied",
            &json!({"environment": "production", "instanceId": "deploy-metrics-1",
                    "version": effective["version"], "checksum": effective["checksum"]}),
        )
        .await;
    assert!(status < 300, "the applied report is taken: {status}");
    let mut grpc = ConfigServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .expect("gRPC connects");
    grpc.get_config(pb::GetConfigRequest {
        config_id: "deploy-metrics".into(),
    })
    .await
    .expect("GetConfig");
    let watch = server.get("/api/v1/watch?configId=deploy-metrics").await;
    assert_eq!(watch.status(), 200);

    let scrape = server.get("/metrics").await.text().await.expect("a scrape");
    drop(watch);
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();

    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, rule) in alert_rules() {
        for metric in metric_names(text(&rule["expr"])) {
            used.entry(metric)
                .or_default()
                .insert(format!("alert {name}"));
        }
    }
    for expr in dashboard_exprs() {
        for metric in metric_names(&expr) {
            used.entry(metric)
                .or_default()
                .insert("the dashboard".into());
        }
    }
    assert!(
        used.len() > 20,
        "the rules and the dashboard query the server: {used:?}"
    );
    let missing: Vec<String> = used
        .iter()
        .filter(|(metric, _)| !exported.contains(metric.as_str()))
        .map(|(metric, users)| {
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            format!("{metric} (in {})", users.join(", "))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not in /metrics ({} of {}): {missing:#?}\n(the scrape's summit_ series: {:?})",
        missing.len(),
        used.len(),
        exported
            .iter()
            .filter(|n| n.starts_with("summit_"))
            .collect::<Vec<_>>()
    );

    // Every metric the server exports is documented.
    let docs = read("docs/observability.md");
    let undocumented: BTreeSet<&str> = exported
        .iter()
        .filter(|name| name.starts_with("summit_"))
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
        })
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in docs/observability.md: {undocumented:?}"
    );
}
