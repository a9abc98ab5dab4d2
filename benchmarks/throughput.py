"""Training throughput: autoft's loop against a minimal hand-written PyTorch loop, in one run.

    python benchmarks/throughput.py                      # TweetEval tweets if ../shared/data exists, else BBC News
    python benchmarks/throughput.py --samples 512 --max-length 64 --batch-size 32

Same model (packaged MiniLM, fresh copy per method), same samples, same batch size, one epoch each,
after two warm-up steps. Methods:

- ``hand-written``: a plain PyTorch loop (shuffled batches, dynamic padding, AdamW, no extras);
- ``autoft``: autoft's loop as configured by default (length-grouped batches, dynamic padding,
  warm-up schedule, clipping, per-sample weighted loss, the selection hook);
- ``autoft (no grouping)``: the same loop with shuffled batches, to separate loop overhead from grouping;
- ``autoft (fixed padding)``: padded to ``max_length``, no grouping.

Writes benchmarks/results/throughput.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from result_files import write_result

from autoft.config import TrainingConfig
from autoft.data.loading import Example
from autoft.errors import DataError
from autoft.modeling.load import load_model, load_tokenizer
from autoft.tasks.classification import ClassificationAdapter
from autoft.training.loop import fit

RESULTS = Path(__file__).resolve().parent / "results"


def load_texts(n: int) -> tuple[str, list[Example]]:
    try:
        from public_data import load_public

        return "TweetEval emotion (train)", load_public("tweeteval_emotion")["train"][:n]
    except DataError:  # shared data absent: fall back to packaged BBC News
        from autoft.demo import bbc_news

        texts, labels = bbc_news()
        order = np.random.default_rng(0).permutation(len(texts))[:n]
        return "BBC News", [Example(texts[i], labels[i]) for i in order]


def hand_written(model, adapter, features, batch_size, lr, seed, warmup_steps=2) -> float:
    """The loop most people write: shuffled batches, dynamic padding, AdamW. Returns samples/s."""
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    data = [{k: v for k, v in f.items() if k != "index"} for f in features]
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, collate_fn=adapter.collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    seen, started = 0, None
    for step, batch in enumerate(loader):
        if step == warmup_steps:
            seen, started = 0, time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seen += len(batch["input_ids"])
    return seen / (time.perf_counter() - started)


def autoft_loop(model, adapter, features, validation, batch_size, lr, seed, **options) -> float:
    config = TrainingConfig(
        epochs=1,
        batch_size=batch_size,
        learning_rate=lr,
        max_length=adapter.max_length,
        seed=seed,
        progress=False,
        early_stopping_patience=None,
        **options,
    )
    warm = TrainingConfig(**{**config.model_dump(), "progress": False})
    fit(model, adapter, features[: 2 * batch_size], *validation, warm)  # two warm-up steps, like the baseline
    result = fit(model, adapter, features, *validation, config)
    return result.history[0].samples_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "throughput.json")
    args = parser.parse_args()

    name, examples = load_texts(args.samples)
    labels = sorted({e.label for e in examples})
    tokenizer = load_tokenizer("default")
    adapter = ClassificationAdapter(labels, tokenizer, max_length=args.max_length)
    features = adapter.encode(examples)
    validation = (examples[:8], adapter.encode(examples[:8]))
    lengths = [len(f["input_ids"]) for f in features]

    def fresh():
        torch.manual_seed(args.seed)
        return load_model("default", ClassificationAdapter.auto_model_class(), labels)

    common = {"batch_size": args.batch_size, "lr": args.learning_rate, "seed": args.seed}
    rows = {}
    rows["hand-written"] = hand_written(fresh(), adapter, features, **common)
    rows["autoft"] = autoft_loop(fresh(), adapter, features, validation, **common)
    rows["autoft (no grouping)"] = autoft_loop(fresh(), adapter, features, validation, group_by_length=False, **common)
    rows["autoft (fixed padding)"] = autoft_loop(
        fresh(), adapter, features, validation, group_by_length=False, padding="max_length", **common
    )
    base = rows["hand-written"]
    result = {
        "data": name,
        "samples": len(features),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "mean_tokens": float(np.mean(lengths)),
        "torch_threads": torch.get_num_threads(),
        "samples_per_second": {k: round(v, 2) for k, v in rows.items()},
        "ratio_vs_hand_written": {k: round(v / base, 3) for k, v in rows.items()},
        "grouped_vs_fixed_padding": round(rows["autoft"] / rows["autoft (fixed padding)"], 3),
    }
    lines = [
        (
            f"Training throughput, packaged MiniLM, {name}: {len(features)} samples (mean {result['mean_tokens']:.0f} "
            f"tokens), batch {args.batch_size}, max_length {args.max_length}, {torch.get_num_threads()} threads."
        ),
        "",
        "| loop | samples/s | ratio vs hand-written |",
        "|---|---:|---:|",
        *(f"| {k} | {v:.1f} | {v / base:.2f} |" for k, v in rows.items()),
    ]
    write_result(args.output, result, "\n".join(lines))
    print(
        f"\nautoft / hand-written: {result['ratio_vs_hand_written']['autoft']:.2f}   "
        f"grouped dynamic / fixed padding: {result['grouped_vs_fixed_padding']:.2f}"
    )


if __name__ == "__main__":
    main()
