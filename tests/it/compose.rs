//! `compose.jetstream.yaml` (README: "When one machine is not enough"), checked without a container
//! engine (none runs here): its NATS nodes form one JetStream cluster (every node routes to the two
//! others, one cluster name, a volume for each store directory), its daemons all point at every node
//! with `replicas` equal to the node count, and their environment is a configuration the real binary
//! accepts (`scanbridge check`), which a broken value in it would fail.

use std::collections::BTreeSet;

use serde_json::Value;

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/compose.jetstream.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    yaml.apply_merge().unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// The value after `flag` in a command.
fn arg<'a>(command: &[&'a str], flag: &str) -> &'a str {
    let i = command.iter().position(|a| *a == flag);
    command[i.unwrap_or_else(|| panic!("{flag} in {command:?}")) + 1]
}

/// `scanbridge check` with the daemons' environment (and one override) over the shipped config.
fn check_with(env: &serde_json::Map<String, Value>, over: Option<(&str, &str)>) -> (i32, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scanbridge"));
    cmd.args(["check", "--config", "config.toml", "--rules", "rules"])
        .current_dir(root);
    for (k, _) in std::env::vars() {
        if k.starts_with("SCANBRIDGE__") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v.as_str().unwrap());
    }
    if let Some((k, v)) = over {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_compose_file_is_one_nats_cluster_and_daemons_sharing_it() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    let nats: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, s)| s["image"].as_str().is_some_and(|i| i.starts_with("nats:")))
        .collect();
    assert_eq!(nats.len(), 3, "three NATS nodes");
    let names: BTreeSet<&str> = nats.iter().map(|(n, _)| n.as_str()).collect();
    let mut clusters = BTreeSet::new();
    for (name, s) in &nats {
        let command = strings(&s["command"]);
        assert!(command.contains(&"-js"), "{name}: JetStream on");
        assert_eq!(
            arg(&command, "-n"),
            name.as_str(),
            "server names are unique"
        );
        clusters.insert(arg(&command, "--cluster_name"));
        assert_eq!(arg(&command, "--cluster"), "nats://0.0.0.0:6222");
        let routes: BTreeSet<&str> = arg(&command, "--routes").split(',').collect();
        let others: BTreeSet<String> = names
            .iter()
            .filter(|n| **n != name.as_str())
            .map(|n| format!("nats://{n}:6222"))
            .collect();
        assert_eq!(
            routes,
            others.iter().map(String::as_str).collect(),
            "{name} routes to the other nodes"
        );
        let store_dir = arg(&command, "-sd");
        let volumes = strings(&s["volumes"]);
        assert!(
            volumes
                .iter()
                .any(|v| v.ends_with(&format!(":{store_dir}"))),
            "{name}: its store directory {store_dir} is a volume: {volumes:?}"
        );
    }
    assert_eq!(clusters.len(), 1, "one cluster: {clusters:?}");

    let daemons: Vec<(&String, &Value)> =
        services.iter().filter(|(_, s)| s["build"] == ".").collect();
    assert!(daemons.len() >= 2, "at least two daemons");
    let mut host_ports = BTreeSet::new();
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    for (name, s) in &daemons {
        let env = s["environment"].as_object().unwrap();
        assert_eq!(env["SCANBRIDGE__STORE__BACKEND"], "jetstream", "{name}");
        let servers: BTreeSet<&str> = env["SCANBRIDGE__STORE__JETSTREAM__SERVERS"]
            .as_str()
            .unwrap()
            .split(',')
            .collect();
        let every_node: BTreeSet<String> =
            names.iter().map(|n| format!("nats://{n}:4222")).collect();
        assert_eq!(
            servers,
            every_node.iter().map(String::as_str).collect(),
            "{name} knows every node"
        );
        assert_eq!(env["SCANBRIDGE__STORE__JETSTREAM__REPLICAS"], "3", "{name}");
        for p in strings(&s["ports"]) {
            let (host, container) = p.split_once(':').unwrap();
            assert!(
                host_ports.insert(host.to_owned()),
                "{name}: port {host} taken twice"
            );
            assert!(
                dockerfile.contains(&format!("SCANBRIDGE__SERVER__LISTEN=0.0.0.0:{container}")),
                "{name}: the image listens on {container}"
            );
        }
        // The real binary accepts this environment, and reads it (a bad prefix fails the check).
        let (code, text) = check_with(env, None);
        assert_eq!(code, 0, "{name}: {text}");
        let bad = Some(("SCANBRIDGE__STORE__JETSTREAM__PREFIX", "two words"));
        let (code, text) = check_with(env, bad);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("store.jetstream.prefix"), "{text}");
    }
}
