//! A small run of `plastic bench`, so the instrument cannot rot. Figures are not asserted
//! (they belong in docs/performance.md); their presence and sanity are.

mod common;

use serde_json::Value;

#[test]
fn bench_quick_run_measures_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.json");
    let status = common::plastic()
        // A billion nodes need more open files than Linux allows any process: skipped, with why.
        .args(["bench", "--quick", "--fanout", "20,1000000000"])
        .arg("--json-out")
        .arg(&out)
        .env_remove("PLASTIC_BROKER")
        .status()
        .unwrap();
    assert!(status.success());
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(r["broker"], "embedded");
    for key in ["latency", "raw_mqtt_floor", "raw_mqtt_floor_qos0"] {
        assert!(
            r[key]["p50_us"].as_f64().unwrap() > 0.0,
            "{key}: {}",
            r[key]
        );
        assert!(r[key]["p99_us"].as_f64() >= r[key]["p50_us"].as_f64());
    }
    let throughput = r["throughput"].as_array().unwrap();
    assert_eq!(
        throughput
            .iter()
            .map(|t| t["nodes"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [10, 100]
    );
    assert!(throughput.iter().all(|t| t["rps"].as_f64().unwrap() > 0.0));
    assert_eq!(r["fanout"][0]["nodes"], 20);
    assert_eq!(
        r["fanout"][0]["replies"], 20,
        "every simulated node answered the broadcast"
    );
    assert!(r["memory"][0]["hub_kb_per_node"].as_f64().is_some());
    for key in ["raw_mqtt_floor", "raw_mqtt_floor_qos0"] {
        let p = &r[key]["pipelined"];
        assert!(p["rps"].as_f64().unwrap() > 0.0, "{key}: {p}");
        assert!(p["requests"].as_u64().unwrap() > 0, "{key}: {p}");
    }
    let skipped = r["fanout"][1]["skipped"].as_str().unwrap_or_default();
    assert!(
        skipped.contains("open files") && skipped.contains("3 per connection"),
        "{}",
        r["fanout"][1]
    );
    assert_eq!(
        r["memory"].as_array().unwrap().len(),
        1,
        "nothing measured for it"
    );
    assert_eq!(r["deploy"]["nodes"], 100);
    assert!(r["deploy"]["mb_per_s"].as_f64().unwrap() > 0.0);
}
