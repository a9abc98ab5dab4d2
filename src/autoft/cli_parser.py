"""The ``autoft`` command line's arguments: one sub-parser per command (:mod:`autoft.cli` runs them)."""

from __future__ import annotations

import argparse
from typing import Any

from autoft.config import DEFAULT_POLICY


def _config_arguments(parser: argparse.ArgumentParser, *, overwrite: bool) -> None:
    """The arguments of every command that reads a config: CONFIG, --set, [--overwrite], --no-progress."""
    parser.add_argument("config", help="YAML config file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set training.epochs=1 (repeatable)",
    )
    if overwrite:
        parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output_dir")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _resume_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted job from its last checkpoint (the same config and data); with "
        "nothing to resume from it starts from the beginning",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoft",
        description="Autonomous fine-tuning of pretrained transformers (classification, NER, relation extraction, "
        "question answering, generation): an agent chooses what the model learns from.",
        epilog="Run 'autoft COMMAND --help' for a command's options. Errors exit with status 2.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings only, and show no progress bars")
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log debug messages too, among them the libraries' FutureWarnings and TracerWarnings",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="let model weights load from pickle files (pytorch_model.bin), which can run code; by "
        "default only safetensors load",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _training_commands(commands)
    _run_dir_commands(commands)
    _lineage_commands(commands)
    _serve_command(commands)
    _tool_commands(commands)
    return parser


def _training_commands(commands: Any) -> None:
    """train, value, run: from a config."""
    p = commands.add_parser(
        "train",
        help="fine-tune a model from a YAML config into a run directory",
        description="Fine-tune per CONFIG and write the run directory (output_dir).",
    )
    _config_arguments(p, overwrite=True)
    _resume_argument(p)

    p = commands.add_parser(
        "value",
        help="value every training sample (offline agent): data_values.csv",
        description="Offline valuation: embed the data with the frozen encoder, fit "
        f"selection.policy (default {DEFAULT_POLICY}) and write data_values.csv, worst "
        "first, into output_dir.",
    )
    _config_arguments(p, overwrite=False)
    p.add_argument("--show", type=int, default=10, help="lowest-valued samples to print (default 10)")

    p = commands.add_parser(
        "run",
        help="plain vs autonomous fine-tuning side by side, with a comparison",
        description="Train plain fine-tuning and fine-tuning with the agent on the same "
        "splits; write both runs, comparison.md/json, decisions.jsonl and "
        "data_values.csv into output_dir.",
    )
    _config_arguments(p, overwrite=True)
    _resume_argument(p)


def _run_dir_commands(commands: Any) -> None:
    """evaluate, predict, export: with a run directory."""
    p = commands.add_parser(
        "evaluate",
        help="score a run's model on a labelled file",
        description="Print the metrics of RUN_DIR's model on a labelled data file as JSON.",
    )
    p.add_argument("run_dir", help="run directory written by 'autoft train'")
    p.add_argument("--data", required=True, help="labelled file (CSV, TSV, JSONL, Parquet or CoNLL)")
    p.add_argument("--output", help="also write the full metrics JSON here")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="generation.KEY=VALUE",
        help="generative runs: a decoding setting for this call (e.g. generation.num_beams=4)",
    )

    p = commands.add_parser(
        "predict",
        help="predict labels, entities, answers or generated text, writing JSONL",
        description="Predict with RUN_DIR's model. Input: a table file (text column), CoNLL "
        "tokens, a plain text file, or stdin (one text per line; question "
        "answering: JSON lines with context and question).",
    )
    p.add_argument("run_dir", help="run directory written by 'autoft train'")
    p.add_argument("--input", default="-", help="input file, or - for stdin (default)")
    p.add_argument("--output", help="JSONL output file (default: stdout)")
    p.add_argument("--text-column", help="text column of a table input (default: the run's data.text_column)")
    p.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: onnxruntime on RUN_DIR/onnx/model.onnx (autoft export RUN_DIR --format onnx)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="generation.KEY=VALUE",
        help="generative runs: a decoding setting for this call (e.g. generation.num_beams=4)",
    )

    p = commands.add_parser(
        "export",
        help="write a run's model for plain transformers (--merge folds adapters in)",
        description="Write RUN_DIR's model and tokenizer in save_pretrained format. With "
        "--merge a peft adapter is folded into the base weights, so plain "
        "transformers loads the result; without it an adapter run exports its "
        "adapter.",
    )
    p.add_argument("run_dir", help="run directory written by 'autoft train'")
    p.add_argument("--output", help="folder to write (must be new or empty; --format onnx: default RUN_DIR/onnx)")
    p.add_argument(
        "--format",
        choices=("model", "merged", "onnx"),
        default="model",
        help="model: save_pretrained (an adapter run: its adapter); merged: adapters folded into the base "
        "weights; onnx (encoder tasks): model.onnx with dynamic batch and sequence axes",
    )
    p.add_argument("--merge", action="store_true", help="the same as --format merged")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")


def _lineage_commands(commands: Any) -> None:
    """update, lineage: continual learning."""
    p = commands.add_parser(
        "update",
        help="continue a finished run on new data, without forgetting the old",
        description="Train a new run from RUN_DIR's weights on the new data plus a replay of "
        "old samples (continual.*), compare it with its parent on the old and new "
        "validation data, and promote it to the lineage's latest if the gate "
        "passes. The update is a new run directory (--output). RUN_DIR's own "
        "files (model, config, metrics) are not changed, but the lineage's root "
        "(RUN_DIR, unless RUN_DIR is itself an update) gains a line in "
        "lineage.jsonl per update, the symlink 'latest' (set or moved when an "
        "update is promoted) and an empty lock file, .update.lock.",
    )
    p.add_argument("run_dir", help="the parent run directory")
    p.add_argument("--data", nargs="+", default=[], help="new labelled file(s), in the parent's columns")
    p.add_argument(
        "--unlabeled",
        nargs="+",
        default=[],
        metavar="PATH",
        help="new texts without labels (classification; files or folders, e.g. what 'autoft serve "
        "--collect DIR' kept): learned from by self-training on the parent's pseudo-labels, beside "
        "the replayed old samples; without --data the lineage's validation data validates the update",
    )
    p.add_argument("--latest", action="store_true", help="start from the newest promoted run of RUN_DIR's lineage")
    p.add_argument("--validation", help="new validation file (default: a seeded split of the new data)")
    p.add_argument("--output", help="the update's run directory (default: <root>-update-<n> beside the root)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. continual.method=ewc (repeatable)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _resume_argument(p)

    p = commands.add_parser(
        "lineage",
        help="print a run's lineage: the root and every update, the latest marked",
        description="Print RUN_DIR's lineage, oldest first; * marks the latest promoted run.",
    )
    p.add_argument("run_dir", help="any run of the lineage")


def _tool_commands(commands: Any) -> None:
    """report, config, demo (serve: ``_serve_command``)."""
    p = commands.add_parser(
        "report",
        help="write RUN_DIR/report.html: tables and plots of a run",
        description="Write one self-contained HTML page about RUN_DIR (a run directory, or the "
        "output of 'autoft run'): the before/after table, learning curves, the "
        "agent's rewards, selections and noise estimate, data values, suspect "
        "samples, the confusion matrix, NER examples, generated outputs.",
    )
    p.add_argument("run_dir", help="run directory, or the output_dir of 'autoft run'")

    p = commands.add_parser(
        "config",
        help="print a complete config: every field at its default, each explained",
        description="Print a YAML config with every field at its default and a comment per "
        "field (the reference docs/configuration.md gives as tables).",
    )
    p.add_argument("--markdown", action="store_true", help="print the reference as Markdown tables instead")

    p = commands.add_parser(
        "demo",
        help="plain vs autonomous fine-tuning of MiniLM on noisy BBC News",
        description="The main job on the embedded default model and packaged data: BBC "
        "News with injected label noise, plain vs autonomous fine-tuning, the "
        "before/after table and the worst-valued samples.",
    )
    p.add_argument("--output-dir", default="runs/demo", help="run directory (replaced if present)")
    p.add_argument("--train-size", type=int, default=600, help="training articles (default 600)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--noise", type=float, default=0.3, help="share of training labels flipped (default 0.3)")
    p.add_argument("--policy", default=DEFAULT_POLICY, help=f"the agent's policy (default {DEFAULT_POLICY})")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _serve_command(commands: Any) -> None:
    """serve."""
    p = commands.add_parser(
        "serve",
        help="serve a run over HTTP: POST /predict, GET /health, /metadata, /metrics",
        description='Serve RUN_DIR with FastAPI and uvicorn: POST /predict ({"input": x} or '
        "{\"inputs\": [...]}, the JSON shapes of 'autoft predict'), POST "
        "/generate (generation: server-sent events, with per-request decoding "
        "parameters), GET /health, GET "
        "/metadata, GET /metrics (Prometheus), docs at /docs. Concurrent requests "
        "are batched; SIGTERM drains the requests in flight before exiting.",
    )
    p.add_argument("run_dir", help="run directory written by 'autoft train'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token-file", help="file holding a bearer token every request must send")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own model")
    p.add_argument("--max-batch", type=int, default=32, help="inputs per model call (default 32)")
    p.add_argument(
        "--batch-window-ms",
        type=float,
        default=5.0,
        help="how long a request waits for others to batch with (default 5 ms)",
    )
    p.add_argument("--max-items", type=int, default=64, help="inputs per request (default 64; more: 413)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=512,
        help="generation: the most tokens a /generate request's parameters may ask for (default 512)",
    )
    p.add_argument("--max-body-mb", type=float, default=1.0, help="request body size limit (default 1 MiB; 413)")
    p.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: onnxruntime on RUN_DIR/onnx/model.onnx (exported on first start when missing; encoder tasks)",
    )
    p.add_argument(
        "--quantize",
        choices=("int8",),
        help="with --backend onnx: serve a dynamic int8 quantisation (RUN_DIR/onnx/model.int8.onnx, written once)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads per worker (default 0: the cores shared out among the workers)",
    )
    p.add_argument(
        "--follow-latest",
        action="store_true",
        help="serve the latest run of RUN_DIR's lineage, and each run 'autoft update' promotes after it "
        "(loaded in the background, swapped in between batches; a run that fails to load is refused)",
    )
    p.add_argument("--follow-interval", type=float, default=5.0, help="seconds between looks at latest (default 5)")
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=1.0,
        help="on SIGTERM: how long to go on answering on open connections, each answer closing its connection, "
        "before shutting down (default 1; one worker)",
    )
    p.add_argument(
        "--collect",
        metavar="DIR",
        help="append every input /predict answers, with its prediction, to "
        "DIR/served-YYYY-MM-DD.jsonl (unlabelled data for the next "
        "update; off by default)",
    )
    p.add_argument(
        "--collect-max-mb",
        type=float,
        default=100.0,
        help="stop collecting once DIR's served files reach this size (default 100)",
    )


def _version() -> str:
    from autoft import __version__

    return __version__


__all__ = ["build_parser"]
