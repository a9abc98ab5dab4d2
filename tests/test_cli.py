import io
import json
import logging
import re
import subprocess
import sys
import textwrap
import types

import pytest
import yaml

from autoft.cli import main
from tests.conftest import tiny_config, write_csv

FAST = {"epochs": 8, "learning_rate": 3e-3, "early_stopping_patience": None}


def write_config(tmp_path, config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fails_cleanly(argv, capsys, pattern):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("autoft: error: ") and "Traceback" not in "\n".join(err)
    assert pytest.importorskip("re").search(pattern, err[-1]), err[-1]


def test_help_for_every_command():
    for argv in ([], ["train"], ["evaluate"], ["predict"], ["demo"]):
        result = subprocess.run(
            [sys.executable, "-m", "autoft.cli", *argv, "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0
        assert "usage: autoft" in result.stdout


def test_bad_input_exits_2_with_one_line(tiny_model_dir, classification_files, tmp_path, capsys):
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run")
    path = write_config(tmp_path, config)
    fails_cleanly(["train", str(path), "--set", "training.epochz=1"], capsys, r"training.epochz: unknown field")
    fails_cleanly(["train", str(path), "--set", "data.train=missing.csv"], capsys, r"missing.csv: file not found")
    bad = write_csv(tmp_path / "bad.csv", [("fine", "sport"), ("", "tech")])
    fails_cleanly(["train", str(path), "--set", f"data.train={bad}"], capsys, r"bad.csv:3: empty text")
    unseen = write_csv(tmp_path / "unseen.csv", [("fine", "politics")])
    fails_cleanly(
        ["train", str(path), "--set", f"data.test={unseen}"],
        capsys,
        r"unseen.csv:2: test label 'politics' never occurs",
    )
    fails_cleanly(["train", str(path), "--set", "data.label_column=topic"], capsys, r"missing column 'topic'")
    fails_cleanly(["train", str(path), "--set", f"model={tmp_path}/no-model"], capsys, r"folder not found")
    assert not (tmp_path / "run").exists()
    fails_cleanly(["evaluate", str(tmp_path / "run"), "--data", str(bad)], capsys, "not an autoft run directory")


def test_real_entry_point_has_no_traceback(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {train: x.csv}\nbogus: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "autoft.cli", "train", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"autoft: error: {tmp_path / 'c.yaml'}: bogus: unknown field"


def test_train_evaluate_predict(tiny_model_dir, classification_files, tmp_path, capsys, monkeypatch, caplog):
    config = tiny_config(tiny_model_dir, classification_files, tmp_path / "run", **FAST)
    path = write_config(tmp_path, config)
    assert main(["train", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "run: " in out and "test" in out and "macro_f1" in out

    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "run"),
                "--data",
                str(classification_files["test"]),
                "--output",
                str(tmp_path / "eval.json"),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert json.loads((tmp_path / "eval.json").read_text())["macro_f1"] >= 0.9

    monkeypatch.setattr(sys, "stdin", io.StringIO("goal match team coach\n\npizza soup cheese\n"))
    caplog.clear()
    assert main(["predict", str(tmp_path / "run")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in lines] == ["sport", "food"]
    assert "skipped 1 blank line of stdin" in caplog.messages  # the user learns why 3 lines gave 2 predictions
    assert set(lines[0]["probabilities"]) == {"food", "sport", "tech"}
    assert sum(lines[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    assert (
        main(
            [
                "predict",
                str(tmp_path / "run"),
                "--input",
                str(classification_files["test"]),
                "--output",
                str(tmp_path / "pred.jsonl"),
            ]
        )
        == 0
    )
    assert len((tmp_path / "pred.jsonl").read_text().splitlines()) == 30

    # A second train into the same directory is refused without --overwrite.
    fails_cleanly(["train", str(path)], capsys, "not empty")


def test_ner_predict_writes_entity_spans(tiny_model_dir, ner_files, tmp_path, capsys, monkeypatch):
    config = tiny_config(
        tiny_model_dir,
        ner_files,
        tmp_path / "run",
        task="token-classification",
        epochs=10,
        learning_rate=5e-3,
        early_stopping_patience=None,
    )
    assert main(["train", str(write_config(tmp_path, config)), "--no-progress"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO("Bob works at Google\n"))
    assert main(["predict", str(tmp_path / "run")]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for entity in record["entities"]:
        assert record["text"][entity["start"] : entity["end"]] == entity["text"]
    assert ("PER", "Bob") in [(e["type"], e["text"]) for e in record["entities"]]


# --- the summary table: each family's own scores ---------------------------------------------------------

GENERATIVE_SCORES = ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "f1", "loss", "perplexity")
COMPUTED = {  # the keys each family's adapter.metrics() returns (plus the loop's loss), as metrics.json holds them
    "classification": ("accuracy", "macro_f1", "loss"),
    "relation-extraction": ("macro_f1", "micro_f1", "accuracy", "loss"),
    "multi-label-classification": ("micro_f1", "macro_f1", "subset_accuracy", "loss"),
    "token-classification": ("precision", "recall", "f1", "loss"),
    "question-answering": ("exact_match", "f1", "loss"),
    "generation": GENERATIVE_SCORES,
    "seq2seq": GENERATIVE_SCORES,
}
COLUMNS = {
    "classification": ["accuracy", "macro_f1", "loss"],
    "relation-extraction": ["accuracy", "macro_f1", "micro_f1", "loss"],
    "multi-label-classification": ["micro_f1", "macro_f1", "subset_accuracy", "loss"],
    "token-classification": ["precision", "recall", "f1", "loss"],
    "question-answering": ["exact_match", "f1", "loss"],
    "generation": ["rouge1", "rouge2", "rougeL", "bleu", "chrf", "loss"],
    "seq2seq": ["rouge1", "rouge2", "rougeL", "bleu", "chrf", "loss"],
}


def synthetic_metrics(task):
    scores = {key: 0.1 + i / 100 for i, key in enumerate(COMPUTED[task])}
    metrics = {
        "task": task,
        "validation": {**scores, "report": {"x": {"f1": 0.5}}},
        "test": dict(scores),
        "zero_shot": None,
    }
    if task in ("generation", "seq2seq"):  # validation is the teacher-forced loss; test and zero-shot generate
        metrics["validation"] = {"loss": scores["loss"], "perplexity": scores["perplexity"]}
    if task in ("question-answering", "generation", "seq2seq"):
        metrics["zero_shot"] = {key: value / 2 for key, value in scores.items()}
    return metrics, scores


@pytest.mark.parametrize("task", sorted(COLUMNS))
def test_the_summary_table_shows_each_familys_own_scores(task):
    from autoft.console import metrics_table as _metrics_table

    metrics, scores = synthetic_metrics(task)
    header, *rows = [line.split() for line in _metrics_table(metrics, task).splitlines()]
    assert header == ["split", *COLUMNS[task]]
    by_split = {" ".join(row[: len(row) - len(COLUMNS[task])]): row[-len(COLUMNS[task]) :] for row in rows}
    text_targets = task in ("question-answering", "generation", "seq2seq")
    assert list(by_split) == ["validation", *(["test (zero-shot)"] if text_targets else []), "test"]
    assert by_split["test"] == [f"{scores[k]:.4f}" for k in COLUMNS[task]]  # every column computed: no "-"
    if text_targets:
        assert by_split["test (zero-shot)"] == [f"{scores[k] / 2:.4f}" for k in COLUMNS[task]]
    if task in ("generation", "seq2seq"):  # validation has the loss only: the rest is not computed there
        assert by_split["validation"] == ["-"] * 5 + [f"{scores['loss']:.4f}"]
    else:
        assert "-" not in by_split["validation"]


def test_every_registered_task_has_summary_columns_and_a_declaration_wins(monkeypatch):
    from autoft.console import metrics_table as _metrics_table
    from autoft.console import summary_metric_keys
    from autoft.tasks.registry import TASKS, get_adapter_class

    for task in TASKS:  # a new task without summary columns would fall back to listing every number
        assert summary_metric_keys(task, {}), task
    monkeypatch.setattr(get_adapter_class("classification"), "summary_metrics", ("macro_f1",), raising=False)
    assert _metrics_table({"test": {"macro_f1": 0.5, "accuracy": 0.9}}, "classification").splitlines() == [
        "split  macro_f1",
        "test   0.5000",
    ]
    # A task the table does not know shows every number its run recorded.
    assert summary_metric_keys("unknown-task", {"test": {"bleu": 0.1, "report": {}, "loss": 1.0}}) == ["bleu", "loss"]


# --- update ------------------------------------------------------------------------------------------------


def test_update_accepts_no_progress_and_its_help_says_what_changes(monkeypatch, capsys, tmp_path):
    import autoft.continual
    from autoft.config import apply_overrides, parse_config

    calls = []

    def fake_update(parent, data, **options):
        calls.append(options)
        record = {"metric": "macro_f1", "scores": {"old_validation": {"parent": 0.9, "update": 0.91}}}
        return types.SimpleNamespace(record=record, promoted=True, run=types.SimpleNamespace(path=tmp_path / "u"))

    monkeypatch.setattr(autoft.continual, "update", fake_update)
    assert main(["update", "runs/parent", "--data", "new.csv", "--no-progress", "--set", "continual.gate=null"]) == 0
    assert calls[0]["overrides"] == ["continual.gate=null", "training.progress=false"]
    assert "old_validation macro_f1: parent 0.9000, update 0.9100" in capsys.readouterr().out
    # The override is a valid config change that turns the bars off.
    raw = {"data": {"train": str(write_csv(tmp_path / "d.csv", [("a", "b")]))}}
    assert parse_config(apply_overrides(raw, calls[0]["overrides"][1:]), source="t").training.progress is False

    with pytest.raises(SystemExit):
        main(["update", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "untouched" not in text
    for changed in ("lineage.jsonl", "'latest'", ".update.lock", "are not changed"):
        assert changed in text, changed


# --- predict: blank lines ------------------------------------------------------------------------------------


def test_read_texts_says_how_many_blank_lines_it_skipped(tmp_path, caplog, monkeypatch):
    from autoft.data.loading import read_texts

    path = tmp_path / "in.txt"
    path.write_text("first\n\n  \nsecond\n\n")
    with caplog.at_level(logging.WARNING, logger="autoft"):
        assert [e.text for e in read_texts(path, task="classification")] == ["first", "second"]
    assert caplog.messages == [f"skipped 3 blank lines of {path}"]
    caplog.clear()
    monkeypatch.setattr(sys, "stdin", io.StringIO("only\n\n"))
    with caplog.at_level(logging.WARNING, logger="autoft"):
        assert len(read_texts(None, task="generation")) == 1
    assert caplog.messages == ["skipped 1 blank line of stdin"]
    caplog.clear()
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"context": "c", "question": "q"}\n\n\n'))
    with caplog.at_level(logging.WARNING, logger="autoft"):
        assert len(read_texts("-", task="question-answering")) == 1
    assert caplog.messages == ["skipped 2 blank lines of stdin"]
    caplog.clear()
    path.write_text("no\nblanks\n")
    with caplog.at_level(logging.WARNING, logger="autoft"):
        read_texts(path, task="classification")
    assert caplog.messages == []


# --- warnings and progress bars ------------------------------------------------------------------------------


def test_library_warnings_go_to_the_log_and_future_and_tracer_warnings_to_debug(caplog):
    import warnings

    import torch

    from autoft.cli import route_warnings

    with warnings.catch_warnings(), caplog.at_level(logging.DEBUG, logger="py.warnings"):
        route_warnings()
        warnings.simplefilter("always")
        warnings.warn("an API changes in v6", FutureWarning, stacklevel=1)
        warnings.warn("a trace may be wrong", torch.jit.TracerWarning, stacklevel=1)
        warnings.warn("exclude_modules matched nothing", UserWarning, stacklevel=1)
    levels = {r.getMessage().split(":")[0]: r.levelname for r in caplog.records if r.name == "py.warnings"}
    assert levels == {"FutureWarning": "DEBUG", "TracerWarning": "DEBUG", "UserWarning": "WARNING"}
    assert all("\n" not in r.getMessage() for r in caplog.records)


def bytes_to_unicode() -> list[str]:
    """GPT-2's byte-level alphabet: the 256 characters its BPE vocabulary starts from."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def write_tiny_gguf(path, hidden=16, ff=32, heads=2):
    """A one-layer, 16-wide random Llama in F32 with a byte-level BPE vocabulary (a GGUF of ~30 kB)."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *bytes_to_unicode(), "Ġt"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
    writer.add_token_merges(["Ġ t"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    rng = np.random.default_rng(0)
    shapes = {
        "token_embd.weight": (len(tokens), hidden),
        "blk.0.attn_q.weight": (hidden, hidden),
        "blk.0.attn_k.weight": (hidden, hidden),
        "blk.0.attn_v.weight": (hidden, hidden),
        "blk.0.attn_output.weight": (hidden, hidden),
        "blk.0.ffn_gate.weight": (ff, hidden),
        "blk.0.ffn_up.weight": (ff, hidden),
        "blk.0.ffn_down.weight": (hidden, ff),
    }
    for name, shape in shapes.items():
        writer.add_tensor(name, rng.normal(0, 0.02, shape).astype(np.float32))
    for name in ("output_norm.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"):
        writer.add_tensor(name, np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_warnings_reach_the_terminal_as_log_lines_and_verbose_shows_the_quiet_ones():
    script = textwrap.dedent("""
        import sys, warnings
        import autoft.cli as cli

        def noisy(args):
            warnings.warn("this API changes in v6", FutureWarning)
            warnings.warn("exclude_modules matched nothing", UserWarning)
            return 0

        cli.cmd_lineage = noisy
        sys.exit(cli.main(sys.argv[1:]))
    """)
    for flags in ([], ["-v"]):
        result = subprocess.run(
            [sys.executable, "-c", script, *flags, "lineage", "runs/x"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        lines = result.stderr.splitlines()
        assert [line.split(" ", 1)[1] for line in lines if "Warning" in line] == [
            *(["DEBUG FutureWarning: this API changes in v6 (<string>:6)"] if flags else []),
            "WARNING UserWarning: exclude_modules matched nothing (<string>:7)",
        ]


BAR = re.compile(r"\d+%\|")  # tqdm's "100%|█████|"


@pytest.fixture(autouse=True)
def progress_switches(monkeypatch):
    """Leave tqdm's and transformers' progress switches as the test found them (``--no-progress`` turns them off
    for the process), and start each test with them on."""
    from transformers.utils import logging as transformers_logging

    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)
    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()
    yield
    (transformers_logging.enable_progress_bar if enabled else transformers_logging.disable_progress_bar)()


def test_gguf_conversion_shows_bars_only_when_progress_is_on(tmp_path, capfd):
    from autoft.modeling.gguf import dequantize_gguf

    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    dequantize_gguf(source, tmp_path / "shown", progress=True)
    assert BAR.search(capfd.readouterr().err)  # the bars this test looks for do appear when progress is on
    dequantize_gguf(source, tmp_path / "hidden", progress=False)
    assert not BAR.search(capfd.readouterr().err)
    assert (tmp_path / "hidden" / "config.json").is_file()


def test_train_no_progress_on_a_gguf_model_draws_no_bar(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("AUTOFT_CACHE", str(tmp_path / "cache"))
    rows = [{"prompt": f"say {w}", "response": w} for w in ("hot", "cold", "up", "down", "big", "small")]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "task": "generation",
        "model": str(write_tiny_gguf(tmp_path / "tiny.gguf")),
        "data": {"train": str(tmp_path / "pairs.jsonl"), "validation": str(tmp_path / "pairs.jsonl")},
        "training": {"epochs": 1, "batch_size": 4, "max_length": 32, "learning_rate": 1e-3},
        "generation": {"max_new_tokens": 2},
        "output_dir": str(tmp_path / "run"),
    }
    assert main(["train", str(write_config(tmp_path, config)), "--no-progress"]) == 0
    out, err = capfd.readouterr()
    assert list((tmp_path / "cache" / "gguf").iterdir())  # the GGUF was converted in this call
    assert not BAR.search(err) and not BAR.search(out), err[-2000:]
    assert "FutureWarning" not in err and "TracerWarning" not in err
