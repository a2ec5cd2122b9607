"Feedback loop: the store under concurrent writers, the review widget, import/export, the trigger, watch, model versions, metrics."
import json, signal, sqlite3, subprocess, sys, textwrap, threading, time, urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from finetune_nb.config import FineTuneConfig
from finetune_nb.core import DataError, FinetuneNBError
from finetune_nb.feedback import (MIGRATIONS, FeedbackStore, check_trigger, export_feedback, feedback_paths, feedback_pairs,
                                  import_feedback, open_store, review)
from finetune_nb.versions import (ModelRegistry, list_models, promote_model, read_metrics, register_model,
                                  rollback_model, serve_metrics, watch, write_run_metrics)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cfg(tmp_path):
    return FineTuneConfig.validate({"project": {"name": "demo", "output_dir": str(tmp_path/"runs")},
                                    "data": {"input_path": str(tmp_path/"raw")}})


@pytest.fixture
def store(tmp_path):
    s = FeedbackStore(tmp_path/"fb.db"); yield s; s.close()


def _fresh(path, sql, *args):
    "Read with a new connection, as another process would."
    con = sqlite3.connect(path)
    try: return con.execute(sql, args).fetchall()
    finally: con.close()


# ---------------------------------------------------------------- store and concurrency

def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    "A CLI-style import (batches) and a widget-style writer (one row per transaction, then updates) in separate processes."
    db, go = tmp_path/"fb.db", tmp_path/"go"
    rows = tmp_path/"outputs.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"import {i}", "response": f"out {i}"}) + "\n" for i in range(300)))
    prelude = f"import os, time, sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom finetune_nb.feedback import *\n" \
              f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\nstore = FeedbackStore({str(db)!r})\n"
    importer = prelude + f"r = import_feedback(store, {str(rows)!r}, batch=10)\nassert r.added == 300, r\n"
    widget = prelude + textwrap.dedent("""
        ids = [store.add(f"widget {i}", f"out {i}", source="widget") for i in range(300)]
        for i, id in enumerate(ids): store.update(id, rating=1 + i % 5, corrected=f"fixed {i}")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for code in (importer, widget)]
    time.sleep(0.3); go.touch()  # both processes open (and migrate) the new database at the same moment
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    assert _fresh(db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM feedback") == [(600, 600)]
    assert _fresh(db, "SELECT COUNT(*) FROM feedback WHERE source='widget' AND corrected IS NOT NULL AND rating IS NOT NULL") == [(300,)]
    assert _fresh(db, "SELECT version FROM schema_version") == [(len(MIGRATIONS),)]
    # every transaction bumped the revision counter exactly once: 30 import batches + 300 adds + 300 updates
    assert FeedbackStore(db).current_rev() == 630


def test_threads_share_a_store_with_one_connection_each(store):
    def work(t): [store.add(f"t{t} q{i}", "a") for i in range(50)]
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert store.stats().total == 200


def test_store_rejects_bad_values_naming_the_field(store):
    i = store.add("q", "a")
    with pytest.raises(ValueError, match="field 'score': must be a number from 0 to 1"): store.update(i, score=1.5)
    with pytest.raises(ValueError, match="field 'input': must be a non-empty string"): store.add("  ", "a")
    with pytest.raises(ValueError, match="unknown feedback fields: colour"): store.add_many([{"input": "q", "output": "b", "colour": 1}])
    assert store.get(i).score is None


def test_newer_schema_is_refused(tmp_path):
    FeedbackStore(tmp_path/"fb.db").close()
    con = sqlite3.connect(tmp_path/"fb.db"); con.execute("UPDATE schema_version SET version=99"); con.commit(); con.close()
    with pytest.raises(FinetuneNBError, match="schema version 99 is newer"): FeedbackStore(tmp_path/"fb.db")


# ---------------------------------------------------------------- review widget

def test_widget_edits_are_on_disk_at_once_and_survive_a_restart(tmp_path):
    db = tmp_path/"fb.db"
    s = FeedbackStore(db)
    ids = [s.add(f"log line {i}", f"model says {i}", fields={"category": "disk"}) for i in range(3)]
    w = review(s, user="ana")
    assert w.input.value == "log line 0" and w.output.value == "model says 0" and w.corrected.value == "model says 0"
    w.corrected.value = "a better answer"
    assert _fresh(db, "SELECT corrected, user FROM feedback WHERE id=?", ids[0]) == [("a better answer", "ana")]
    w.fields["severity"].value = "high"
    w.rating.value = 4
    assert _fresh(db, "SELECT rating, json_extract(fields, '$.category'), json_extract(fields, '$.severity') FROM feedback WHERE id=?",
                  ids[0]) == [(4, "disk", "high")]
    w.accept_button.click()
    assert w.record.id == ids[1]
    w.rating.value = 2
    w.skip_button.click()
    assert _fresh(db, "SELECT id, status, rating FROM feedback ORDER BY id") == [(ids[0], "accepted", 4), (ids[1], "skipped", 2), (ids[2], "pending", None)]
    w.prev_button.click()  # going back shows what was saved
    assert (w.record.id, w.rating.value) == (ids[1], 2)
    w.corrected.value = "model says 1"  # typing the model's answer back means "not corrected"
    assert _fresh(db, "SELECT corrected FROM feedback WHERE id=?", ids[1]) == [(None,)]
    s.close()
    # a "kernel restart": a new store object and widget see everything, and queue what is still pending
    w2 = review(FeedbackStore(db))
    assert w2.ids == [ids[2]]
    assert review(FeedbackStore(db), status=None, ids=[ids[0]]).corrected.value == "a better answer"


def test_widget_reports_the_end_of_the_queue(store):
    i = store.add("q", "a")
    w = review(store)
    w.accept_button.click()
    assert w.record is None and "All 1 rows reviewed" in w.header.value and w.accept_button.disabled
    w.rating.value = 5  # nothing on screen: nothing is written
    assert store.get(i).rating is None


def test_review_uses_the_configs_fields(cfg):
    cfg.feedback.review_fields = ["team"]
    open_store(cfg).add("q", "a")
    assert list(review(cfg).fields) == ["team"]


# ---------------------------------------------------------------- import

def test_import_names_every_bad_row_by_file_and_line(store, tmp_path):
    f = tmp_path/"outputs.jsonl"
    f.write_text("\n".join([
        json.dumps({"input": "ok 1", "output": "a", "severity": "low", "score": 0.9}),
        '{"input": "broken",',
        json.dumps(["not", "an", "object"]),
        json.dumps({"input": "no output"}),
        json.dumps({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ok 2"},
                                 {"role": "assistant", "content": "b"}], "metadata": {"rating": 5}}),
        json.dumps({"context": "ctx", "input": "ok 3", "output": "c", "rating": "3"}),
    ]) + "\n")
    r = import_feedback(store, f)
    assert (r.added, r.duplicates) == (3, 0)
    assert [(s.line, s.reason.split(":")[0]) for s in r.skipped] == [(2, "not valid JSON"), (3, "expected a JSON object, got list"), (4, "field 'output'")]
    assert f"{f}:4: field 'output': missing" in str(r)
    rows = store.list()
    assert [(x.input, x.system, x.rating, x.score, x.fields, x.source) for x in rows] == [
        ("ok 1", None, None, 0.9, {"severity": "low"}, "outputs.jsonl:1"),
        ("ok 2", "be brief", 5, None, {}, "outputs.jsonl:5"),
        ("ctx\n\nok 3", None, 3, None, {}, "outputs.jsonl:6")]
    with pytest.raises(DataError, match=r"outputs.jsonl:2: not valid JSON") as e: import_feedback(store, f, on_error="fail")
    assert e.value.line == 2 and store.stats().total == 3  # "fail" stored nothing of the file
    assert import_feedback(store, f).duplicates == 3  # importing again adds nothing


def test_import_csv_with_structured_columns(store, tmp_path):
    f = tmp_path/"o.csv"
    f.write_text('prompt,response,category,severity\n"multi\nline",x,net,low\nq2,y,disk,high,EXTRA\n')
    r = import_feedback(store, f)
    assert r.added == 1 and [(s.line, "more values" in s.reason) for s in r.skipped] == [(4, True)]
    assert store.list()[0].fields == {"category": "net", "severity": "low"} and store.list()[0].input == "multi\nline"
    with pytest.raises(DataError, match="file not found"): import_feedback(store, tmp_path/"nope.csv")


# ---------------------------------------------------------------- export

def test_export_filters_by_rating_and_version(store, tmp_path):
    ids = {r: store.add(f"q rated {r}", f"a{r}", rating=r) for r in range(1, 6)}
    store.add("q scored", "s", score=0.6)     # 0.6 = rating 3: kept at --min-rating 3
    store.add("q low score", "s", score=0.59)
    store.add("q unrated", "u")
    store.update(ids[4], corrected="corrected four")
    store.add("q skipped", "k", rating=5, status="skipped")
    out = tmp_path/"fb.jsonl"
    assert export_feedback(store, out, min_rating=3) == 4
    recs = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in recs] == ["q rated 3", "q rated 4", "q rated 5", "q scored"]
    four = recs[1]
    assert four["messages"] == [{"role": "user", "content": "q rated 4"}, {"role": "assistant", "content": "corrected four"}]
    assert four["metadata"]["source"] == "user_feedback" and four["metadata"]["feedback_id"] == ids[4] and four["metadata"]["rating"] == 4
    assert export_feedback(store, out, min_rating=5) == 1
    store.record_version("demo-v1", store.current_rev())
    store.add("q after v1", "n", rating=3); store.update(ids[1], rating=5)
    assert export_feedback(store, out, min_rating=3, since_version="demo-v1") == 2
    assert {json.loads(l)["metadata"]["feedback_id"] for l in out.read_text().splitlines()} >= {ids[1]}
    assert export_feedback(store, out, since_version="v1") == 2
    with pytest.raises(FinetuneNBError, match="'demo-v2' is not known.*known versions: demo-v1"): export_feedback(store, out, since_version="demo-v2")


def test_empty_corrections_are_never_exported_or_paired_silently(store, tmp_path):
    a = store.add("q empty", "answer a", rating=5, corrected=" ")
    b = store.add("q same", "answer b", rating=5, corrected="answer b")
    c = store.add("q fixed", "answer c", rating=5, corrected="better c")
    skipped, out = [], tmp_path/"fb.jsonl"
    assert export_feedback(store, out, skipped=skipped) == 2  # the unchanged correction still trains: it is the answer
    assert [s.reason for s in skipped] == [f"feedback id {a}: empty correction"]
    assert all(json.loads(l)["messages"][-1]["content"].strip() for l in out.read_text().splitlines())
    skipped = []
    pairs = feedback_pairs(store, skipped)
    assert [(p["metadata"]["feedback_id"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [(c, "better c", "answer c")]
    assert [s.reason for s in skipped] == [f"feedback id {a}: empty correction",
                                           f"feedback id {b}: chosen equals rejected (the correction repeats the output)"]


# ---------------------------------------------------------------- trigger and watch

def test_trigger_fires_at_the_threshold_and_not_below(store):
    store.add("r3", "a", rating=3); store.add("s79", "a", score=0.79)  # below 0.8: never count
    for i in range(4): store.add(f"q{i}", "a", rating=4 if i % 2 else None, score=None if i % 2 else 0.8)
    d = check_trigger(store, threshold=5, min_score=0.8)
    assert (d.fire, d.count) == (False, 4) and "wait for 1 more" in str(d)
    last = store.add("q4", "a", rating=5)
    d = check_trigger(store, threshold=5, min_score=0.8)
    assert (d.fire, d.count, d.last_id) == (True, 5, last)
    assert check_trigger(store, threshold=6, min_score=0.6).fire is True  # rating 3 = 0.6 counts at min_score 0.6


def test_feedback_judge_scores_pending_rows_until_the_trigger_fires(tmp_path, cli):
    "`finetune-nb feedback judge` against the fake API (real HTTP): judged rows count towards the threshold, nothing else does."
    from finetune_nb.testing import KEY, FakeAnthropic, tag
    cfg_path = tmp_path/"config.yaml"
    cfg_path.write_text(json.dumps({"project": {"name": "demo", "output_dir": str(tmp_path/"runs")}, "data": {"input_path": str(tmp_path/"raw")},
                                    "feedback": {"threshold": 100, "min_score": 0.8}}))
    cfg = FineTuneConfig.from_yaml(cfg_path)
    rows = [{"prompt": f"alert {i}", "response": f"good: cause {i}"} for i in range(100)] + \
           [{"prompt": f"alert {i}", "response": "meh"} for i in range(100, 110)] + \
           [{"prompt": "rated", "response": "good: rated by a person", "rating": 2},
            {"prompt": "emptied", "response": "good: but corrected to nothing", "corrected": " "}]
    (tmp_path/"outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert import_feedback(cfg, tmp_path/"outputs.jsonl").added == 112
    with FakeAnthropic() as fake:
        fake.judge = lambda tool, prompt: {"reason": "names a cause" if "good" in tag(prompt, "answer") else "says nothing",
                                           "score": 5 if "good" in tag(prompt, "answer") else 3}
        env = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": KEY}
        r = cli("feedback", "judge", "-c", cfg_path, "--limit", "99", "-q", env=env)
        assert r.returncode == 0, r.stderr
        assert "99 pending rows scored by anthropic:claude-sonnet-4-5" in r.stdout and "wait for 1 more" in r.stdout
        r = cli("feedback", "judge", "-c", cfg_path, "-q", env=env)
        assert r.returncode == 0, r.stderr
        assert "11 pending rows scored" in r.stdout and "1 not judged" in r.stdout and "empty correction" in r.stdout
        assert "100 new samples with quality >= 0.8" in r.stdout and "start a run" in r.stdout
        assert fake.message_requests == 110  # the rated row and the empty correction were not sent
        r = cli("feedback", "judge", "-c", cfg_path, "-q", env=env)
        assert "0 pending rows scored" in r.stdout and fake.message_requests == 110
    store = open_store(cfg)
    got = {rec.input: rec for rec in store.list()}
    assert got["alert 0"].score == 1.0 and got["alert 105"].score == 0.6 and got["rated"].score is None
    assert got["alert 0"].score_by == "anthropic:claude-sonnet-4-5" and got["alert 0"].score_rubric.startswith("qa:")
    assert got["alert 0"].score_reason == "names a cause" and got["emptied"].score is None
    d = check_trigger(store, threshold=100, min_score=0.8)
    assert (d.fire, d.count) == (True, 100)
    assert KEY not in cfg_path.read_text() and not any(KEY.encode() in p.read_bytes() for p in store.path.parent.iterdir() if p.is_file())
    r = cli("feedback", "judge", "-c", cfg_path, env={"ANTHROPIC_API_KEY": ""})
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: the judge cannot run: ANTHROPIC_API_KEY is not set")


def test_watch_runs_the_pipeline_once_at_the_threshold_and_records_why(cfg):
    store, calls = open_store(cfg), []
    def pipeline(config):
        calls.append(feedback_paths(config).export.read_text().count("\n"))
        (config.run_dir/"adapter").mkdir(parents=True, exist_ok=True)
        (config.run_dir/"adapter"/"adapter_model.safetensors").write_bytes(b"w%d" % len(calls))
    for i in range(2): store.add(f"q{i}", "a", rating=5)
    assert [r.status for r in watch(cfg, pipeline, threshold=3, check_once=True)] == ["waiting"] and calls == []
    ids = [store.add(f"q{i}", "a", rating=4) for i in range(2, 4)] + [store.add("low", "a", rating=2)]
    res = watch(cfg, pipeline, threshold=3, max_checks=3, interval=0.01)  # a bounded loop: fires once, then waits
    assert [r.status for r in res] == ["ok", "waiting", "waiting"] and calls == [4]
    v = list_models(cfg)[-1]
    assert v.name == "demo-v1" and v.trigger["sample_count"] == 4 and (v.trigger["first_id"], v.trigger["last_id"]) == (1, ids[1])
    t = store.triggers()[0]
    assert (t["status"], t["version"], t["sample_count"]) == ("ok", "demo-v1", 4)
    assert f"by 4 samples (ids 1..{ids[1]}): ok -> demo-v1" in str(store.stats())


def test_watch_records_a_failed_run_and_retries_it(cfg):
    store = open_store(cfg)
    for i in range(3): store.add(f"q{i}", "a", rating=5)
    def broken(config): raise RuntimeError("CUDA out of memory")
    with pytest.raises(RuntimeError, match="out of memory"): watch(cfg, broken, threshold=3, check_once=True)
    assert store.triggers()[0]["status"] == "failed" and "RuntimeError: CUDA out of memory" in store.triggers()[0]["error"]
    def nothing(config): pass  # a run that leaves no model
    assert watch(cfg, nothing, threshold=3, check_once=True)[0].status == "no_model"


def test_watch_attaches_the_trigger_to_the_version_the_pipeline_registered(cfg):
    store = open_store(cfg)
    for i in range(2): store.add(f"q{i}", "a", rating=5)
    def pipeline(config):
        (config.run_dir/"model_set_config.json").parent.mkdir(parents=True, exist_ok=True)
        (config.run_dir/"model_set_config.json").write_text("{}")
        register_model(config, metrics={"eval_loss": 0.5})
    res = watch(cfg, pipeline, threshold=2, check_once=True)[0]
    assert (res.status, res.version) == ("ok", "demo-v1") and len(list_models(cfg)) == 1
    v = list_models(cfg)[0]
    assert (v.kind, v.metrics, v.trigger["sample_count"], v.feedback_rev) == ("model_set_config", {"eval_loss": 0.5}, 2, store.current_rev())
    assert check_trigger(store, threshold=1).count == 0


def test_a_watch_killed_mid_run_is_retried(cfg, tmp_path):
    "A real SIGKILL of the process running the pipeline leaves a 'running' trigger; the next watch marks it interrupted and retries."
    cfg_file = tmp_path/"cfg.yaml"; cfg.to_yaml(cfg_file)
    store = open_store(cfg)
    for i in range(3): store.add(f"q{i}", "a", rating=5)
    code = textwrap.dedent(f"""
        import sys, time; sys.path.insert(0, {str(ROOT)!r})
        from finetune_nb.config import FineTuneConfig
        from finetune_nb.versions import watch
        def pipeline(config): print("training", flush=True); time.sleep(600)
        watch(FineTuneConfig.from_yaml({str(cfg_file)!r}), pipeline, threshold=3, check_once=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try: assert child.stdout.readline().strip() == "training"
    finally: child.send_signal(signal.SIGKILL); child.wait()
    assert store.triggers()[0]["status"] == "running" and check_trigger(store, threshold=3).count == 0
    runs = []
    def pipeline(config):
        runs.append(1); (config.run_dir/"model_set_config.json").write_text("{}")
    res = watch(cfg, pipeline, threshold=3, check_once=True)[0]
    assert (res.status, runs) == ("ok", [1])
    assert [t["status"] for t in store.triggers()] == ["ok", "interrupted"]


def test_watch_stops_when_asked(cfg):
    stop, seen = threading.Event(), []
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    res = watch(cfg, lambda c: seen.append(c), threshold=1, interval=30, stop=stop)
    assert len(res) == 1 and time.monotonic() - t0 < 10 and seen == []


# ---------------------------------------------------------------- model versions

def _run_with_adapter(cfg, content:bytes):
    (cfg.run_dir/"adapter").mkdir(parents=True, exist_ok=True)
    (cfg.run_dir/"adapter"/"adapter_model.safetensors").write_bytes(content)
    (cfg.run_dir/"data").mkdir(exist_ok=True)
    (cfg.run_dir/"data"/"train.jsonl").write_bytes(content + b"\n")


def test_register_promote_rollback(cfg):
    for i in range(3):
        _run_with_adapter(cfg, b"weights %d" % i)
        register_model(cfg, metrics={"eval_loss": 1.0 / (i + 1)})
    vs = list_models(cfg)
    assert [v.name for v in vs] == ["demo-v1", "demo-v2", "demo-v3"] and not any(v.production for v in vs)
    assert (vs[0].path/"adapter"/"adapter_model.safetensors").read_bytes() == b"weights 0"
    assert (vs[0].path/"config.yaml").is_file() and len({v.data_hashes["data/train.jsonl"] for v in vs}) == 3
    promote_model(cfg, "demo-v1"); promote_model(cfg, "v2"); promote_model(cfg, "3")
    pointer = feedback_paths(cfg).models/"production.json"
    assert not pointer.is_symlink() and json.loads(pointer.read_text())["version"] == "demo-v3"
    assert rollback_model(cfg).name == "demo-v2"
    assert rollback_model(cfg).name == "demo-v1"
    assert [v.name for v in list_models(cfg) if v.production] == ["demo-v1"]
    with pytest.raises(FinetuneNBError, match="no earlier production version.*demo-v1 is the only one"): rollback_model(cfg)
    with pytest.raises(FinetuneNBError, match="no model version 'demo-v9'.*registered versions: demo-v1, demo-v2, demo-v3"):
        promote_model(cfg, "demo-v9")


def test_rollback_refuses_a_deleted_version(cfg):
    _run_with_adapter(cfg, b"w")
    a, b = register_model(cfg), register_model(cfg)
    promote_model(cfg, a.name); promote_model(cfg, b.name)
    import shutil; shutil.rmtree(a.path)
    with pytest.raises(FinetuneNBError, match="previous production version demo-v1 no longer exists"): rollback_model(cfg)


def test_concurrent_registrations_get_distinct_versions(cfg):
    _run_with_adapter(cfg, b"w")
    out = []
    threads = [threading.Thread(target=lambda: out.append(register_model(cfg).name)) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert sorted(out) == ["demo-v1", "demo-v2", "demo-v3", "demo-v4"]


def test_register_without_a_model_says_so(cfg):
    with pytest.raises(FinetuneNBError, match="holds no model"): register_model(cfg)
    assert not list(ModelRegistry(feedback_paths(cfg).models).list())


# ---------------------------------------------------------------- metrics

def test_metrics_accumulate_and_parse(cfg, tmp_path):
    write_run_metrics(cfg, "ok", duration_s=3.5, dataset_rows=120)
    write_run_metrics(cfg, "failed", duration_s=0.5, dataset_rows=120)
    p = write_run_metrics(cfg, "ok", duration_s=2.0, dataset_rows=20, fallback=True)
    assert p == cfg.run_dir/"metrics.prom"
    fams = {f.name: f for f in text_string_to_metric_families(p.read_text())}
    assert fams["finetune_nb_runs"].type == "counter"
    assert {(s.labels["project"], s.labels["status"]): s.value for s in fams["finetune_nb_runs"].samples} == {("demo", "ok"): 2.0, ("demo", "failed"): 1.0}
    assert fams["finetune_nb_fallback"].samples[0].value == 1.0
    assert fams["finetune_nb_run_duration_seconds"].samples[0].value == 2.0
    assert fams["finetune_nb_dataset_rows"].samples[0].value == 20.0
    # a shared project-level file keeps other projects' counts
    shared = tmp_path/"all.prom"
    other = FineTuneConfig.validate({"project": {"name": "other", "output_dir": str(tmp_path/"runs")}})
    write_run_metrics(cfg, "ok", 1, 1, path=shared); write_run_metrics(other, "ok", 1, 1, path=shared)
    assert read_metrics(shared)["finetune_nb_runs_total"] == {(("project", "demo"), ("status", "ok")): 1.0, (("project", "other"), ("status", "ok")): 1.0}


def test_serve_metrics_over_http(cfg):
    p = write_run_metrics(cfg, "ok", duration_s=1.0, dataset_rows=10)
    server, thread = serve_metrics(0, p)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        write_run_metrics(cfg, "ok", duration_s=1.0, dataset_rows=10)  # files are re-read at every scrape
        again = urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        server.shutdown(); server.server_close()
    runs = lambda text: {f.name: f for f in text_string_to_metric_families(text)}["finetune_nb_runs"].samples[0].value
    assert (runs(body), runs(again)) == (1.0, 2.0)


def _open_and_add(path, start, q, i):
    while time.time() < start: pass
    try:
        from finetune_nb.feedback import FeedbackStore
        FeedbackStore(path).add(input=f"question {i}", output="a"); q.put("ok")
    except Exception as e: q.put(repr(e))


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    "Switching a fresh database to WAL races between processes; every opener must still get in (regression)."
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    for r in range(8):
        path, q, start = tmp_path / f"fb{r}.db", ctx.Queue(), time.time() + 0.3
        procs = [ctx.Process(target=_open_and_add, args=(path, start, q, i)) for i in range(6)]
        for p in procs: p.start()
        results = [q.get(timeout=60) for _ in procs]
        for p in procs: p.join()
        assert results == ["ok"] * 6, results
        assert len(FeedbackStore(path).list()) == 6
