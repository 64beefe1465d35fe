//! "Say when it is fixed", end to end through the real binary: a rule with `notify_resolved = true`
//! pages on a CRITICAL scan and tells the same targets when a later scan of the same image is clean
//! (PagerDuty `resolve` with the same `dedup_key`, Opsgenie close by alias, a "resolved" message in
//! Teams, Slack and email, a `"status": "resolved"` webhook), keeps the alert state across a restart,
//! lets a silence cover a resolve, resolves a CLOSED Inspector2 finding, and shows it all in `route`,
//! on both store backends.

use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, Receiver};
use crate::stores::Store;
use crate::support::sample;
use crate::vendor::{Reply, Vendor, assert_valid, opsgenie_accepted, pagerduty_accepted, schema};

const ROUTING_KEY: &str = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y42";
const KEY: &str = "scanbridge/critical-to-pager/123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0";

fn critical_scan() -> Value {
    serde_json::from_str(&std::fs::read_to_string(sample("ecr-image-scan-critical.json")).unwrap())
        .unwrap()
}

/// A later scan of the same `repo:tag` (a rebuilt image: another digest) with no CRITICAL left.
fn clean_scan(id: &str) -> Value {
    let mut e = critical_scan();
    e["id"] = json!(id);
    e["time"] = json!("2026-11-20T11:02:00Z");
    e["detail"]["image-digest"] =
        json!("sha256:1111111111111111111111111111111111111111111111111111111111111111");
    e["detail"]["finding-severity-counts"] = json!({"HIGH": 1, "LOW": 3});
    e
}

fn pager_rule(targets: &[&str]) -> String {
    json!({"name": "critical-to-pager", "notify_resolved": true, "targets": targets,
        "event_pattern": {"source": ["aws.ecr", "aws.inspector2"],
            "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}})
    .to_string()
}

fn pagerduty(v: &Vendor) -> String {
    format!(
        "[targets.oncall]\ntype = \"pagerduty\"\nrouting_key = \"{ROUTING_KEY}\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
        v.url("/v2/enqueue")
    )
}

/// A CLI tool on the home's store (either backend), its stdout and stderr.
fn run(home: &Home, args: &[&str]) -> String {
    let out = home.tool(args);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn event_file(home: &Home, name: &str, e: &Value) -> String {
    let p = home.path().join(name);
    std::fs::write(&p, e.to_string()).unwrap();
    p.display().to_string()
}

async fn wait_suppressed(d: &Daemon, reason: &str) {
    d.wait_metric(
        &format!(
            "scanbridge_notifications_suppressed_total{{rule=\"critical-to-pager\",target=\"oncall\",reason=\"{reason}\"}}"
        ),
        1.0,
    )
    .await;
}

/// A daemon whose PagerDuty target `pd` was paged about the CRITICAL scan (the trigger delivered).
async fn paged(store: &Store, pd: &Vendor) -> (Home, Daemon) {
    let home = Home::on(
        store,
        &pagerduty(pd),
        &[("r.json", &pager_rule(&["oncall"]))],
    );
    let d = home.start();
    d.post(critical_scan().to_string()).await;
    pd.wait_calls(1, &d).await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"oncall\",outcome=\"delivered\"}",
        1.0,
    )
    .await;
    (home, d)
}

on_both_stores! {
async fn contract_a_clean_rescan_resolves_the_pagerduty_incident_with_the_same_dedup_key(store: Store) {
    let pd = Vendor::start(pagerduty_accepted()).await;
    let (home, d) = paged(&store, &pd).await;
    let trigger = pd.calls().remove(0);
    assert_eq!(trigger.body["event_action"], "trigger");
    assert_eq!(trigger.body["dedup_key"], KEY);

    // route shows the open alert and the resolve a clean scan would send.
    let clean = clean_scan("e-clean");
    let out = run(
        &home,
        &["route", "--event", &event_file(&home, "clean.json", &clean)],
    );
    println!("----- route of the clean scan -----\n{out}");
    assert!(
        out.contains("rule critical-to-pager: no longer matches: resolves alert 123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0 (open since")
            && out.contains("by event 3f6a1c52-8e0b-4d1e-9a8f-5b2c7d9e1a01")
            && out.contains("\"event_action\": \"resolve\"")
            && out.contains("0 deliveries, and 1 resolve would be sent"),
        "{out}"
    );
    let out = run(
        &home,
        &["route", "--event", &sample("ecr-image-scan-critical.json")],
    );
    assert!(
        out.contains("alerting: notify_resolved")
            && out.contains("alert 123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0: trigger (open since"),
        "{out}"
    );

    d.post(clean.to_string()).await;
    let calls = pd.wait_calls(2, &d).await;
    let resolve = &calls[1].body;
    println!("----- PagerDuty resolve as received -----\n{resolve:#}");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(
        resolve["dedup_key"], trigger.body["dedup_key"],
        "the same incident"
    );
    assert_eq!(resolve["routing_key"], ROUTING_KEY);
    let events = schema("vendors/pagerduty-events-v2.schema.json");
    assert_valid(&events, &trigger.body, "trigger");
    assert_valid(&events, resolve, "resolve");

    // Resolved now: another clean scan sends nothing; a new CRITICAL scan pages again.
    d.post(clean_scan("e-clean-again").to_string()).await;
    let mut again = critical_scan();
    again["id"] = json!("e-critical-again");
    again["time"] = json!("2026-11-20T12:00:00Z");
    d.post(again.to_string()).await;
    let calls = pd.wait_calls(3, &d).await;
    assert_eq!(calls[2].body["event_action"], "trigger");
    assert_eq!(calls[2].body["dedup_key"], KEY);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        pd.calls().len(),
        3,
        "the second clean scan resolved nothing"
    );
    d.stop();
}

async fn the_open_state_survives_a_restart(store: Store) {
    let pd = Vendor::start(pagerduty_accepted()).await;
    let (home, d) = paged(&store, &pd).await;
    d.stop();
    let d = home.start();
    d.post(clean_scan("e-after-restart").to_string()).await;
    let calls = pd.wait_calls(2, &d).await;
    assert_eq!(calls[1].body["event_action"], "resolve");
    assert_eq!(calls[1].body["dedup_key"], KEY);
    d.stop();
}

async fn a_silence_covers_a_resolve_and_the_alert_stays_open(store: Store) {
    let pd = Vendor::start(pagerduty_accepted()).await;
    let (home, d) = paged(&store, &pd).await;
    let add: Vec<&str> =
        "silence add --match detail.repository-name=payments/* --expires 1h --comment rebuilding"
            .split(' ')
            .collect();
    let id = run(&home, &add);
    let id = id.split_whitespace().next().unwrap().to_owned();
    d.post(clean_scan("e-clean-silenced").to_string()).await;
    wait_suppressed(&d, "silenced").await;
    assert_eq!(pd.calls().len(), 1, "the resolve was silenced");
    let sup = run(&home, &["suppressed", "--json"]);
    assert!(sup.contains("silenced") && sup.contains(&id), "{sup}");
    // Still open: once the silence is gone, the next clean scan resolves it.
    let out = run(
        &home,
        &[
            "route",
            "--event",
            &event_file(&home, "c.json", &clean_scan("e-x")),
        ],
    );
    assert!(
        out.contains("resolves alert") && out.contains("open since"),
        "{out}"
    );
    run(&home, &["silence", "expire", &id]);
    d.post(clean_scan("e-clean-later").to_string()).await;
    let calls = pd.wait_calls(2, &d).await;
    assert_eq!(calls[1].body["event_action"], "resolve");
    d.stop();
}

async fn opsgenie_closes_the_alert_by_alias_and_a_closed_finding_resolves(store: Store) {
    let og = Vendor::start(opsgenie_accepted()).await;
    let config = format!(
        "[targets.ops]\ntype = \"opsgenie\"\napi_key = \"k-123\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
        og.url("")
    );
    let rules = json!({"name": "critical-to-pager", "notify_resolved": true, "targets": ["ops"],
        "event_pattern": {"$or": [
            {"detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}},
            {"detail-type": ["Inspector2 Finding"], "detail": {"severity": ["CRITICAL"]}}]}});
    let home = Home::on(&store, &config, &[("r.json", &rules.to_string())]);
    let d = home.start();
    d.post(critical_scan().to_string()).await;
    let finding: Value =
        serde_json::from_str(&std::fs::read_to_string(sample("inspector2-finding.json")).unwrap())
            .unwrap();
    d.post(finding.to_string()).await;
    og.wait_calls(2, &d).await;
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"ops\",outcome=\"delivered\"}",
        2.0,
    )
    .await;
    d.post(clean_scan("e-clean").to_string()).await;
    // The same finding, closed (it still matches the rule's pattern: CLOSED resolves, never pages).
    let mut closed = finding.clone();
    closed["id"] = json!("e-finding-closed");
    closed["time"] = json!("2026-11-21T08:00:00Z");
    closed["detail"]["status"] = json!("CLOSED");
    d.post(closed.to_string()).await;
    let calls = og.wait_calls(4, &d).await;
    let closes: Vec<_> = calls
        .iter()
        .filter(|c| c.path.ends_with("/close"))
        .collect();
    assert_eq!(closes.len(), 2, "{calls:#?}");
    let close_schema = schema("vendors/opsgenie-close-alert.schema.json");
    let creates: Vec<_> = calls.iter().filter(|c| c.path == "/v2/alerts").collect();
    for close in &closes {
        assert_eq!(close.method, "POST");
        assert_eq!(close.query.as_deref(), Some("identifierType=alias"));
        assert_eq!(close.header("authorization"), "GenieKey k-123");
        assert_valid(&close_schema, &close.body, "Opsgenie close alert");
        // The alias in the path is the alias of one of the created alerts.
        let alias = close
            .path
            .strip_prefix("/v2/alerts/")
            .and_then(|p| p.strip_suffix("/close"))
            .unwrap();
        let alias = alias.replace("%2F", "/");
        assert!(creates.iter().any(|c| c.body["alias"] == alias), "{alias}");
    }
    let image_close = closes
        .iter()
        .find(|c| c.path.contains("payments%2Fapi"))
        .expect("the image alert closed");
    let note = image_close.body["note"].as_str().unwrap();
    assert!(
        note.starts_with("Resolved: payments/api:v2.14.0 — CRITICAL 2 -> 0, HIGH 7 -> 1"),
        "{note}"
    );
    let finding_close = closes.iter().find(|c| c.path.contains("finding")).unwrap();
    assert!(
        finding_close.body["note"].as_str().unwrap().contains(
            "CVE-2026-10001 in libssl3 (payments/worker:release-2026.11) — ACTIVE -> CLOSED"
        ),
        "{}",
        finding_close.body
    );
    assert_eq!(creates.len(), 2, "the CLOSED finding created nothing");
    d.stop();
}

async fn teams_slack_email_and_webhooks_say_resolved(store: Store) {
    let smtp = crate::smtp::Smtp::start("teams_slack_email_and_webhooks_say_resolved (email part)");
    let wf = Vendor::start(Reply::new(202, "")).await;
    let slack = Receiver::start().await;
    let hook = Receiver::start().await;
    let mut config = format!(
        "[targets.channel]\ntype = \"teams\"\nwebhook_url = \"{}\"\n\
         [targets.slack]\ntype = \"slack\"\nwebhook_url = \"http://{}/services/T/B/x\"\n{}",
        wf.url("/workflows/w/invoke"),
        slack.addr,
        hook.target()
    );
    let mut targets = vec!["channel", "slack", "hook"];
    if let Some(s) = &smtp {
        config.push_str(&s.target("mail", &["oncall@example.org"], ""));
        targets.push("mail");
    }
    let home = Home::on(&store, &config, &[("r.json", &pager_rule(&targets))]);
    let d = home.start();
    d.post(critical_scan().to_string()).await;
    wf.wait_calls(1, &d).await;
    slack.wait_hits(1, &d).await;
    hook.wait_hits(1, &d).await;
    if let Some(s) = &smtp {
        s.wait_messages(1, || d.logs());
    }
    for t in &targets {
        d.wait_metric(
            &format!("scanbridge_deliveries_total{{target=\"{t}\",outcome=\"delivered\"}}"),
            1.0,
        )
        .await;
    }
    d.post(clean_scan("e-clean").to_string()).await;
    let headline = "Resolved: payments/api:v2.14.0 — CRITICAL 2 -> 0, HIGH 7 -> 1, MEDIUM 19 -> 0, LOW 4 -> 3, INFORMATIONAL 3 -> 0";

    let card = &wf.wait_calls(2, &d).await[1].body["attachments"][0]["content"];
    println!("----- Teams resolved card -----\n{card:#}");
    assert_valid(
        &schema("adaptive-card/adaptive-card-1.4.0.json"),
        card,
        "resolved card",
    );
    assert_eq!(
        card["body"][0]["text"], headline,
        "nothing in it needs escaping"
    );
    assert_eq!(card["body"][0]["color"], "good");

    let msg = &slack.wait_hits(2, &d).await[1].body;
    assert_eq!(msg["blocks"][0]["text"]["text"], headline);
    assert!(
        msg["text"].as_str().unwrap().contains("CRITICAL 2 -&gt; 0"),
        "{msg}"
    );

    let resolved = &hook.wait_hits(2, &d).await[1];
    println!("----- webhook resolved event -----\n{:#}", resolved.body);
    assert_eq!(resolved.body["status"], "resolved");
    assert_eq!(resolved.body["rule"], "critical-to-pager");
    assert_eq!(
        resolved.body["alert_key"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments/api:v2.14.0"
    );
    assert_eq!(resolved.body["headline"], headline);
    assert_eq!(
        resolved.body["changes"][0],
        json!({"severity": "CRITICAL", "before": 2, "after": 0})
    );
    assert_eq!(
        resolved.body["opened_by"]["event_id"],
        "3f6a1c52-8e0b-4d1e-9a8f-5b2c7d9e1a01"
    );
    assert_eq!(resolved.body["event"]["id"], "e-clean");
    assert_eq!(resolved.headers["x-scanbridge-status"], "resolved");

    if let Some(s) = &smtp {
        let raw = s.wait_messages(2, || d.logs());
        let mails: Vec<_> = raw
            .iter()
            .map(|r| mailparse::parse_mail(r).unwrap())
            .collect();
        use mailparse::MailHeaderMap;
        let m = mails
            .iter()
            .find(|m| {
                m.headers
                    .get_first_value("Subject")
                    .unwrap()
                    .contains("Resolved")
            })
            .expect("the resolved email");
        assert_eq!(
            m.headers.get_first_value("Subject").unwrap(),
            format!("[scanbridge] {headline}")
        );
        let text = crate::email::part(m, "text/plain");
        println!("----- resolved email -----\n{text}");
        assert!(text.contains("  CRITICAL 2 -> 0\n"), "{text}");
        assert!(text.contains("Findings now: 1 HIGH, 3 LOW"), "{text}");
    }
    d.stop();
}
}
