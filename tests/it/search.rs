//! Run searches answered in SQL give exactly what the general path (candidates filtered and
//! sorted in memory) gives: same runs, same order, same pages, on every metadata store,
//! including missing metrics, NaN, ±infinity, ties and deleted runs.

use crate::replay::World;
use crate::support::metadata_stores;
use serde_json::{json, Value};
use tandem::api::{tracking, Req};

fn req(v: Value) -> Req {
    Req::from_json(v).unwrap()
}

#[test]
fn searches_answered_in_sql_match_the_general_path() {
    crate::support::init();
    for meta in metadata_stores() {
        let w = World::new(meta);
        let ctx = &w.ctx;
        let exp = tracking::create_experiment(ctx, &req(json!({"name": "s"}))).unwrap()["experiment_id"].as_str().unwrap().to_owned();
        let values = [json!(0.1), json!(0.7), json!("NaN"), json!(0.7), json!("Infinity"), json!("-Infinity"), json!(-0.0), json!(0.5), json!(2.5), json!(0.9)];
        for i in 0..60u64 {
            // Ties on start time, on values; some runs without m, some without n.
            let run = tracking::create_run(ctx, &req(json!({"experiment_id": exp, "start_time": 1000 + (i % 7)}))).unwrap()["run"]["info"]["run_id"].as_str().unwrap().to_owned();
            let mut metrics = vec![];
            if i % 5 != 0 {
                metrics.push(json!({"key": "m", "value": values[(i % 10) as usize], "timestamp": 1, "step": 0}));
            }
            if i % 3 != 0 {
                metrics.push(json!({"key": "n", "value": (i % 4) as f64, "timestamp": 1, "step": 0}));
            }
            tracking::log_batch(ctx, &req(json!({"run_id": run, "metrics": metrics}))).unwrap();
            if i % 11 == 0 {
                tracking::update_run(ctx, &req(json!({"run_id": run, "status": "FINISHED", "end_time": 5000 + (i % 4)}))).unwrap();
            }
            if i % 13 == 0 {
                tracking::delete_run(ctx, &req(json!({"run_id": run}))).unwrap();
            }
        }
        let filters = ["", "metrics.m > 0.5", "metrics.m >= 0.7 and metrics.n < 3", "metrics.m = 0.7", "metrics.m <= 0", "metrics.n > -1"];
        let orders: [&[&str]; 6] = [&[], &["metrics.m DESC"], &["metrics.m ASC"], &["metrics.n DESC", "metrics.m ASC"], &["attributes.start_time ASC"], &["attributes.end_time DESC"]];
        let mut checked = 0;
        for f in filters {
            for o in orders {
                for view in ["ACTIVE_ONLY", "ALL"] {
                    let mut token: Option<String> = None;
                    loop {
                        let mut body = json!({"experiment_ids": [exp], "filter": f, "order_by": o, "max_results": 7, "run_view_type": view});
                        if let Some(t) = &token {
                            body["page_token"] = json!(t);
                        }
                        let a = tracking::search_runs_with(ctx, &req(body.clone()), true).unwrap();
                        let b = tracking::search_runs_with(ctx, &req(body), false).unwrap();
                        assert_eq!(a, b, "{meta:?}: filter {f:?} order {o:?} view {view} page {token:?}");
                        checked += 1;
                        match b["next_page_token"].as_str() {
                            Some(t) => token = Some(t.to_owned()),
                            None => break,
                        }
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}
