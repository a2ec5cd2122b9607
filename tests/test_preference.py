"""Preference tuning on the tiny built-in model, on the CPU: DPO and ORPO raise the chosen-over-rejected margin on
held-out pairs, QLoRA, SFT then DPO in a run, resume, pairs refused with their reasons, and the whole quality loop from the feedback
store (import, judge over real HTTP, trigger, DPO run, registered version)."""
import json

import pytest

from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ConfigError, DataError, write_jsonl


def pairs(lo, hi):
    "The answer chosen, a shrug rejected."
    return [{"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}], "chosen": [{"role": "assistant", "content": f"{i} plus {i} is {2*i}."}],
             "rejected": [{"role": "assistant", "content": "I do not know."}], "metadata": {}} for i in range(lo, hi)]


def facts(lo, hi):
    return [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"{i} plus {i} is {2*i}."}],
             "metadata": {"source": "facts.jsonl", "line": i + 1}} for i in range(lo, hi)]


def make_config(root, method="dpo", train_pairs=None, **training):
    "A CPU config for the tiny model with its pairs (24 to train on, 6 held out) where prepare-pairs writes them."
    t = dict(device="cpu", method=method, max_steps=8, batch_size=4, gradient_accumulation_steps=1, learning_rate=5e-3, eval_steps=4,
             save_steps=4, logging_steps=2, max_seq_length=128, report_to=["none"], warmup_ratio=0.0, gradient_checkpointing=False)
    cfg = FineTuneConfig.validate({"project": {"name": "pref", "output_dir": str(root)}, "training": {**t, **training}})
    write_jsonl(cfg.data_dir/"pairs_train.jsonl", pairs(0, 24) if train_pairs is None else train_pairs)
    write_jsonl(cfg.data_dir/"pairs_validation.jsonl", pairs(24, 30))
    return cfg


def margin_of(cfg, adapter=None):
    "The margin on the run's held-out pairs of the base model, or of the base with `adapter`, measured afresh."
    from finetune_nb.models import load_adapter, load_model
    from finetune_nb.preference import preference_margin, read_pairs
    from finetune_nb.templates import resolve_chat_template
    model, tok = load_model(cfg, device="cpu")
    if adapter is not None: model = load_adapter(model, adapter)
    return preference_margin(model, tok, resolve_chat_template(cfg, tok), [p for _, p in read_pairs(cfg.data_dir/"pairs_validation.jsonl")])


@pytest.fixture(scope="module")
def dpo(tmp_path_factory):
    "One DPO run from the base model: 10 steps."
    from finetune_nb.preference import fine_tune
    cfg = make_config(tmp_path_factory.mktemp("dpo"), max_steps=10, eval_steps=5, save_steps=5)
    res = fine_tune(cfg)
    return cfg, res, json.loads((cfg.run_dir/"metadata.json").read_text())


def test_dpo_raises_the_chosen_over_rejected_margin_on_held_out_pairs(dpo):
    cfg, res, meta = dpo
    before, after = meta["margins"]["before"], meta["margins"]["after"]
    print(f"\nDPO, 10 steps: held-out margin {before['margin']:.2f} -> {after['margin']:.2f}, accuracy {before['accuracy']:.0%} -> {after['accuracy']:.0%}")
    assert before["pairs"] == after["pairs"] == 6
    assert after["margin"] > before["margin"] + 2 and after["accuracy"] == 1.0 > before["accuracy"]
    # measured afresh: the base model gives the "before", the saved adapter the "after"
    assert margin_of(cfg)["margin"] == pytest.approx(before["margin"], abs=1e-3)
    assert margin_of(cfg, res.adapter_dir)["margin"] == pytest.approx(after["margin"], abs=1e-3)
    assert meta["method"] == "dpo" and meta["start_adapter"] is None and res.global_step == 10
    assert meta["data"]["train"]["pairs"] == 24 and meta["data"]["validation"]["pairs"] == 6 and meta["data"]["train"]["pairs_without_eos"] == 0
    assert any("rewards/margins" in h for h in res.log_history) and meta["metrics"]["eval_loss"] < 0.69  # below log 2: prefers the chosen
    assert not [p for p in res.adapter_dir.iterdir() if p.is_dir()]  # DPO's frozen reference copy is not saved with the adapter
    assert (cfg.run_dir/"training_config.yaml").is_file() and (cfg.run_dir/"log_history.json").is_file()


def test_orpo_trains_without_a_reference_and_raises_the_margin(tmp_path):
    from finetune_nb.preference import fine_tune
    cfg = make_config(tmp_path, method="orpo", max_steps=6, eval_steps=6, save_steps=6)
    fine_tune(cfg)
    m = json.loads((cfg.run_dir/"metadata.json").read_text())["margins"]
    assert m["after"]["margin"] > m["before"]["margin"] + 1, m


def test_dpo_over_a_4bit_base_on_the_cpu(tmp_path):
    "QLoRA: the frozen base in NF4 (bitsandbytes), DPO's reference being that base with the adapter off."
    from finetune_nb.preference import fine_tune
    cfg = make_config(tmp_path, max_steps=4, eval_steps=4, save_steps=4)
    cfg.model.use_qlora = True
    res = fine_tune(cfg)
    meta = json.loads((cfg.run_dir/"metadata.json").read_text())
    assert meta["margins"]["after"]["margin"] > meta["margins"]["before"]["margin"] + 5, meta["margins"]
    assert json.loads((res.adapter_dir/"adapter_config.json").read_text())["base_model_name_or_path"]


def test_pairs_that_teach_nothing_are_refused_before_training(tmp_path):
    from finetune_nb.preference import train_preference
    from finetune_nb.train import train
    bad = pairs(0, 4) + [{"prompt": [{"role": "user", "content": "Same?"}], "chosen": "yes", "rejected": "yes"}]
    cfg = make_config(tmp_path/"same", train_pairs=bad)
    with pytest.raises(DataError, match=r"pairs_train.jsonl:5: chosen equals rejected"): train_preference(cfg)
    long = pairs(0, 4) + [{"prompt": [{"role": "user", "content": "word " * 200}], "chosen": "a", "rejected": "b"}]
    cfg = make_config(tmp_path/"long", train_pairs=long)
    with pytest.raises(DataError, match=r"1 pair\(s\) leave no answer tokens within max_seq_length=128: lines 5"): train_preference(cfg)
    (cfg.data_dir/"pairs_train.jsonl").unlink()
    with pytest.raises(DataError, match="no preference pairs to train on.*prepare-pairs"): train_preference(cfg)
    with pytest.raises(ConfigError, match="training.method"): train(cfg)  # supervised training never runs in place of DPO
    cfg.training.method = "sft"
    with pytest.raises(ConfigError, match="has no preference step"): train_preference(cfg)


def test_prepare_pairs_counts_every_pair_it_leaves_out(tmp_path):
    from finetune_nb.feedback import import_feedback
    from finetune_nb.run import prepare_pairs
    (tmp_path/"pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"prompt": "Q1?", "chosen": "right", "rejected": "wrong"},
        {"chosen": [{"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "right"}],
         "rejected": [{"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "wrong"}]},
        {"prompt": "Q3?", "chosen": "same", "rejected": "same"},
        {"prompt": "Q1?", "chosen": "right", "rejected": "wrong"}]) + "not json\n")
    judged = [{"prompt": [{"role": "user", "content": f"J{i}?"}], "answers": {"base": "b", "tuned": "t"}, "winner": w, "consistent": c}
              for i, (w, c) in enumerate([("tuned", True), ("base", True), ("tie", False), ("tie", True), (None, None)])]
    (tmp_path/"judge_pairwise.jsonl").write_text("".join(json.dumps(r) + "\n" for r in judged))
    cfg = FineTuneConfig.validate({"project": {"name": "p", "output_dir": str(tmp_path/"runs")}, "data": {"input_path": str(tmp_path)},
                                   "training": {"method": "dpo", "preference": {"pairs": ["pairs.jsonl", "judge_pairwise.jsonl"], "validation_fraction": 0}}})
    cfg._source = tmp_path/"config.yaml"
    (tmp_path/"fb.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"prompt": "F1?", "response": "old", "corrected": "new"}, {"prompt": "F2?", "response": "old", "corrected": " "},
        {"prompt": "F3?", "response": "old", "corrected": "old"}, {"prompt": "F4?", "response": "no correction"}]))
    import_feedback(cfg, tmp_path/"fb.jsonl")
    info = prepare_pairs(cfg)
    assert info["counts"] == {"train": 5, "validation": 0, "skipped": 8}
    assert info["skipped_by_reason"] == {"chosen equals rejected: the pair prefers nothing": 1, "not valid JSON: Expecting value at column N": 1,
                                         "judged pair not used: the orders disagreed": 1, "judged pair not used: a tie": 1,
                                         "judged pair not used: the verdict failed": 1, "feedback id N: empty correction": 1,
                                         "feedback id N: chosen equals rejected (the correction repeats the output)": 1, "duplicate pair": 1}
    assert {(s["file"], s.get("line")) for s in info["skipped"] if "pairs.jsonl" in s["file"]} == {(str(tmp_path/"pairs.jsonl"), n) for n in (3, 4, 5)}
    rows = [json.loads(l) for l in (cfg.data_dir/"pairs_train.jsonl").read_text().splitlines()]
    assert [(r["prompt"][-1]["content"], r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == \
        [("Q1?", "right", "wrong"), ("Q2?", "right", "wrong"), ("J0?", "t", "b"), ("J1?", "b", "t"), ("F1?", "new", "old")]
    assert rows[4]["metadata"]["origin"] == "feedback" and rows[2]["metadata"]["origin"] == "judge"


def test_run_does_sft_then_dpo_and_reruns_only_what_a_change_touches(tmp_path, cli):
    from finetune_nb.run import run_finetune
    (tmp_path/"raw").mkdir()
    write_jsonl(tmp_path/"raw"/"facts.jsonl", facts(0, 60))
    write_jsonl(tmp_path/"pairs.jsonl", pairs(0, 30))
    t = dict(device="cpu", method="sft+dpo", max_steps=3, batch_size=4, gradient_accumulation_steps=1, learning_rate=5e-3, eval_steps=3,
             save_steps=3, logging_steps=1, max_seq_length=128, report_to=["none"], warmup_ratio=0.0, gradient_checkpointing=False,
             preference={"pairs": ["pairs.jsonl"], "validation_fraction": 0.2})
    (tmp_path/"config.yaml").write_text(json.dumps({"project": {"name": "both", "output_dir": "runs"},
        "data": {"input_path": "raw", "augmentation": {"instruction_variations": False, "dedup": "exact"}}, "training": t,
        "evaluation": {"num_prompts": 2, "max_new_tokens": 8, "compare_base": False}, "export": {"merge": False}}))
    cfg = FineTuneConfig.from_yaml(tmp_path/"config.yaml")
    res = run_finetune(cfg)
    assert res.mode == "finetuned" and [(o.name, o.status) for o in res.stages] == \
        [(n, "ran") for n in ("prepare-data", "train", "prepare-pairs", "preference", "evaluate")] + [("export", "not run: export.merge is off")]
    sft = cfg.run_dir/"sft"
    assert json.loads((sft/"metadata.json").read_text())["global_step"] == 3
    assert list((cfg.run_dir/"checkpoints"/"sft").glob("checkpoint-3")) and list((cfg.run_dir/"checkpoints").glob("checkpoint-3"))
    meta = json.loads((cfg.run_dir/"metadata.json").read_text())
    assert meta["method"] == "sft+dpo" and meta["start_adapter"] == str(sft/"adapter") and res.metadata["status"] == "success"
    # DPO trained the supervised adapter further: its "before" is the supervised model's margin (the reference), not the base's
    assert meta["margins"]["before"]["margin"] == pytest.approx(margin_of(cfg, sft/"adapter")["margin"], abs=1e-3)
    assert meta["margins"]["before"]["margin"] != pytest.approx(margin_of(cfg)["margin"], abs=0.1)
    assert meta["margins"]["after"]["margin"] > meta["margins"]["before"]["margin"]
    cfg.training.preference.beta = 0.2  # a preference setting: the supervised step stays up to date
    res = run_finetune(cfg)
    assert [(o.name, o.status) for o in res.stages][:4] == [("prepare-data", "skipped (up to date)"), ("train", "skipped (up to date)"),
                                                            ("prepare-pairs", "ran"), ("preference", "ran")]
    r = cli("prepare-pairs", tmp_path/"config.yaml")
    assert r.returncode == 0 and r.stdout.startswith(f"{json.loads((cfg.data_dir/'pairs_info.json').read_text())['counts']['train']} pairs to train on"), r.stderr
    (tmp_path/"pairs.jsonl").write_text(json.dumps({"prompt": "Same?", "chosen": "yes", "rejected": "yes"}) + "\n")
    r = cli("prepare-pairs", tmp_path/"config.yaml")
    assert r.returncode == 1 and "error: " in r.stderr and "no usable preference pairs: 1 × chosen equals rejected" in r.stderr


def test_resume_continues_a_preference_run(dpo):
    "Last: it trains the module's run further."
    from finetune_nb.preference import train_preference
    cfg, _, _ = dpo
    cfg = cfg.model_copy(deep=True); cfg.training.max_steps = 12
    res = train_preference(cfg, resume=True)
    meta = json.loads((cfg.run_dir/"metadata.json").read_text())
    assert res.global_step == 12 and meta["resumed_from"].endswith("checkpoint-10")


def test_the_quality_loop_from_the_feedback_store_to_a_registered_dpo_version(tmp_path, monkeypatch):
    "Import model outputs, judge them (fake API, real HTTP), the trigger fires at the threshold, a DPO run on the corrections registers a version."
    from finetune_nb.feedback import check_trigger, import_feedback, judge_feedback, open_store
    from finetune_nb.run import run_finetune
    from finetune_nb.versions import list_models, watch
    from finetune_nb.testing import KEY, FakeAnthropic, tag
    (tmp_path/"raw").mkdir()
    cfg_path = tmp_path/"config.yaml"
    cfg_path.write_text(json.dumps({
        "project": {"name": "loop", "output_dir": "runs"}, "data": {"input_path": "raw", "augmentation": {"instruction_variations": False, "dedup": "exact"},
                                                                     "split": {"validation_fraction": 0.1}},
        "training": {"device": "cpu", "method": "dpo", "max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": 1, "learning_rate": 5e-3,
                     "eval_steps": 4, "save_steps": 4, "logging_steps": 2, "max_seq_length": 128, "report_to": ["none"], "warmup_ratio": 0.0,
                     "gradient_checkpointing": False, "preference": {"validation_fraction": 0.25}},
        "evaluation": {"num_prompts": 2, "max_new_tokens": 8, "compare_base": False}, "export": {"merge": False},
        "feedback": {"threshold": 100, "min_score": 0.8}}))
    cfg = FineTuneConfig.from_yaml(cfg_path)
    outputs = [{"prompt": f"What is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."} for i in range(100)] + \
              [{"prompt": f"What is {i} times 2?", "response": "I do not know.", "corrected": f"{i} times 2 is {2 * i}."} for i in range(100, 120)] + \
              [{"prompt": "What is 1 minus 1?", "response": "0.", "corrected": "0."}]  # a correction that repeats the output: no pair
    (tmp_path/"outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in outputs))
    assert import_feedback(cfg, tmp_path/"outputs.jsonl").added == 121
    assert not check_trigger(cfg, 100, 0.8).fire  # nothing is scored yet
    with FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url); monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        fake.judge = lambda tool, prompt: {"reason": "states the result", "score": 5 if " is " in tag(prompt, "answer") else 2}
        rep = judge_feedback(cfg, limit=99, progress=False)
        assert rep.judged == 99 and not check_trigger(cfg, 100, 0.8).fire  # one short of the threshold
        rep = judge_feedback(cfg, progress=False)
        assert rep.judged == 22 and fake.message_requests == 121
    d = check_trigger(cfg, 100, 0.8)
    assert d.fire and d.count == 120  # 100 answers and 20 corrections judged 5; the repeated "0." judged 2
    (check,) = watch(cfg, run_finetune, check_once=True)
    assert check.status == "ok" and check.version == "loop-v1", check
    (v,) = list_models(cfg)
    assert v.kind == "adapter" and v.trigger["sample_count"] == 120 and v.feedback_rev == d.feedback_rev
    meta = json.loads((v.path/"metadata.json").read_text())
    assert meta["method"] == "dpo" and meta["data"]["train"]["pairs"] + meta["data"]["validation"]["pairs"] == 20
    assert meta["margins"]["after"]["margin"] > meta["margins"]["before"]["margin"]
    info = json.loads((cfg.data_dir/"pairs_info.json").read_text())
    assert info["skipped_by_reason"] == {"feedback id N: chosen equals rejected (the correction repeats the output)": 1}
    stages = {s["name"]: s["status"] for s in json.loads((cfg.run_dir/"run_metadata.json").read_text())["stages"]}
    assert stages["prepare-pairs"] == stages["preference"] == "ran" and "train" not in stages
    assert not check_trigger(cfg, 100, 0.8).fire  # counted from the new version
    assert not any(KEY.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
