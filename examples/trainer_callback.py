"""autoft's agent in a plain transformers.Trainer script: four added lines (marked ★) value every training sample,
leave out the ones the agent flags, reward it at each evaluation and write data_values.csv.

    python examples/trainer_callback.py                      # packaged MiniLM, BBC News with 30% labels flipped
    python examples/trainer_callback.py --model PATH --train-size 120 --epochs 1

The rest is an ordinary Trainer script: tokenise, build the datasets, train, evaluate.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from autoft.demo import bbc_news
from autoft.integrations import AutoSelect  # ★
from autoft.modeling.load import resolve_model_name


class Encoded(torch.utils.data.Dataset):
    def __init__(self, tokenizer, texts, labels, label_ids):
        self.rows = [
            dict(tokenizer(t, truncation=True, max_length=64), labels=label_ids[y]) for t, y in zip(texts, labels)
        ]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model folder or hub id (default: the packaged MiniLM)")
    parser.add_argument("--train-size", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--noise", type=float, default=0.3, help="share of training labels flipped at random")
    parser.add_argument(
        "--drop-fraction",
        default="auto",
        help="share of samples the agent leaves out (auto: the noise rate it estimates)",
    )
    parser.add_argument("--output-dir", default="runs/trainer-example")
    args = parser.parse_args(argv)

    texts, topics = bbc_news()
    order = np.random.default_rng(0).permutation(len(texts))
    train = [int(i) for i in order[: args.train_size]]
    validation = [int(i) for i in order[args.train_size : args.train_size + 150]]
    names = sorted(set(topics))
    rng = random.Random(0)
    labels, flipped = [], []
    for i in train:  # the noise the script does not know about
        wrong = rng.random() < args.noise
        labels.append(rng.choice([n for n in names if n != topics[i]]) if wrong else topics[i])
        flipped.append(wrong)

    path = resolve_model_name(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    label_ids = {name: k for k, name in enumerate(names)}
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names))
    train_set = Encoded(tokenizer, [texts[i] for i in train], labels, label_ids)
    val_set = Encoded(tokenizer, [texts[i] for i in validation], [topics[i] for i in validation], label_ids)
    training = TrainingArguments(
        args.output_dir,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=16,
        learning_rate=1e-4,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model, training, train_dataset=train_set, eval_dataset=val_set, processing_class=tokenizer)

    select = AutoSelect(
        [texts[i] for i in train],
        labels,
        [texts[i] for i in validation],  # ★
        [topics[i] for i in validation],
        encoder=args.model,
        drop_fraction=args.drop_fraction if args.drop_fraction == "auto" else float(args.drop_fraction),
    )
    select.attach(trainer)  # ★
    trainer.train()
    select.write_data_values(f"{args.output_dir}/data_values.csv")  # ★

    flagged = select.flagged()
    caught = sum(flipped[i] for i in flagged)
    print(
        f"estimated noise {select.valuation.noise.rate:.1%} (flipped: {np.mean(flipped):.1%}); the agent left out "
        f"{len(flagged)} samples, {caught} of them flipped; eval loss {trainer.evaluate()['eval_loss']:.4f}"
    )
    return {"select": select, "flipped": flipped, "trainer": trainer}


if __name__ == "__main__":
    main()
