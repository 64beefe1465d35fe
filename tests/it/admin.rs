//! The admin API (`/api/v1`) over real sockets, as a program (the CLI, later) uses it: every route
//! with the daemon's real store, paging, errors by status, and no secret in any answer.

use serde_json::{Value, json};

use crate::daemon::{Daemon, Home, Receiver, event, rule};

async fn call(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = reqwest::Client::new();
    let mut r = match method {
        "GET" => c.get(d.url(path)),
        _ => c.post(d.url(path)),
    };
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_from_the_real_store() {
    let rx = Receiver::start().await;
    rx.fail(400);
    let config = format!(
        "{}headers = {{ Authorization = \"Bearer ADMIN-HEADER-SECRET\" }}\n",
        rx.target()
    );
    let home = Home::new(
        &config,
        &[(
            "ci.json",
            &rule("ci-to-hook", json!({"source": ["ci"]}), &["hook"]),
        )],
    );
    let d = home.start();
    for i in 0..3 {
        assert_eq!(
            d.post(event(&format!("e-{i}"), "ci").to_string()).await.0,
            202
        );
    }
    assert_eq!(d.post(event("quiet", "other").to_string()).await.0, 202);
    d.wait_metric(
        "scanbridge_deliveries_total{target=\"hook\",outcome=\"dead_letter\"}",
        3.0,
    )
    .await;

    // Events, newest first, in pages; each with what became of its deliveries.
    let (s, page) = call(&d, "GET", "/api/v1/events?limit=2", None).await;
    assert_eq!(s, 200, "{page}");
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["quiet", "e-2"]);
    assert_eq!(page["events"][0]["deliveries"], json!([]));
    let dl = &page["events"][1]["deliveries"][0];
    assert_eq!(dl["status"], "dead_letter", "{dl}");
    assert_eq!(dl["target"], "hook");
    assert!(dl["reason"].as_str().unwrap().contains("HTTP 400"), "{dl}");
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, rest) = call(
        &d,
        "GET",
        &format!("/api/v1/events?limit=2&before={next}"),
        None,
    )
    .await;
    let ids: Vec<&str> = rest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e-1", "e-0"]);
    let (s, _) = call(&d, "GET", "/api/v1/events?before=nope", None).await;
    assert_eq!(s, 404);
    let (s, one) = call(&d, "GET", "/api/v1/events/e-1", None).await;
    assert_eq!((s, &one["event"]["detail"]["n"]), (200, &json!(1)));
    assert_eq!(call(&d, "GET", "/api/v1/events/nope", None).await.0, 404);

    // Dead letters: list, one, redrive one (delivered once the receiver recovers), purge the rest.
    let (_, list) = call(&d, "GET", "/api/v1/deadletters", None).await;
    let dls = list["deadletters"].as_array().unwrap();
    assert_eq!(dls.len(), 3);
    let id = dls[0]["id"].as_str().unwrap().to_owned();
    let (s, one) = call(&d, "GET", &format!("/api/v1/deadletters/{id}"), None).await;
    assert_eq!((s, &one["event"]["id"]), (200, &dls[0]["event_id"]));
    rx.fail(0);
    let (s, r) = call(
        &d,
        "POST",
        &format!("/api/v1/deadletters/{id}/redrive"),
        None,
    )
    .await;
    assert_eq!((s, &r["redriven"]), (200, &json!(1)));
    let hits = rx.wait_hits(1, &d).await;
    assert_eq!(hits[0].body["id"], dls[0]["event_id"]);
    let (s, _) = call(&d, "POST", "/api/v1/deadletters/nope/redrive", None).await;
    assert_eq!(s, 404);
    let (_, ev) = call(
        &d,
        "GET",
        &format!("/api/v1/events/{}", dls[0]["event_id"].as_str().unwrap()),
        None,
    )
    .await;
    let state = &ev["deliveries"][0];
    assert_eq!(state["status"], "delivered", "{state}");
    assert_eq!(state["attempts"], 1, "attempts restart at a redrive");
    let (_, r) = call(&d, "POST", "/api/v1/deadletters/purge", None).await;
    assert_eq!(r["purged"], 2);

    // Silences: a bad one is refused with the reason and nothing stored; list, expire.
    let (s, r) = call(
        &d,
        "POST",
        "/api/v1/silences",
        Some(json!({"matchers": ["x"], "expires": "1h", "comment": "c"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        r["error"].as_str().unwrap().contains("expected PATH=VALUE"),
        "{r}"
    );
    let (s, r) = call(
        &d,
        "POST",
        "/api/v1/silences",
        Some(json!({"matchers": ["source=ci"], "expires": "yesterday", "comment": "c"})),
    )
    .await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = call(&d, "POST", "/api/v1/silences", Some(json!({"nonsense": 1}))).await;
    assert_eq!(s, 400, "{r}");
    let (s, made) = call(
        &d,
        "POST",
        "/api/v1/silences",
        Some(json!({"pattern": {"source": ["ci"]}, "expires": "2h", "comment": "CI is noisy today", "author": "bob"})),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let sid = made["silence"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made["silence"]["active"], true);
    let (_, list) = call(&d, "GET", "/api/v1/silences", None).await;
    assert_eq!(list["silences"].as_array().unwrap().len(), 1);
    let (_, status) = call(&d, "GET", "/api/v1/status", None).await;
    assert_eq!(status["silences_active"], 1, "{status}");
    assert_eq!(status["counts"]["dead_letters"], 0);
    assert_eq!(d.post(event("muted", "ci").to_string()).await.0, 202);
    d.wait_metric(
        "scanbridge_notifications_suppressed_total{rule=\"ci-to-hook\",target=\"hook\",reason=\"silenced\"}",
        1.0,
    )
    .await;
    let (_, sup) = call(&d, "GET", "/api/v1/suppressed", None).await;
    assert_eq!(sup["suppressed"][0]["event_id"], "muted");
    assert!(
        sup["suppressed"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(&sid)
    );
    let (s, _) = call(&d, "POST", &format!("/api/v1/silences/{sid}/expire"), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        call(&d, "POST", "/api/v1/silences/nope/expire", None)
            .await
            .0,
        404
    );
    let (_, list) = call(&d, "GET", "/api/v1/silences", None).await;
    assert_eq!(list["silences"], json!([]));
    let (_, list) = call(&d, "GET", "/api/v1/silences?all=true", None).await;
    assert_eq!(list["silences"][0]["active"], false);

    // Rules, with the last reload; a broken rule file keeps the old set and is reported.
    let (_, rules) = call(&d, "GET", "/api/v1/rules", None).await;
    assert_eq!(rules["rules"][0]["name"], "ci-to-hook");
    assert_eq!(
        rules["rules"][0]["targets"][0],
        json!({"target": "hook", "kind": "webhook", "transformed": false})
    );
    assert_eq!(rules["reload"]["ok"], true);
    home.write_rule(
        "broken.json",
        r#"{"name": "broken", "event_pattern": {"source": []}, "targets": ["hook"]}"#,
    );
    let start = std::time::Instant::now();
    let rules = loop {
        let (_, rules) = call(&d, "GET", "/api/v1/rules", None).await;
        if rules["reload"]["ok"] == false {
            break rules;
        }
        assert!(
            start.elapsed() < crate::daemon::PATIENCE,
            "no failed reload reported"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let err = rules["reload"]["errors"][0].as_str().unwrap();
    assert!(
        err.contains("broken.json")
            && err.contains("/event_pattern/source")
            && err.contains("Empty arrays"),
        "{err}"
    );
    assert_eq!(
        rules["rules"].as_array().unwrap().len(),
        1,
        "the previous rules stay"
    );

    // The route preview: what the hook would get, without its URL or header value.
    let (s, plan) = call(
        &d,
        "POST",
        "/api/v1/route",
        Some(json!({"event": event("p", "ci")})),
    )
    .await;
    assert_eq!(s, 200, "{plan}");
    let preview = &plan["rules"][0]["deliveries"][0]["preview"];
    assert_eq!(preview["kind"], "webhook");
    assert_eq!(preview["headers"], json!(["authorization"]));
    assert_eq!(preview["body"]["id"], "p");

    // No answer carries a secret or the receiver's address.
    let mut all = String::new();
    for path in [
        "/api/v1/events",
        "/api/v1/deadletters",
        "/api/v1/rules",
        "/api/v1/status",
        "/api/v1/silences?all=true",
    ] {
        all.push_str(&call(&d, "GET", path, None).await.1.to_string());
    }
    all.push_str(&plan.to_string());
    assert!(
        !all.contains("ADMIN-HEADER-SECRET") && !all.contains(&rx.url()),
        "a secret in an answer"
    );
    d.stop();
}
