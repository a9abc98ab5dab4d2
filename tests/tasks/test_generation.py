"""generation: prompt/response and chat data, loss on the response only, chat templates, a whole LoRA run."""

import json
import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import autoft
from autoft.config import DEFAULT_POLICY, GenerationConfig
from autoft.data.loading import Example, load_examples, read_texts
from autoft.errors import DataError
from autoft.tasks.generation import IGNORE, CausalGenerationAdapter

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_prompt_response_and_chat_rows_load_with_line_numbers(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"prompt": "Translate: cat", "response": "Katze"},
                {"prompt": "Summarise: a b c", "response": ["abc", "a b c"]},
                {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
            ]
        )
        + "\n"
    )
    examples = load_examples(path, task="generation")
    assert [(e.text, e.label) for e in examples] == [
        ("Translate: cat", ["Katze"]),
        ("Summarise: a b c", ["abc", "a b c"]),
        ([{"role": "user", "content": "Hi"}], ["Hello!"]),
    ]
    assert examples[2].origin == f"{path}:3"
    path.write_text(json.dumps({"prompt": "x", "answer": "y"}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:1: missing column 'response'"):
        load_examples(path, task="generation")
    assert load_examples(path, task="generation", columns={"response": "answer"})[0].label == ["y"]
    path.write_text(json.dumps({"prompt": "x", "response": "  "}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:1: empty text in column 'response'"):
        load_examples(path, task="generation")
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:1: the last message of 'messages' must be the assistant's"):
        load_examples(path, task="generation")
    table = tmp_path / "pairs.csv"
    table.write_text("source,target\nhello,hallo\n")
    assert load_examples(table, task="seq2seq")[0].label == ["hallo"]
    plain = tmp_path / "prompts.txt"
    plain.write_text("first prompt\n\nsecond prompt\n")
    assert [e.text for e in read_texts(plain, task="generation")] == ["first prompt", "second prompt"]


def test_the_loss_covers_exactly_the_response_tokens_with_and_without_a_chat_template(tiny_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    adapter = CausalGenerationAdapter([], tokenizer, max_length=64)
    example = Example("what is two plus two", ["four"])
    [feature] = adapter.encode([example])
    response = [t for t, label in zip(feature["input_ids"], feature["labels"]) if label != IGNORE]
    assert tokenizer.decode(response) == "four [SEP]"  # the response and its end of sequence, nothing else
    assert feature["labels"][: len(feature["labels"]) - len(response)] == [IGNORE] * (
        len(feature["labels"]) - len(response)
    )
    tokenizer.chat_template = CHATML
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    chat = CausalGenerationAdapter([], tokenizer, max_length=64, generation=GenerationConfig(system_prompt="Be brief."))
    [feature] = chat.encode([example])
    prompt = [t for t, label in zip(feature["input_ids"], feature["labels"]) if label == IGNORE]
    response = [t for t, label in zip(feature["input_ids"], feature["labels"]) if label != IGNORE]
    assert tokenizer.decode(prompt).startswith("<|im_start|> system be brief. <|im_end|>")
    assert tokenizer.decode(prompt).endswith("<|im_start|> assistant")
    assert tokenizer.decode(response) == "four <|im_end|>"


def test_the_packed_response_logits_give_the_whole_sequence_loss(tiny_gpt2):
    from autoft.config import PeftConfig
    from autoft.modeling.parameter_efficient import wrap

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    adapter = CausalGenerationAdapter([], tokenizer, max_length=64)
    features = adapter.encode(
        [Example("say apple now", ["apple"]), Example("a longer prompt than that", ["two words"])]
    )
    batch = adapter.collate(features)
    labels = batch.pop("labels")
    for model in (
        AutoModelForCausalLM.from_pretrained(tiny_gpt2),
        wrap(AutoModelForCausalLM.from_pretrained(tiny_gpt2), PeftConfig(), "CAUSAL_LM"),
    ):
        model.eval()
        packed = adapter.forward(model, batch, labels)
        assert packed.shape == (int((labels[:, 1:] != IGNORE).sum()), model.config.vocab_size)
        whole = adapter.per_sample_loss(model(**batch).logits, labels)
        loss, units = adapter.per_sample_loss(packed, labels)
        torch.testing.assert_close(loss, whole[0], rtol=1e-5, atol=1e-5)
        assert units.tolist() == whole[1].tolist() == [2.0, 3.0]  # the response's tokens and its end


def test_a_long_prompt_is_cut_from_the_left_and_the_response_kept(tiny_gpt2, caplog):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    adapter = CausalGenerationAdapter([], tokenizer, max_length=24)
    prompt = " ".join(f"w{i}" for i in range(40)) + " end"
    with caplog.at_level(logging.WARNING):
        [feature] = adapter.encode([Example(prompt, ["the answer"])])
    assert len(feature["input_ids"]) == 24
    kept = tokenizer.decode([t for t, label in zip(feature["input_ids"], feature["labels"]) if label == IGNORE])
    assert kept.endswith("end") and "w0 " not in kept  # the beginning went, the prompt's end stayed
    assert tokenizer.decode([t for t in feature["labels"] if t != IGNORE]) == "the answer [SEP]"
    assert "1 of 1 prompts did not fit in max_length (24 tokens)" in caplog.text


def test_a_lora_run_learns_the_responses_and_beats_its_zero_shot(tmp_path, tiny_gpt2):
    words = ["apple", "river", "stone", "cloud", "green", "music", "paper", "light"]
    files = {}
    for split, n in (("train", 96), ("validation", 16), ("test", 16)):
        rows = [
            {"prompt": f"say {words[(i * 3 + len(split)) % 8]}", "response": words[(i * 3 + len(split)) % 8]}
            for i in range(n)
        ]
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "task": "generation",
        "model": str(tiny_gpt2),
        "data": {k: str(v) for k, v in files.items()},
        "training": {"epochs": 8, "batch_size": 8, "learning_rate": 1e-2, "progress": False},
        "generation": {"max_new_tokens": 4},
        "output_dir": str(tmp_path / "run"),
    }
    run = autoft.train(config)
    assert run.config.training.peft is not None and run.config.training.peft.method == "lora"  # the default
    assert run.metrics["zero_shot"]["exact_match"] < 0.2
    assert run.metrics["test"]["exact_match"] > 0.8, run.metrics["test"]
    assert run.metrics["validation"]["loss"] < run.metrics["epochs"][0]["validation"]["loss"]
    assert {"rouge1", "rougeL", "bleu", "chrf", "f1", "loss"} <= set(run.metrics["test"])
    [prediction] = run.predict(["say cloud"])
    assert prediction == {"input": "say cloud", "output": "cloud"}
    # autoft run: plain fine-tuning and the agent side by side, next to the model before fine-tuning.
    from autoft.autonomous import run as full_job

    comparison = full_job(
        {**config, "output_dir": str(tmp_path / "job"), "training": {**config["training"], "epochs": 2}}
    )
    assert "before fine-tuning (zero-shot)" in comparison["table"] and "| exact_match |" in comparison["table"]
    assert comparison["zero_shot"]["exact_match"] == run.metrics["zero_shot"]["exact_match"]
    assert comparison["policy"] == DEFAULT_POLICY and comparison["autonomous"]["test"]["loss"] > 0
    assert (tmp_path / "job" / "plain" / "model").is_dir() and (tmp_path / "job" / "data_values.csv").is_file()
    # Decoding settings change per call: --set generation.*; anything else is refused.
    import io
    import sys

    from autoft.cli import main

    sys_stdin = sys.stdin
    try:
        sys.stdin = io.StringIO("say music\n")
        assert (
            main(
                [
                    "predict",
                    str(tmp_path / "run"),
                    "--set",
                    "generation.max_new_tokens=1",
                    "--set",
                    "generation.num_beams=2",
                ]
            )
            == 0
        )
        sys.stdin = io.StringIO("say music\n")
        assert main(["predict", str(tmp_path / "run"), "--set", "training.epochs=3"]) == 2
    finally:
        sys.stdin = sys_stdin
    merged = run.export(tmp_path / "merged", merge=True)
    assert AutoModelForCausalLM.from_pretrained(merged).config.model_type == "gpt2"


def test_a_seq2seq_run_on_a_tiny_t5_learns_to_copy(tmp_path, tiny_t5):
    model_dir = tiny_t5
    words = ["apple", "river", "stone", "cloud", "green", "music"]
    files = {}
    for split, n in (("train", 96), ("validation", 12), ("test", 12)):
        rows = [{"source": words[(i + len(split)) % 6], "target": words[(i + len(split)) % 6]} for i in range(n)]
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = autoft.train(
        {
            "task": "seq2seq",
            "model": str(model_dir),
            "data": {k: str(v) for k, v in files.items()},
            "training": {"epochs": 10, "batch_size": 8, "learning_rate": 1e-2, "progress": False, "peft": None},
            "generation": {"max_new_tokens": 4},
            "output_dir": str(tmp_path / "run"),
        }
    )
    assert run.metrics["test"]["exact_match"] > run.metrics["zero_shot"]["exact_match"] + 0.5, run.metrics["test"]
    reloaded = autoft.load(tmp_path / "run")
    assert reloaded.predict(["river"]) == [{"input": "river", "output": "river"}]
    with pytest.raises(autoft.errors.ConfigError, match="task seq2seq needs an encoder-decoder model named"):
        autoft.config.parse_config({"task": "seq2seq", "data": {"train": "x"}})


@pytest.mark.slow
def test_a_few_lora_steps_of_the_packaged_smollm2(tmp_path):
    """The generative default end to end: SmolLM2-135M-Instruct de-quantised from its GGUF, its chat template,
    LoRA adapters; a few steps on eight self-instruct-like pairs lower their loss."""
    rows = [
        {"prompt": f"Give the opposite of the word '{a}'.", "response": b}
        for a, b in [
            ("hot", "cold"),
            ("up", "down"),
            ("big", "small"),
            ("fast", "slow"),
            ("light", "dark"),
            ("open", "closed"),
            ("early", "late"),
            ("full", "empty"),
        ]
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = autoft.train(
        {
            "task": "generation",
            "data": {"train": str(path), "validation": str(path), "test": str(path)},
            "training": {"epochs": 2, "batch_size": 4, "learning_rate": 2e-3, "max_length": 96, "progress": False},
            "generation": {"max_new_tokens": 6},
            "output_dir": str(tmp_path / "run"),
        }
    )
    assert run.config.model == "default-generative" and run.config.training.peft.method == "lora"
    assert "<|im_start|>assistant" in run.adapter.render(Example("hi", ["there"]))[0]  # SmolLM2's chat template
    assert run.metrics["validation"]["loss"] < run.metrics["zero_shot"]["loss"]
    assert all(isinstance(p["output"], str) for p in run.predict(["Give the opposite of the word 'wet'."]))
