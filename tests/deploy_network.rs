//! deploy/k8s/networkpolicies.yaml *evaluated*: a small model of NetworkPolicy semantics
//! (below) applied to the pods the manifests make, asserting the exact reachability matrix
//! between the zones, that every zone namespace is default-deny, and that ingress and
//! egress rules each hold on their own.

use crate::deploy;

use deploy::*;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};

// ── Kubernetes NetworkPolicy evaluation ───────────────────────────────────────────────

/// Something that can be on either end of a connection.
#[derive(Clone, Debug)]
struct Endpoint {
    name: String,
    /// `None` for an address outside the cluster.
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    ip: [u8; 4],
    /// Named container ports, for policies that name a port instead of numbering it.
    named_ports: BTreeMap<String, u16>,
}

fn parse_ipv4(text: &str) -> [u8; 4] {
    let parts: Vec<u8> = text
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|e| panic!("ip {text}: {e}")))
        .collect();
    parts.try_into().unwrap_or_else(|_| panic!("ip {text}"))
}

fn in_cidr(ip: [u8; 4], cidr: &str) -> bool {
    let (net, len) = cidr
        .split_once('/')
        .unwrap_or_else(|| panic!("cidr {cidr}"));
    let len: u32 = len.parse().unwrap_or_else(|e| panic!("cidr {cidr}: {e}"));
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from_be_bytes(ip) & mask) == (u32::from_be_bytes(parse_ipv4(net)) & mask)
}

fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

/// A label selector; an absent selector is not handled here (callers decide what absence
/// means, because it differs between podSelector and namespaceSelector).
fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = labels_of(&selector["matchLabels"])
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector["matchExpressions"]
        .as_sequence()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values = string_list(&e["values"]);
            let have = labels.get(key);
            match e["operator"].as_str() {
                Some("In") => have.is_some_and(|h| values.contains(h)),
                Some("NotIn") => !have.is_some_and(|h| values.contains(h)),
                Some("Exists") => have.is_some(),
                Some("DoesNotExist") => have.is_none(),
                other => panic!("unknown selector operator {other:?}"),
            }
        });
    by_labels && by_expressions
}

struct Cluster {
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    policies: Vec<Value>,
}

impl Cluster {
    fn peer_matches(&self, peer: &Value, policy_ns: &str, other: &Endpoint) -> bool {
        if !peer["ipBlock"].is_null() {
            let block = &peer["ipBlock"];
            let cidr = block["cidr"]
                .as_str()
                .unwrap_or_else(|| panic!("ipBlock without cidr"));
            return in_cidr(other.ip, cidr)
                && !string_list(&block["except"])
                    .iter()
                    .any(|c| in_cidr(other.ip, c));
        }
        let Some(other_ns) = &other.namespace else {
            return false; // pod/namespace selectors never select outside addresses
        };
        let ns_ok = if peer["namespaceSelector"].is_null() {
            other_ns == policy_ns
        } else {
            let ns_labels = self.namespaces.get(other_ns).cloned().unwrap_or_default();
            selector_matches(&peer["namespaceSelector"], &ns_labels)
        };
        let pod_ok =
            peer["podSelector"].is_null() || selector_matches(&peer["podSelector"], &other.labels);
        ns_ok && pod_ok
    }

    fn port_matches(rule_ports: &Value, port: u16, protocol: &str, target: &Endpoint) -> bool {
        let Some(ports) = rule_ports.as_sequence() else {
            return true; // no ports: every port
        };
        ports.iter().any(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            if proto != protocol {
                return false;
            }
            let start = match &p["port"] {
                Value::Null => return true,
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(name) => target.named_ports.get(name).copied(),
                _ => None,
            };
            let Some(start) = start else { return false };
            let end = p["endPort"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(start);
            (start..=end).contains(&port)
        })
    }

    fn policy_types(policy: &Value) -> BTreeSet<String> {
        let explicit = string_list(&policy["spec"]["policyTypes"]);
        if !explicit.is_empty() {
            return explicit.into_iter().collect();
        }
        let mut types = set(&["Ingress"]);
        if !policy["spec"]["egress"].is_null() {
            types.insert("Egress".to_owned());
        }
        types
    }

    /// One direction: is `subject` allowed to send to / receive from `other`?
    fn allowed(
        &self,
        direction: &str,
        subject: &Endpoint,
        other: &Endpoint,
        port: u16,
        protocol: &str,
        port_owner: &Endpoint,
    ) -> bool {
        let Some(ns) = &subject.namespace else {
            return true; // outside the cluster: no policy applies
        };
        let (rules_key, peers_key) = match direction {
            "Ingress" => ("ingress", "from"),
            _ => ("egress", "to"),
        };
        let selecting: Vec<&Value> = self
            .policies
            .iter()
            .filter(|p| p["metadata"]["namespace"].as_str() == Some(ns.as_str()))
            .filter(|p| selector_matches(&p["spec"]["podSelector"], &subject.labels))
            .filter(|p| Self::policy_types(p).contains(direction))
            .collect();
        if selecting.is_empty() {
            return true; // not isolated in this direction
        }
        selecting.iter().any(|p| {
            p["spec"][rules_key]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|rule| {
                    let peers_ok = match rule[peers_key].as_sequence() {
                        None => true,
                        Some(peers) => peers.iter().any(|peer| self.peer_matches(peer, ns, other)),
                    };
                    peers_ok && Self::port_matches(&rule["ports"], port, protocol, port_owner)
                })
        })
    }

    fn can_connect(&self, from: &Endpoint, to: &Endpoint, port: u16, protocol: &str) -> bool {
        self.allowed("Egress", from, to, port, protocol, to)
            && self.allowed("Ingress", to, from, port, protocol, to)
    }
}

fn pod(name: &str, namespace: &str, labels: &[(&str, &str)], ip: &str) -> Endpoint {
    Endpoint {
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ip: parse_ipv4(ip),
        named_ports: BTreeMap::new(),
    }
}

/// The cluster as the manifests make it: one pod per workload (labels and container ports
/// from its template, an address from a pod CIDR), plus kube-dns and a public RPC address.
fn cluster_from_manifests() -> (Cluster, BTreeMap<String, Endpoint>, Vec<(String, u16)>) {
    let objects = k8s_objects();
    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for ns in of_kind(&objects, "Namespace") {
        let name = ns["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut labels = labels_of(&ns["metadata"]["labels"]);
        // Set by the API server on every namespace.
        labels.insert("kubernetes.io/metadata.name".to_owned(), name.clone());
        namespaces.insert(name, labels);
    }
    for extra in ["kube-system", "default"] {
        namespaces.insert(
            extra.to_owned(),
            [("kubernetes.io/metadata.name".to_owned(), extra.to_owned())].into(),
        );
    }

    let mut endpoints = BTreeMap::new();
    let mut served_ports = Vec::new();
    for (i, w) in workloads(&objects).into_iter().enumerate() {
        let name = w["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ns = w["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let labels = labels_of(&w["spec"]["template"]["metadata"]["labels"]);
        let mut named_ports = BTreeMap::new();
        for c in containers(w) {
            for p in c["ports"].as_sequence().into_iter().flatten() {
                let number = p["containerPort"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .unwrap_or_else(|| panic!("{name}: containerPort"));
                if let Some(port_name) = p["name"].as_str() {
                    named_ports.insert(port_name.to_owned(), number);
                }
                served_ports.push((name.clone(), number));
            }
        }
        endpoints.insert(
            name.clone(),
            Endpoint {
                name,
                namespace: Some(ns),
                labels,
                ip: [10, 244, 1, u8::try_from(i + 10).unwrap_or(250)],
                named_ports,
            },
        );
    }
    endpoints.insert(
        "kube-dns".to_owned(),
        pod(
            "kube-dns",
            "kube-system",
            &[("k8s-app", "kube-dns")],
            "10.96.0.10",
        ),
    );
    // A public chain RPC endpoint (TEST-NET-3; this is data, nothing is sent).
    endpoints.insert(
        "chain-rpc".to_owned(),
        Endpoint {
            name: "chain-rpc".to_owned(),
            namespace: None,
            labels: BTreeMap::new(),
            ip: parse_ipv4("203.0.113.7"),
            named_ports: BTreeMap::new(),
        },
    );
    let policies = of_kind(&objects, "NetworkPolicy")
        .into_iter()
        .cloned()
        .collect();
    (
        Cluster {
            namespaces,
            policies,
        },
        endpoints,
        served_ports,
    )
}

const SHARES: [&str; 3] = ["signer-share-0", "signer-share-1", "signer-share-2"];

/// The threshold key's paths: the signer (coordinator) to each share, and share to share
/// (the protocol mesh), all on the share port.
fn key_paths() -> Vec<(String, String, u16)> {
    let mut paths = Vec::new();
    for to in SHARES {
        paths.push(("signer".to_owned(), to.to_owned(), 50070));
        for from in SHARES.iter().filter(|f| **f != to) {
            paths.push(((*from).to_owned(), to.to_owned(), 50070));
        }
    }
    paths
}

#[test]
fn k8s_every_zone_namespace_is_default_deny() {
    let objects = k8s_objects();
    for ns in ZONE_NAMESPACES {
        let deny_all = of_kind(&objects, "NetworkPolicy").into_iter().any(|p| {
            p["metadata"]["namespace"].as_str() == Some(ns)
                && p["spec"]["podSelector"]
                    .as_mapping()
                    .is_some_and(|m| m.is_empty())
                && Cluster::policy_types(p) == set(&["Ingress", "Egress"])
                && p["spec"]["ingress"].is_null()
                && p["spec"]["egress"].is_null()
        });
        assert!(deny_all, "{ns} has no default-deny NetworkPolicy");
    }
}

#[test]
fn k8s_network_policies_encode_the_zone_rules() {
    let (cluster, ep, served_ports) = cluster_from_manifests();
    let e = |name: &str| -> &Endpoint { ep.get(name).unwrap_or_else(|| panic!("no pod {name}")) };

    // The complete matrix between workloads on the ports they serve: exactly these paths.
    let mut allowed = BTreeSet::new();
    for from in ep.values().filter(|p| p.namespace.is_some()) {
        for (to, port) in &served_ports {
            if from.name != *to && cluster.can_connect(from, e(to), *port, "TCP") {
                allowed.insert((from.name.clone(), to.clone(), *port));
            }
        }
    }
    let expected: BTreeSet<(String, String, u16)> = [
        ("host", "engine", 50051),
        ("host", "redis", 6379),
        ("engine", "postgres", 5432),
        ("engine", "redis", 6379),
        ("engine", "anvil", 8545),
        ("engine", "signer", 50061),
    ]
    .into_iter()
    .map(|(a, b, p)| (a.to_owned(), b.to_owned(), p))
    .chain(key_paths())
    .collect();
    assert_eq!(allowed, expected);

    // Nothing but the signer and the other shares reaches a share, on any port; above all
    // not the engine, which may reach the signer.
    for share in SHARES {
        // A pod talking to itself crosses no network and no policy governs it.
        for from in ep
            .values()
            .filter(|p| p.namespace.is_some() && p.name != share)
        {
            for port in [50070, 50061, 22, 443] {
                let want = port == 50070
                    && (from.name == "signer" || SHARES.contains(&from.name.as_str()));
                assert_eq!(
                    cluster.can_connect(from, e(share), port, "TCP"),
                    want,
                    "{} -> {share}:{port}",
                    from.name
                );
            }
        }
    }

    // Beyond the workloads: DNS and the outside world.
    let cases = [
        ("host", "kube-dns", 53, "UDP", true),
        ("host", "chain-rpc", 443, "TCP", false),
        ("host", "engine", 5432, "TCP", false),
        ("engine", "kube-dns", 53, "UDP", true),
        ("engine", "chain-rpc", 443, "TCP", true),
        ("engine", "chain-rpc", 22, "TCP", false),
        ("engine", "signer", 22, "TCP", false),
        ("signer", "kube-dns", 53, "UDP", true),
        ("signer", "signer-share-0", 22, "TCP", false),
        ("engine", "signer-share-0", 50070, "TCP", false),
        ("engine", "signer-share-1", 50070, "TCP", false),
        ("engine", "signer-share-2", 50070, "TCP", false),
        ("host", "signer-share-0", 50070, "TCP", false),
        ("signer-share-0", "chain-rpc", 443, "TCP", false),
        ("signer-share-0", "engine", 50051, "TCP", false),
        ("signer-share-0", "signer", 50061, "TCP", false),
        ("signer-share-0", "kube-dns", 53, "UDP", true),
        ("signer", "chain-rpc", 443, "TCP", false),
        ("signer", "engine", 50051, "TCP", false),
        ("redis", "chain-rpc", 443, "TCP", false),
        ("postgres", "chain-rpc", 443, "TCP", false),
        ("anvil", "signer", 50061, "TCP", false),
    ];
    for (from, to, port, proto, want) in cases {
        assert_eq!(
            cluster.can_connect(e(from), e(to), port, proto),
            want,
            "{from} -> {to}:{port}/{proto}"
        );
    }

    // Impostors: the engine's label alone, in the wrong namespace, opens nothing; an
    // unlabelled pod in the engine's own namespace opens nothing either. (This fails if
    // namespaceSelector and podSelector are written as two peers, which ORs them.)
    let engine_label = [("app.kubernetes.io/name", "engine")];
    let impostors = [
        pod(
            "fake-engine-a",
            "stratbox-intelligence",
            &engine_label,
            "10.244.9.1",
        ),
        pod(
            "fake-engine-default",
            "default",
            &engine_label,
            "10.244.9.2",
        ),
        pod(
            "debug",
            "stratbox-sandbox",
            &[("run", "debug")],
            "10.244.9.3",
        ),
        pod(
            "fake-host",
            "default",
            &[("app.kubernetes.io/name", "host")],
            "10.244.9.4",
        ),
        // The signer's and a share's labels, outside Zone C: they open no share.
        pod(
            "fake-signer-b",
            "stratbox-sandbox",
            &[("app.kubernetes.io/name", "signer")],
            "10.244.9.5",
        ),
        pod(
            "fake-share-a",
            "stratbox-intelligence",
            &[("app.kubernetes.io/name", "signer-share")],
            "10.244.9.6",
        ),
        pod(
            "debug-c",
            "stratbox-fortress",
            &[("run", "debug")],
            "10.244.9.7",
        ),
    ];
    for impostor in &impostors {
        for (to, port) in &served_ports {
            assert!(
                !cluster.can_connect(impostor, e(to), *port, "TCP"),
                "{} reaches {to}:{port}",
                impostor.name
            );
        }
    }
}

/// Each side must hold alone: the signer "assumes Zone B may be compromised", so its
/// ingress rule may not lean on Zone B's egress rules, and a host's egress rule may not
/// lean on anyone's ingress rules.
#[test]
fn k8s_ingress_and_egress_rules_each_hold_on_their_own() {
    let (cluster, ep, served_ports) = cluster_from_manifests();
    let e = |name: &str| -> &Endpoint { ep.get(name).unwrap_or_else(|| panic!("no pod {name}")) };
    let mut sources: Vec<Endpoint> = ep
        .values()
        .filter(|p| p.namespace.is_some())
        .cloned()
        .collect();
    let engine_label = [("app.kubernetes.io/name", "engine")];
    let host_label = [("app.kubernetes.io/name", "host")];
    sources.extend([
        pod(
            "fake-engine-a",
            "stratbox-intelligence",
            &engine_label,
            "10.244.9.1",
        ),
        pod(
            "fake-engine-c",
            "stratbox-fortress",
            &engine_label,
            "10.244.9.2",
        ),
        pod(
            "fake-engine-default",
            "default",
            &engine_label,
            "10.244.9.3",
        ),
        pod(
            "debug-b",
            "stratbox-sandbox",
            &[("run", "debug")],
            "10.244.9.4",
        ),
        pod("fake-host-b", "stratbox-sandbox", &host_label, "10.244.9.5"),
        pod("fake-host-default", "default", &host_label, "10.244.9.6"),
    ]);

    // Ingress alone: who may the destination's own policies admit?
    let mut admitted: BTreeSet<(String, String, u16)> = BTreeSet::new();
    for (to, port) in &served_ports {
        for from in &sources {
            if from.name != *to && cluster.allowed("Ingress", e(to), from, *port, "TCP", e(to)) {
                admitted.insert((from.name.clone(), to.clone(), *port));
            }
        }
    }
    let expected: BTreeSet<(String, String, u16)> = [
        ("host", "engine", 50051),
        ("host", "redis", 6379),
        ("engine", "postgres", 5432),
        ("engine", "redis", 6379),
        ("engine", "anvil", 8545),
        ("engine", "signer", 50061),
    ]
    .into_iter()
    .map(|(a, b, p)| (a.to_owned(), b.to_owned(), p))
    .chain(key_paths())
    .collect();
    assert_eq!(admitted, expected, "ingress rules alone");

    // Egress alone, from the host: the bus, the engine's port, DNS; nothing else, even
    // towards pods whose own ingress rules are wide open (the impostors in `default`).
    let mut targets: Vec<(Endpoint, u16, &str)> = served_ports
        .iter()
        .map(|(name, port)| (e(name).clone(), *port, "TCP"))
        .collect();
    targets.push((e("kube-dns").clone(), 53, "UDP"));
    targets.push((e("chain-rpc").clone(), 443, "TCP"));
    for fake in &sources[sources.len() - 6..] {
        targets.push((fake.clone(), 50051, "TCP"));
        targets.push((fake.clone(), 6379, "TCP"));
    }
    let host_egress: BTreeSet<(String, u16)> = targets
        .iter()
        .filter(|(to, port, proto)| cluster.allowed("Egress", e("host"), to, *port, proto, to))
        .map(|(to, port, _)| (to.name.clone(), *port))
        .collect();
    assert_eq!(
        host_egress,
        [("engine", 50051), ("redis", 6379), ("kube-dns", 53)]
            .into_iter()
            .map(|(n, p)| (n.to_owned(), p))
            .collect::<BTreeSet<_>>(),
        "host egress alone"
    );
    // Egress alone, from the signer: its three shares and DNS to find them, nothing else
    // (not the engine, not the chain).
    let egress_of = |from: &str| -> BTreeSet<(String, u16)> {
        targets
            .iter()
            .filter(|(to, port, proto)| {
                to.name != from && cluster.allowed("Egress", e(from), to, *port, proto, to)
            })
            .map(|(to, port, _)| (to.name.clone(), *port))
            .collect()
    };
    let mut expected: BTreeSet<(String, u16)> =
        SHARES.iter().map(|s| ((*s).to_owned(), 50070)).collect();
    expected.insert(("kube-dns".to_owned(), 53));
    assert_eq!(egress_of("signer"), expected, "signer egress alone");
    // A share: the other shares (the protocol mesh) and DNS, nothing else.
    for share in SHARES {
        let mut expected: BTreeSet<(String, u16)> = SHARES
            .iter()
            .filter(|s| **s != share)
            .map(|s| ((*s).to_owned(), 50070))
            .collect();
        expected.insert(("kube-dns".to_owned(), 53));
        assert_eq!(egress_of(share), expected, "{share} egress alone");
    }
}
