"""Traces across a SIGKILL failover of `tandem up` (sync mode): no acknowledged span,
assessment, evaluation-dataset record or review-queue item lost."""

import time

import pytest
import requests


@pytest.fixture(autouse=True)
def tracking():
    yield


def test_no_acknowledged_span_is_lost_across_a_sigkill_failover():
    """`tandem up` in sync mode: OTLP exports (two spans of a trace each) sent through the
    front door while the leader region is SIGKILLed; every export answered 200 is readable,
    whole, from the new leader."""
    import threading

    import mlflow

    from test_regions import Up

    up = Up("sync")
    try:
        mlflow.set_tracking_uri(up.url)
        eid = mlflow.create_experiment("traces-failover")
        dataset = requests.post(up.url + "/api/3.0/mlflow/datasets/create", json={"name": "failover", "experiment_ids": [eid]}, timeout=15).json()["dataset"]["dataset_id"]
        rq = up.url + "/api/3.0/mlflow/review-queues"
        schema = requests.post(up.url + "/api/3.0/mlflow/label-schemas/create", json={"experiment_id": eid, "name": "ok?", "type": "FEEDBACK", "input": {"pass_fail": {"positive_label": "y", "negative_label": "n"}}}, timeout=15).json()["label_schema"]["schema_id"]
        queue = requests.post(rq + "/create", json={"experiment_id": eid, "name": "failover", "queue_type": "CUSTOM", "schema_ids": [schema]}, timeout=15).json()["review_queue"]["queue_id"]
        acknowledged, refused = [], 0
        assessments, records, items = [], [], []
        old = up.leader()
        other = {"east": "west", "west": "east"}[old]
        killer = threading.Timer(3.0, lambda: up.kill(old))
        killer.start()
        deadline = time.time() + 12
        i = 0
        while time.time() < deadline:
            trace = f"{i:032x}"
            base = 1_700_000_000_000_000_000 + i * 1_000_000
            spans = [{"traceId": trace, "spanId": f"{1:016x}", "name": "root", "startTimeUnixNano": str(base), "endTimeUnixNano": str(base + 500), "status": {"code": 1}},
                     {"traceId": trace, "spanId": f"{2:016x}", "parentSpanId": f"{1:016x}", "name": "child", "startTimeUnixNano": str(base + 100), "endTimeUnixNano": str(base + 200), "status": {"code": 1}}]
            try:
                r = requests.post(up.url + "/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]},
                                  headers={"x-mlflow-experiment-id": eid}, timeout=15)
                if r.status_code == 200:
                    acknowledged.append("tr-" + trace)
                    a = requests.post(f"{up.url}/api/3.0/mlflow/traces/tr-{trace}/assessments", timeout=15,
                                      json={"assessment": {"assessment_name": "ok", "source": {"source_type": "CODE"}, "feedback": {"value": i}}})
                    if a.status_code == 200:
                        assessments.append(("tr-" + trace, a.json()["assessment"]["assessment_id"]))
                    d = requests.post(f"{up.url}/api/3.0/mlflow/datasets/{dataset}/records", json={"records": f'[{{"inputs": {{"i": {i}}}}}]'}, timeout=15)
                    if d.status_code == 200:
                        records.append(i)
                    q = requests.post(rq + "/items/add", json={"queue_id": queue, "item_ids": ["tr-" + trace]}, timeout=15)
                    if q.status_code == 200:
                        items.append("tr-" + trace)
                else:
                    refused += 1
            except requests.RequestException:
                refused += 1
            i += 1
        killer.join()
        up.wait_for(lambda: up.leader() == other, 30, "the failover")
        assert len(acknowledged) > 20, (len(acknowledged), refused)
        mlflow.set_tracking_uri(up.urls[other])
        stored = {}
        token = None
        client = mlflow.MlflowClient()
        while True:
            page = client.search_traces(locations=[eid], max_results=500, page_token=token, include_spans=False)
            stored.update({t.info.trace_id: t for t in page})
            token = page.token
            if not token:
                break
        missing = [t for t in acknowledged if t not in stored]
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged traces lost: {missing[:5]}"
        for t in acknowledged[:: max(1, len(acknowledged) // 20)]:
            assert [s.name for s in mlflow.get_trace(t).data.spans] == ["root", "child"], t
        assert len(assessments) > 10 and len(records) > 10, (len(assessments), len(records))
        lost = [a for t, a in assessments if mlflow.get_assessment(t, a).assessment_id != a]
        assert not lost, lost
        import json

        kept = {r["inputs"]["i"] for r in json.loads(requests.get(f"{up.urls[other]}/api/3.0/mlflow/datasets/{dataset}/records", params={"max_results": 100000}, timeout=15).json()["records"])}
        assert not set(records) - kept, sorted(set(records) - kept)[:5]
        assert len(items) > 10, len(items)
        listed = requests.get(up.urls[other] + "/api/3.0/mlflow/review-queues/items/list", params={"queue_id": queue, "max_results": 50000}, timeout=15).json()
        assert not set(items) - {x["item_id"] for x in listed["items"]}
        q = requests.get(up.urls[other] + "/api/3.0/mlflow/review-queues/get", params={"queue_id": queue}, timeout=15).json()["review_queue"]
        assert q["schema_ids"] == [schema], q
    finally:
        up.stop()
