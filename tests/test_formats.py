"Record formats: detection, lossless round trips, errors that name file:line:field, exporters."
import json
import pytest
from finetune_nb.core import DataError, Skipped
from finetune_nb.templates import (FORMATS, detect_format, to_messages, from_messages, export_records,
                                   export_openai_jsonl, export_gemini_jsonl, export_alpaca_json, export_sharegpt_json)

SYS, Q, A = "You are a careful assistant.", "What does LoRA train?", "Small low-rank matrices beside frozen weights."

ROWS = {
    "alpaca_with_input": ("alpaca", {"instruction": "Summarise the passage.", "input": "LoRA freezes the base model.", "output": "It freezes the base."}),
    "alpaca_empty_input": ("alpaca", {"instruction": Q, "input": "", "output": A}),
    "alpaca_null_input": ("alpaca", {"instruction": Q, "input": None, "output": A}),
    "alpaca_no_input": ("alpaca", {"instruction": Q, "output": A}),
    "alpaca_system_history_metadata": ("alpaca", {"instruction": "And QLoRA?", "input": "", "output": "4-bit base weights.", "system": SYS,
                                                  "history": [[Q, A]], "metadata": {"rating": "good", "source": "wiki"}, "id": 17}),
    "alpaca_empty_system": ("alpaca", {"instruction": Q, "input": "", "output": A, "system": ""}),
    "sharegpt": ("sharegpt", {"conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]}),
    "sharegpt_multiturn_system": ("sharegpt", {"conversations": [{"from": "system", "value": SYS}, {"from": "human", "value": Q},
        {"from": "gpt", "value": A}, {"from": "human", "value": "And QLoRA?"}, {"from": "gpt", "value": "4-bit base weights."}], "id": "c-1"}),
    "sharegpt_user_assistant_names": ("sharegpt", {"conversations": [{"from": "user", "value": Q}, {"from": "assistant", "value": A}]}),
    "sharegpt_system_key": ("sharegpt", {"system": SYS, "conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": A, "weight": 1}]}),
    "messages": ("messages", {"messages": [{"role": "system", "content": SYS}, {"role": "user", "content": Q}, {"role": "assistant", "content": A}]}),
    "messages_openai_extras": ("messages", {"messages": [{"role": "developer", "content": SYS},
        {"role": "user", "content": [{"type": "text", "text": "What does "}, {"type": "text", "text": "LoRA train?"}]},
        {"role": "assistant", "content": "Wrong.", "weight": 0}, {"role": "user", "content": "Try again."},
        {"role": "assistant", "content": A, "weight": 1}], "metadata": {"format": "mine", "split": "x"}}),
    "prompt_completion_strings": ("prompt_completion", {"prompt": Q, "completion": A}),
    "prompt_completion_conversational": ("prompt_completion", {"prompt": [{"role": "system", "content": SYS}, {"role": "user", "content": Q}],
                                                               "completion": [{"role": "assistant", "content": A}]}),
    "input_output": ("input_output", {"input": Q, "output": A, "category": "qa"}),
    "gemini": ("gemini", {"contents": [{"role": "user", "parts": [{"text": Q}]}, {"role": "model", "parts": [{"text": A}]}]}),
    "gemini_system_multipart": ("gemini", {"systemInstruction": {"role": "system", "parts": [{"text": SYS}]},
        "contents": [{"role": "user", "parts": [{"text": "What does "}, {"text": "LoRA train?"}]}, {"role": "model", "parts": [{"text": A}]},
                     {"role": "user", "parts": [{"text": "Thanks"}]}, {"role": "model", "parts": [{"text": "You're welcome."}]}]}),
    "gemini_snake_system": ("gemini", {"system_instruction": {"parts": [{"text": SYS}]},
        "contents": [{"role": "user", "parts": [{"text": Q}]}, {"role": "model", "parts": [{"text": A}]}]}),
    "text": ("text", {"text": "LoRA trains small low-rank matrices.\n\nThe base stays frozen.", "doc": 3}),
    "text_null_metadata": ("text", {"text": "A passage.", "metadata": None}),
}

def through_json(x): return json.loads(json.dumps(x))

@pytest.mark.parametrize("name", ROWS)
def test_round_trip(name):
    fmt, row = ROWS[name]
    assert detect_format(row) == fmt
    rec = through_json(to_messages(row, source="data/in.jsonl", line=9))  # stored as JSONL, as the pipeline does
    assert rec["metadata"]["format"] == fmt and rec["metadata"]["source"] == "data/in.jsonl" and rec["metadata"]["line"] == 9
    assert all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in rec["messages"])
    assert from_messages(rec, fmt) == row

def test_canonical_content():
    rec = to_messages(ROWS["alpaca_system_history_metadata"][1])
    assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert rec["metadata"]["rating"] == "good"  # the row's own metadata stays visible...
    assert rec["metadata"]["format"] == "alpaca" and "source" not in rec["metadata"]  # ...except under finetune_nb's reserved keys
    assert to_messages(ROWS["alpaca_with_input"][1])["messages"][0]["content"] == "Summarise the passage.\n\nLoRA freezes the base model."
    g = to_messages(ROWS["gemini_system_multipart"][1])
    assert g["messages"][0] == {"role": "system", "content": SYS} and g["messages"][1]["content"] == Q
    assert to_messages(ROWS["messages_openai_extras"][1])["messages"][0]["role"] == "system"
    assert to_messages({"text": "Plain passage."})["messages"] == [{"role": "assistant", "content": "Plain passage."}]

@pytest.mark.parametrize("target", ["messages", "sharegpt", "alpaca", "gemini", "prompt_completion"])
@pytest.mark.parametrize("name", ["alpaca_with_input", "sharegpt_multiturn_system", "gemini_system_multipart", "messages"])
def test_cross_format_keeps_the_conversation(name, target):
    rec = to_messages(ROWS[name][1])
    back = to_messages(from_messages(rec, target))
    assert back["messages"] == rec["messages"]

def test_cross_format_plain_shapes():
    rec = to_messages(ROWS["gemini"][1])
    assert from_messages(rec, "alpaca") == {"instruction": Q, "input": "", "output": A}
    assert from_messages(rec, "input_output") == {"input": Q, "output": A}
    assert from_messages(rec, "prompt_completion") == {"prompt": Q, "completion": A}
    assert from_messages(to_messages(ROWS["messages"][1]), "gemini")["systemInstruction"] == {"role": "system", "parts": [{"text": SYS}]}

def test_augmented_alpaca_keeps_input_inside_instruction():
    rec = to_messages(ROWS["alpaca_with_input"][1])
    rec["messages"][0]["content"] = "Please help.\n\n" + rec["messages"][0]["content"]
    assert from_messages(rec, "alpaca")["input"] == "LoRA freezes the base model."
    rec["messages"][0]["content"] += "\n\nThanks!"
    out = from_messages(rec, "alpaca")
    assert out["input"] == "" and out["instruction"] == rec["messages"][0]["content"]

@pytest.mark.parametrize("row,fmt", [
    ({"messages": [], "conversations": []}, None), ({"instruction": "x", "output": "y", "contents": []}, None),
    ({"prompt": "a", "completion": "b", "input": "c", "output": "d"}, None)])
def test_ambiguous(row, fmt):
    with pytest.raises(DataError, match=r"rows\.jsonl:4: ambiguous row"): detect_format(row, "rows.jsonl", 4)

@pytest.mark.parametrize("row", [{"question": "q", "answer": "a"}, {}, {"metadata": {}}])
def test_unknown_shape(row):
    with pytest.raises(DataError, match=r"rows\.jsonl:5: unknown row shape.*expected one of: messages"): to_messages(row, source="rows.jsonl", line=5)

def test_not_an_object():
    with pytest.raises(DataError, match="rows.json:2: expected a JSON object, got list"): to_messages(["a"], source="rows.json", line=2)

@pytest.mark.parametrize("row,field,msg", [
    ({"instruction": "Do it", "output": ""}, "output", "is empty"),
    ({"instruction": "Do it"}, "output", "missing"),
    ({"instruction": "   ", "output": "x"}, "instruction", "is empty"),
    ({"instruction": "Do it", "input": 3, "output": "x"}, "input", "must be a string, got int"),
    ({"instruction": "Do it", "output": "x", "history": [["only one"]]}, "history[0]", "must be a pair"),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "yo"}]}, "conversations[1].from", "unknown role 'bot'"),
    ({"conversations": [{"from": "human", "value": "hi"}]}, "conversations", "no assistant message"),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt"}]}, "conversations[1].value", "missing"),
    ({"messages": [{"role": "tool", "content": "42"}]}, "messages[0].role", "unknown role 'tool'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": []}]}, "messages[1].content", "missing"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, {"role": "assistant", "content": "x"}]},
     "messages[0].content[0]", "non-text part (image_url)"),
    ({"messages": "hello"}, "messages", "must be a non-empty list"),
    ({"prompt": "q", "completion": [{"role": "assistant", "content": "a"}]}, "prompt", "needs both as lists"),
    ({"prompt": "q"}, "completion", "missing"),
    ({"input": "q", "output": 5}, "output", "must be a string"),
    ({"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "assistant", "parts": [{"text": "a"}]}]}, "contents[1].role", "unknown role 'assistant'"),
    ({"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [{"fileData": {"fileUri": "gs://x"}}]}]},
     "contents[1].parts[0]", "non-text part (fileData)"),
    ({"systemInstruction": "be nice", "contents": []}, "systemInstruction", "must be an object"),
    ({"text": ""}, "text", "is empty"),
    ({"text": "x", "metadata": "oops"}, "metadata", "must be an object"),
])
def test_errors_name_file_line_and_field(row, field, msg):
    with pytest.raises(DataError) as e: to_messages(row, source="data/train.jsonl", line=42)
    assert e.value.file == "data/train.jsonl" and e.value.line == 42 and e.value.field == field
    assert str(e.value).startswith(f"data/train.jsonl:42: field '{field}': ") and msg in str(e.value)

def test_role_error_lists_expected_roles():
    with pytest.raises(DataError) as e: to_messages({"conversations": [{"from": "bot", "value": "x"}]}, source="s.json", line=1)
    assert "human, user, gpt, assistant, system" in str(e.value)

@pytest.mark.parametrize("rec,fmt,msg", [
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}, "alpaca", "alternating"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}]}, "gemini", "system message can only come first"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "input_output", "one user and one assistant"),
    ({"messages": [{"role": "user", "content": "a"}]}, "prompt_completion", "end with assistant"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "text", "one assistant message"),
])
def test_inexpressible_conversations(rec, fmt, msg):
    rec["metadata"] = {"source": "x.jsonl", "line": 3}
    with pytest.raises(DataError, match=f"x.jsonl:3: .*{msg}"): from_messages(rec, fmt)

def test_unknown_format_names():
    with pytest.raises(ValueError, match="unknown format"): to_messages({"text": "x"}, fmt="csv")
    with pytest.raises(ValueError, match="unknown format"): from_messages({"messages": [{"role": "assistant", "content": "x"}]}, "csv")
    assert set(FORMATS) == {"messages", "sharegpt", "alpaca", "prompt_completion", "input_output", "gemini", "text"}

@pytest.fixture
def records():
    return [to_messages(r, source="in.jsonl", line=i) for i, (_, r) in enumerate(ROWS.values(), 1)]

def test_jsonl_exporters_parse_back_and_load_with_datasets(tmp_path, records):
    from datasets import load_dataset
    convo = [r for r in records if r["metadata"]["format"] != "text"]
    n = export_openai_jsonl(convo, tmp_path / "openai.jsonl")
    assert n == len(convo)
    rows = [json.loads(l) for l in (tmp_path / "openai.jsonl").read_text().splitlines()]
    assert [to_messages(r)["messages"] for r in rows] == [r["messages"] for r in convo]
    ds = load_dataset("json", data_files=str(tmp_path / "openai.jsonl"), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == n and ds[0]["messages"][0]["role"] == "user"
    skipped = []
    n = export_gemini_jsonl(records, tmp_path / "gemini.jsonl", on_error="skip", skipped=skipped)
    assert n == len(records) - 2 and len(skipped) == 2 and isinstance(skipped[0], Skipped)  # the plain-text rows have no user turn
    assert "in.jsonl" == skipped[0].file and "not exported as gemini" in skipped[0].reason
    gem = [json.loads(l) for l in (tmp_path / "gemini.jsonl").read_text().splitlines()]
    assert all(detect_format(g) == "gemini" for g in gem)
    ds = load_dataset("json", data_files=str(tmp_path / "gemini.jsonl"), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == n

def test_gemini_plain_text_needs_user_turn(records, tmp_path):
    with pytest.raises(DataError, match="in.jsonl:19"): export_gemini_jsonl(records[18:19], tmp_path / "g.jsonl")
    assert not (tmp_path / "g.jsonl").exists()  # atomic: a failed export leaves nothing behind

@pytest.mark.parametrize("export,fmt", [(export_alpaca_json, "alpaca"), (export_sharegpt_json, "sharegpt")])
def test_json_exporters_parse_back(tmp_path, records, export, fmt):
    skipped = []
    n = export(records, tmp_path / f"{fmt}.json", on_error="skip", skipped=skipped)
    data = json.loads((tmp_path / f"{fmt}.json").read_text())
    assert len(data) == n and n + len(skipped) == len(records)
    assert all(detect_format(d) == fmt for d in data)
    same = [(r, ROWS[k][1]) for r, k in zip(records, ROWS) if ROWS[k][0] == fmt]
    assert len(same) >= 4
    export([r for r, _ in same], tmp_path / "same.json")
    assert json.loads((tmp_path / "same.json").read_text()) == [row for _, row in same]  # rows come back exactly

def test_empty_export(tmp_path):
    assert export_alpaca_json([], tmp_path / "a.json") == 0 and json.loads((tmp_path / "a.json").read_text()) == []
    assert export_records(iter([]), tmp_path / "m.jsonl", "messages") == 0 and (tmp_path / "m.jsonl").read_text() == ""
    with pytest.raises(ValueError, match="cannot export"): export_records([], tmp_path / "x", "text")

def test_canonical_records_of_every_format_load_as_one_dataset(tmp_path, records):
    "The layout is a JSON string, so records from different formats share one Arrow schema."
    from datasets import load_dataset
    from finetune_nb.core import write_jsonl
    write_jsonl(tmp_path / "train.jsonl", records)
    ds = load_dataset("json", data_files=str(tmp_path / "train.jsonl"), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == len(records)
    for row, rec in zip(ds, records):
        meta = {k: v for k, v in row["metadata"].items() if v is not None}
        assert row["messages"] == rec["messages"]
        assert from_messages({"messages": row["messages"], "metadata": meta}, rec["metadata"]["format"]) == from_messages(rec, rec["metadata"]["format"])
