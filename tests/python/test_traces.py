"""MLflow 3's traces against tandem with the stock client: `@mlflow.trace` and
`mlflow.start_span` (spans over OTLP protobuf, then the client's StartTraceV3), reading them
back (`get_trace`, `search_traces` with filters and pages), tags, deletes, OTLP/JSON ingest
and its bad input. (The failover of traces: test_traces_failover.py.)"""

import json
import os
import time

import pytest
import requests


@pytest.fixture(autouse=True)
def sync_traces(monkeypatch):
    # Each trace is exported before the traced call returns: what was acknowledged is known.
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    yield


def test_traced_functions_round_trip_through_the_stock_client(server):
    import mlflow

    mlflow.set_tracking_uri(server.url)
    exp = mlflow.set_experiment("traces-client")

    @mlflow.trace(span_type="TOOL")
    def lookup(city):
        return {"city": city, "temp": 21.5}

    @mlflow.trace(name="agent", attributes={"version": "v1"})
    def agent(question):
        with mlflow.start_span(name="plan") as span:
            span.set_inputs({"q": question})
            span.set_outputs(["lookup"])
        return lookup("Oslo")["temp"]

    assert agent("weather?") == 21.5
    with pytest.raises(ValueError):
        with mlflow.start_span(name="broken"):
            raise ValueError("boom")

    traces = mlflow.search_traces(locations=[exp.experiment_id], return_type="list")
    assert len(traces) == 2
    by_name = {t.info.tags["mlflow.traceName"]: t for t in traces}
    ok, bad = by_name["agent"], by_name["broken"]
    assert ok.info.state.value == "OK" and bad.info.state.value == "ERROR"
    spans = {s.name: s for s in ok.data.spans}
    assert set(spans) == {"agent", "plan", "lookup"}
    assert spans["agent"].inputs == {"question": "weather?"} and spans["agent"].outputs == 21.5
    assert spans["agent"].attributes["version"] == "v1"
    assert spans["plan"].inputs == {"q": "weather?"} and spans["plan"].outputs == ["lookup"]
    assert spans["lookup"].span_type == "TOOL" and spans["lookup"].parent_id == spans["agent"].span_id
    assert bad.data.spans[0].status.status_code.value == "ERROR"
    assert any(e.name == "exception" for e in bad.data.spans[0].events)

    got = mlflow.get_trace(ok.info.trace_id)
    assert got.info.request_preview == '{"question": "weather?"}' and got.info.response_preview == "21.5"
    assert [s.name for s in got.data.spans] == ["agent", "plan", "lookup"]

    # Span clauses over the spans the client sent: one span must satisfy them all.
    by_span = lambda f: sorted(t.info.trace_id for t in mlflow.search_traces(locations=[exp.experiment_id], filter_string=f, return_type="list"))  # noqa: E731
    assert by_span("span.type = 'TOOL'") == [ok.info.trace_id]
    assert by_span("span.name = 'plan' AND span.type = 'TOOL'") == []
    assert by_span("span.name = 'lookup' AND span.type = 'TOOL' AND span.status = 'OK'") == [ok.info.trace_id]
    assert by_span("span.status = 'ERROR'") == [bad.info.trace_id]
    assert by_span("span.attributes.version LIKE '%v1%'") == [ok.info.trace_id]
    assert by_span("trace.text ILIKE '%OSLO%'") == [ok.info.trace_id]
    assert by_span("span.name RLIKE '^(plan|broken)$'") == sorted([ok.info.trace_id, bad.info.trace_id])

    client = mlflow.MlflowClient()
    client.set_trace_tag(ok.info.trace_id, "reviewed", "yes")
    found = mlflow.search_traces(locations=[exp.experiment_id], filter_string="tags.reviewed = 'yes'", return_type="list")
    assert [t.info.trace_id for t in found] == [ok.info.trace_id]
    assert [t.info.trace_id for t in mlflow.search_traces(locations=[exp.experiment_id], filter_string="attributes.status = 'ERROR'", return_type="list")] == [bad.info.trace_id]
    client.delete_trace_tag(ok.info.trace_id, "reviewed")
    assert "reviewed" not in mlflow.get_trace(ok.info.trace_id).info.tags
    # Pages: one trace at a time, newest first.
    page1 = client.search_traces(locations=[exp.experiment_id], max_results=1)
    page2 = client.search_traces(locations=[exp.experiment_id], max_results=1, page_token=page1.token)
    assert [page1[0].info.trace_id, page2[0].info.trace_id] == [bad.info.trace_id, ok.info.trace_id]
    assert page2.token is None
    assert client.delete_traces(exp.experiment_id, trace_ids=[bad.info.trace_id]) == 1
    assert [t.info.trace_id for t in mlflow.search_traces(locations=[exp.experiment_id], return_type="list")] == [ok.info.trace_id]


def test_otlp_json_ingest_and_its_bad_input(server):
    import mlflow

    mlflow.set_tracking_uri(server.url)
    eid = mlflow.create_experiment("traces-otlp-json")
    trace = "5b8efff798038103d269b633813fc60c"

    def post(body, ctype="application/json", exp=eid, raw=False, encoding=None):
        headers = {"Content-Type": ctype, **({"x-mlflow-experiment-id": exp} if exp else {}), **({"Content-Encoding": encoding} if encoding else {})}
        return requests.post(server.url + "/v1/traces", data=body if raw else json.dumps(body), headers=headers, timeout=30)

    span = {"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "from-a-collector", "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000001000000000", "attributes": [{"key": "service", "value": {"stringValue": "etl"}}], "status": {"code": 1}}
    r = post({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    assert r.status_code == 200, r.text
    t = mlflow.get_trace("tr-" + trace)
    assert t.info.state.value == "OK" and t.info.tags["mlflow.traceName"] == "from-a-collector"
    assert t.data.spans[0].attributes["service"] == "etl"
    assert t.info.execution_duration == 1000
    # Compressed bodies, as an OTLP exporter with compression on sends them.
    import gzip
    import zlib

    for i, (encoding, pack) in enumerate([("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", lambda b: zlib.compress(b)[2:-4])]):
        other = f"{i + 1:032x}"
        body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "traceId": other}]}]}]}).encode()
        r = post(pack(body), raw=True, encoding=encoding)
        assert r.status_code == 200, (encoding, r.text)
        assert mlflow.get_trace("tr-" + other).info.tags["mlflow.traceName"] == "from-a-collector"
    before = requests.get(server.url + "/api/tandem/v1/workspaces/default/changes", timeout=30).json()["events"][-1]["seq"]
    bad = [
        (b"\x0a\xff", "application/x-protobuf", eid, 400),
        (b"{not json", "application/json", eid, 400),
        (json.dumps({}).encode(), "application/json", eid, 400),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "traceId": "abc"}]}]}]}).encode(), "application/json", eid, 400),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "attributes": [{"key": "big", "value": {"stringValue": "x" * (5 << 20)}}]}]}]}]}).encode(), "application/json", eid, 400),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode(), "text/plain", eid, 400),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode(), "application/json", None, 422),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode(), "application/json", "424242", 404),
    ]
    for body, ctype, exp, status in bad:
        r = post(body, ctype, exp, raw=True)
        assert r.status_code == status, (ctype, exp, r.status_code, r.text[:300])
    good = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    for body, encoding, status in [(good, "br", 400), (b"not gzip", "gzip", 400), (b"not deflate", "deflate", 400),
                                   (gzip.compress(b"{" + b" " * (80 << 20) + b"}"), "gzip", 413)]:
        r = post(body, raw=True, encoding=encoding)
        assert r.status_code == status, (encoding, r.status_code, r.text[:300])
    after = requests.get(server.url + "/api/tandem/v1/workspaces/default/changes", timeout=30).json()["events"][-1]["seq"]
    assert after == before, "refused OTLP requests wrote something"


def test_assessments_and_links_through_the_stock_client(server):
    """`mlflow.log_feedback`, `log_expectation`, `override_feedback`, `update_assessment`,
    `delete_assessment`, `get_assessment`; assessments on the trace and in searches; traces
    linked to a run found by `search_traces(run_id=...)`."""
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(server.url)
    exp = mlflow.set_experiment("assessments-client")

    @mlflow.trace
    def answer(q):
        return "42"

    answer("meaning?")
    trace_id = mlflow.get_last_active_trace_id()
    human = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="alice")
    fb = mlflow.log_feedback(trace_id=trace_id, name="correct", value=True, source=human, rationale="checked")
    ex = mlflow.log_expectation(trace_id=trace_id, name="expected", value={"answer": "42", "facts": ["a", "b"]})
    judged = mlflow.log_feedback(trace_id=trace_id, name="relevance", value=0.8,
                                 source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge"))
    assert fb.assessment_id.startswith("a-") and fb.valid
    assert mlflow.get_assessment(trace_id, ex.assessment_id).value == {"answer": "42", "facts": ["a", "b"]}

    # An override replaces the feedback: the old one is kept, marked invalid.
    new = mlflow.override_feedback(trace_id=trace_id, assessment_id=fb.assessment_id, value=False, rationale="wrong after all")
    assert new.overrides == fb.assessment_id
    assert mlflow.get_assessment(trace_id, fb.assessment_id).valid is False
    updated = mlflow.update_assessment(trace_id=trace_id, assessment_id=judged.assessment_id,
                                       assessment=mlflow.entities.Feedback(name="relevance", value=0.9))
    assert updated.value == 0.9 and updated.source.source_id == "judge"

    trace = mlflow.get_trace(trace_id)
    by_id = {a.assessment_id: a for a in trace.info.assessments}
    assert set(by_id) == {fb.assessment_id, ex.assessment_id, judged.assessment_id, new.assessment_id}
    assert by_id[new.assessment_id].value is False and by_id[fb.assessment_id].valid is False
    found = mlflow.search_traces(locations=[exp.experiment_id], filter_string="feedback.relevance > 0.85", return_type="list")
    assert [t.info.trace_id for t in found] == [trace_id]
    assert mlflow.search_traces(locations=[exp.experiment_id], filter_string="feedback.relevance < 0.5", return_type="list") == []

    # Deleting the override makes the first feedback valid again.
    mlflow.delete_assessment(trace_id=trace_id, assessment_id=new.assessment_id)
    assert mlflow.get_assessment(trace_id, fb.assessment_id).valid is True
    with pytest.raises(mlflow.exceptions.MlflowException, match="not found"):
        mlflow.get_assessment(trace_id, new.assessment_id)

    # A trace linked to a run is found by the run's ID.
    client = MlflowClient()
    run = client.create_run(exp.experiment_id)
    assert mlflow.search_traces(run_id=run.info.run_id, locations=[exp.experiment_id], return_type="list") == []
    client.link_traces_to_run([trace_id], run.info.run_id)
    assert [t.info.trace_id for t in mlflow.search_traces(run_id=run.info.run_id, locations=[exp.experiment_id], return_type="list")] == [trace_id]


def test_evaluation_datasets_and_evaluate_end_to_end(server):
    """`mlflow.genai.datasets` (create, merge records, get, search, tags, delete) and
    `mlflow.genai.evaluate` with a code-based scorer over a dataset stored in tandem: the run,
    its traces linked to it, their feedback and expectations."""
    import mlflow
    from mlflow.genai import datasets
    from mlflow.genai.scorers import scorer

    mlflow.set_tracking_uri(server.url)
    exp = mlflow.set_experiment("evaluate-e2e")
    ds = datasets.create_dataset(name="qa", experiment_id=[exp.experiment_id], tags={"team": "ml"})
    ds.merge_records([
        {"inputs": {"question": "2+2"}, "expectations": {"expected_response": "4"}},
        {"inputs": {"question": "capital of France"}, "expectations": {"expected_response": "Paris"}},
    ])
    # The same inputs again merge into the record that has them.
    ds.merge_records([{"inputs": {"question": "2+2"}, "expectations": {"note": "arithmetic"}}])
    ds = datasets.get_dataset(dataset_id=ds.dataset_id)
    df = ds.to_df()
    assert len(df) == 2
    merged = [e for e in df["expectations"] if "note" in e]
    assert merged == [{"expected_response": "4", "note": "arithmetic"}]
    assert ds.tags["team"] == "ml" and ds.profile and '"num_records": 2' in ds.profile
    datasets.set_dataset_tags(dataset_id=ds.dataset_id, tags={"stage": "gold", "team": "ai"})
    datasets.delete_dataset_tag(dataset_id=ds.dataset_id, key="stage")
    tags = datasets.get_dataset(dataset_id=ds.dataset_id).tags
    assert tags["team"] == "ai" and "stage" not in tags
    other = mlflow.create_experiment("evaluate-e2e-other")
    datasets.add_dataset_to_experiments(dataset_id=ds.dataset_id, experiment_ids=[other])
    assert [d.dataset_id for d in datasets.search_datasets(experiment_ids=[other])] == [ds.dataset_id]
    datasets.remove_dataset_from_experiments(dataset_id=ds.dataset_id, experiment_ids=[other])
    assert datasets.search_datasets(experiment_ids=[other]) == []
    assert [d.dataset_id for d in datasets.search_datasets(experiment_ids=[exp.experiment_id])] == [ds.dataset_id]

    @scorer
    def exact(outputs, expectations):
        return outputs == expectations["expected_response"]

    def predict(question):
        return {"2+2": "4"}.get(question, "London")

    result = mlflow.genai.evaluate(data=ds, predict_fn=predict, scorers=[exact])
    assert result.metrics["exact/mean"] == 0.5
    traces = mlflow.search_traces(run_id=result.run_id, return_type="list")
    assert len(traces) == 2
    verdicts = sorted((t.data.spans[0].inputs["question"], [a.value for a in t.info.assessments if a.name == "exact"][0]) for t in traces)
    assert verdicts == [("2+2", True), ("capital of France", False)]
    assert all(any(a.name == "expected_response" for a in t.info.assessments) for t in traces)

    datasets.delete_dataset(dataset_id=ds.dataset_id)
    with pytest.raises(mlflow.exceptions.MlflowException, match="not found"):
        datasets.get_dataset(dataset_id=ds.dataset_id)


def test_registered_scorers_through_the_stock_client(server):
    """`Scorer.register` (versions), `list_scorers`, `get_scorer`, `delete_scorer` with the
    stock client; a `@scorer` with Python source is refused, as on MLflow's server."""
    import mlflow
    from mlflow.genai.scorers import RelevanceToQuery, delete_scorer, get_scorer, list_scorers, scorer

    mlflow.set_tracking_uri(server.url)
    exp = mlflow.set_experiment("scorers-client")
    RelevanceToQuery().register(name="relevance", experiment_id=exp.experiment_id)
    RelevanceToQuery().register(name="relevance", experiment_id=exp.experiment_id)
    assert [s.name for s in list_scorers(experiment_id=exp.experiment_id)] == ["relevance"]
    got = get_scorer(name="relevance", experiment_id=exp.experiment_id)
    assert type(got).__name__ == "RelevanceToQuery"
    assert type(get_scorer(name="relevance", experiment_id=exp.experiment_id, version=1)).__name__ == "RelevanceToQuery"
    delete_scorer(name="relevance", experiment_id=exp.experiment_id, version="all")
    assert list_scorers(experiment_id=exp.experiment_id) == []

    @scorer
    def mine(outputs):
        return True

    with pytest.raises(mlflow.exceptions.MlflowException, match="MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS"):
        mine.register(name="mine", experiment_id=exp.experiment_id)


def test_labeling_through_the_stock_client(server):
    """`mlflow.genai.label_schemas` and `mlflow.genai.review_queues` with the stock client:
    questions (the experiment's default one first listed), a custom queue of traces with its
    questions, a reviewer's own queue, review statuses, and a reviewer's feedback logged on a
    queued trace."""
    import mlflow
    from mlflow.genai import label_schemas as ls
    from mlflow.genai import review_queues as rq
    from mlflow.genai.label_schemas import InputCategorical, InputPassFail

    mlflow.set_tracking_uri(server.url)
    exp = mlflow.set_experiment("labeling-client")
    assert [s.name for s in ls.list_label_schemas()] == ["Feedback"]
    correct = ls.create_label_schema("correct", type="feedback", input=InputPassFail(positive_label="Yes", negative_label="No"), instruction="Right?")
    topic = ls.create_label_schema("topic", type="expectation", input=InputCategorical(options=["a", "b"]))
    assert ls.get_label_schema("correct", experiment_id=exp.experiment_id).schema_id == correct.schema_id
    assert ls.get_label_schema(schema_id=topic.schema_id).input.options == ["a", "b"]
    assert ls.update_label_schema(topic.schema_id, input=InputCategorical(options=["a", "b", "c"])).input.options == ["a", "b", "c"]
    assert {s.name for s in ls.list_label_schemas()} == {"Feedback", "correct", "topic"}

    traces = []
    for i in range(3):
        with mlflow.start_span(name=f"q{i}") as span:
            span.set_inputs({"q": i})
            span.set_outputs("a")
        traces.append(span.trace_id)
    queue = rq.create_review_queue("weekly", queue_type="custom", users=["Alice", "bob"], schema_ids=[correct.schema_id, topic.schema_id])
    assert sorted(queue.users) == ["alice", "bob"] and sorted(queue.schema_ids) == sorted([correct.schema_id, topic.schema_id])
    items = rq.add_items_to_review_queue(queue.queue_id, item_ids=traces)
    assert [i.item_id for i in items] == traces and {str(i.status) for i in items} == {"pending"}
    done = rq.set_review_queue_item_status(queue.queue_id, item_id=traces[0], status="complete", completed_by="alice")
    assert (str(done.status), done.completed_by) == ("complete", "alice") and done.completed_time_ms
    assert [i.item_id for i in rq.list_review_queue_items(queue.queue_id, status="complete")] == [traces[0]]
    assert len(rq.list_review_queue_items(queue.queue_id, status="pending")) == 2
    mine = rq.get_or_create_user_queue(user="Carol")
    assert mine.name == "carol" and rq.get_or_create_user_queue(user="carol").queue_id == mine.queue_id
    assert {q.name for q in rq.list_review_queues()} == {"weekly", "carol"}
    assert [q.name for q in rq.list_review_queues(user="BOB")] == ["weekly"]
    renamed = rq.update_review_queue(queue.queue_id, name="Weekly review", users=["dan"])
    assert (renamed.name, renamed.users) == ("Weekly review", ["dan"])
    with pytest.raises(mlflow.exceptions.MlflowException, match="locked once items"):
        rq.update_review_queue(queue.queue_id, schema_ids=[correct.schema_id])
    # A reviewer's answer is an ordinary assessment on the trace, named after the question.
    mlflow.log_feedback(trace_id=traces[0], name="correct", value=True, source=mlflow.entities.AssessmentSource(source_type="HUMAN", source_id="alice"))
    assert [a.name for a in mlflow.get_trace(traces[0]).info.assessments] == ["correct"]
    rq.remove_items_from_review_queue(queue.queue_id, item_ids=traces[1:])
    assert [i.item_id for i in rq.list_review_queue_items(queue.queue_id)] == [traces[0]]
    rq.delete_review_queue(queue.queue_id)
    assert {q.name for q in rq.list_review_queues()} == {"carol"}
    ls.delete_label_schema(schema_id=topic.schema_id)
    with pytest.raises(mlflow.exceptions.MlflowException, match="default question cannot be deleted"):
        ls.delete_label_schema(schema_id=ls.get_label_schema("Feedback", experiment_id=exp.experiment_id).schema_id)


def test_openai_autolog_against_a_local_fake_provider(server):
    """`mlflow.openai.autolog()` with the stock `openai` client talking to a local
    OpenAI-compatible fake (no network): each call is a trace on tandem with its LLM span, the
    request and answer, and the token usage the provider reported; the trace-metrics view
    counts the tokens; an async call is traced too."""
    import asyncio

    import mlflow
    import openai

    from fake_openai import FakeOpenAI

    fake = FakeOpenAI()
    try:
        mlflow.set_tracking_uri(server.url)
        exp = mlflow.set_experiment("openai-autolog")
        mlflow.openai.autolog()
        try:
            client = openai.OpenAI(base_url=fake.url, api_key=fake.key)
            answer = client.chat.completions.create(model="gpt-fake", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content == "hello from fake"

            async def call():
                c = openai.AsyncOpenAI(base_url=fake.url, api_key=fake.key)
                return await c.chat.completions.create(model="gpt-fake", messages=[{"role": "user", "content": "again"}])

            asyncio.run(call())
            mlflow.flush_trace_async_logging() if hasattr(mlflow, "flush_trace_async_logging") else None
        finally:
            mlflow.openai.autolog(disable=True)
        traces = mlflow.search_traces(locations=[exp.experiment_id], return_type="list", order_by=["timestamp_ms ASC"])
        assert len(traces) == 2, traces
        for t, question in zip(traces, ["hi", "again"]):
            assert t.info.state.value == "OK"
            spans = t.data.spans
            assert [s.span_type for s in spans] == ["CHAT_MODEL"], [s.span_type for s in spans]
            assert spans[0].inputs["messages"][0]["content"] == question
            assert spans[0].outputs["choices"][0]["message"]["content"] == "hello from fake"
            assert t.info.token_usage == {"input_tokens": 5, "output_tokens": 4, "total_tokens": 9}, t.info.token_usage
        assert [s["body"]["model"] for s in fake.seen] == ["gpt-fake", "gpt-fake"]
        r = requests.post(server.url + "/api/3.0/mlflow/traces/metrics", timeout=30, json={
            "experiment_ids": [exp.experiment_id], "view_type": "TRACES", "metric_name": "total_tokens", "aggregations": [{"aggregation_type": "SUM"}]})
        assert r.json()["data_points"][0]["values"] == {"SUM": 18.0}, r.text
    finally:
        fake.stop()


def test_prompt_registry_through_the_stock_client(server):
    """The prompt registry as the client uses it: versions, aliases, `prompts:/` URIs, tags,
    model configs, searches that keep prompts apart from models, and a trace linked to the
    prompt version it used."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    mlflow.set_experiment("prompts-client")
    v1 = mlflow.genai.register_prompt(name="greeter", template="Hello {{name}}!", commit_message="first", tags={"team": "a"})
    v2 = mlflow.genai.register_prompt(name="greeter", template=[{"role": "user", "content": "Hi {{name}}"}], commit_message="chat")
    assert (v1.version, v2.version) == (1, 2)
    assert mlflow.genai.load_prompt("prompts:/greeter/1").format(name="Ann") == "Hello Ann!"
    assert mlflow.genai.load_prompt("prompts:/greeter/2").format(name="Ann") == [{"role": "user", "content": "Hi Ann"}]
    mlflow.genai.set_prompt_alias("greeter", alias="production", version=1)
    assert mlflow.genai.load_prompt("prompts:/greeter@production").version == 1
    assert mlflow.genai.load_prompt("prompts:/greeter@latest").version == 2
    mlflow.genai.set_prompt_tag("greeter", "owner", "bob")
    assert mlflow.genai.get_prompt_tags("greeter")["owner"] == "bob"
    mlflow.genai.set_prompt_version_tag("greeter", 2, "reviewed", "yes")
    assert mlflow.genai.load_prompt("prompts:/greeter/2").tags["reviewed"] == "yes"
    mlflow.genai.set_prompt_model_config("greeter", 1, {"model_name": "gpt-fake", "temperature": 0.2})
    assert mlflow.genai.load_prompt("prompts:/greeter/1").model_config["temperature"] == 0.2
    # Prompts and models are kept apart in searches, as MLflow keeps them.
    MlflowClient().create_registered_model("a-model")
    assert [p.name for p in mlflow.genai.search_prompts()] == ["greeter"]
    assert "greeter" not in [m.name for m in MlflowClient().search_registered_models()]
    assert "a-model" in [m.name for m in MlflowClient().search_registered_models()]
    # A trace that used the prompt is linked to its version and found by it.
    with mlflow.start_span(name="greet") as span:
        mlflow.genai.load_prompt("prompts:/greeter@production").format(name="Bo")
        span.set_outputs("Hello Bo!")
    # (The client links them on a thread of its own once the trace is exported.)
    deadline = time.time() + 15
    while True:
        linked = mlflow.search_traces(filter_string="prompt = 'greeter/1'", return_type="list")
        if linked or time.time() > deadline:
            break
        time.sleep(0.2)
    assert [t.info.trace_id for t in linked] == [span.trace_id]
    mlflow.genai.delete_prompt_alias("greeter", alias="production")
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.genai.load_prompt("prompts:/greeter@production")


def test_async_trace_logging_loses_nothing_once_flushed(server, monkeypatch):
    """The client's default, asynchronous trace export (a queue and worker threads): every
    trace of a burst is on tandem, whole, once the client flushed its queue."""
    import mlflow

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "true")
    mlflow.set_tracking_uri(server.url)
    exp = mlflow.set_experiment("traces-async")

    @mlflow.trace
    def step(i):
        with mlflow.start_span(name="inner") as s:
            s.set_inputs({"i": i})
        return i * 2

    for i in range(40):
        step(i)
    mlflow.flush_trace_async_logging(terminate=False)
    traces = mlflow.search_traces(locations=[exp.experiment_id], return_type="list", max_results=100)
    assert len(traces) == 40
    for t in traces[:5]:
        full = mlflow.get_trace(t.info.trace_id)
        assert sorted(s.name for s in full.data.spans) == ["inner", "step"]
