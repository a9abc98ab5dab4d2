"""The ``autoft`` command line: thin subcommands that build configs and call the library.

Start-up is kept short: this module imports no torch or transformers at the top (nor does ``autoft/__init__``),
and each command logs its first line before it imports them, so ``--help`` answers at once and a long job says
what it is doing within a second or two.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from autoft.config import DEFAULT_POLICY
from autoft.console import hide_progress_bars, metrics_table, route_warnings
from autoft.errors import AutoftError, ConfigError
from autoft.io import write_text_atomic

log = logging.getLogger("autoft")

EXIT_USAGE = 2

def _announce(command: str, what: str) -> None:
    """A command's first log line, written before it imports torch (seconds) so the user sees it start."""
    log.info("autoft %s: %s", command, what)


def _load(args: argparse.Namespace):
    """The command's config (validated: a bad one fails here, before torch is imported); logs the first line."""
    from autoft.config import load_config

    config = load_config(args.config, args.set)
    if args.no_progress:
        config.training.progress = False
    _announce(args.command, f"{args.config} → {config.output_dir}")
    return config


def cmd_train(args: argparse.Namespace) -> int:
    config = _load(args)
    from autoft.run import train

    run = train(config, overwrite=args.overwrite, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":  # torchrun / accelerate launch: the main process reports
        return 0
    print(f"run: {run.path}  (best epoch {run.metrics['best_epoch']}, {run.metrics['wall_seconds']:.0f} s)")
    print(metrics_table(run.metrics, run.task))
    print(f"every score: {Path(run.path) / 'metrics.json'}")
    return 0


def cmd_value(args: argparse.Namespace) -> int:
    import csv

    config = _load(args)
    from autoft.autonomous import value

    path = value(config)
    count = flagged = 0
    lowest: list[tuple[float, int, dict[str, str]]] = []  # a pool (file order): the args.show lowest values so far
    rows: list[dict[str, str]] = []
    with path.open(encoding="utf-8", newline="") as stream:  # read as a stream: a pool may hold millions of rows
        reader = csv.DictReader(stream)
        pool = "valued_by" in (reader.fieldnames or [])  # else written worst first
        for row in reader:
            count += 1
            flagged += row["flagged"] == "True"
            if pool:  # a heap of the lowest (value, row number): the highest is popped
                heapq.heappush(lowest, (-float(row["value"]), -count, row))
                if len(lowest) > args.show:
                    heapq.heappop(lowest)
            elif len(rows) < args.show:
                rows.append(row)
    if pool:
        rows = [row for _, _, row in sorted(lowest, reverse=True)]
    noise = json.loads((path.parent / "noise.json").read_text(encoding="utf-8"))
    print(f"{count} samples valued, {flagged} flagged: {path}")
    if "prompt_gain" in (reader.fieldnames or []):  # generative: responses that do not belong to their prompts
        print(f"estimated share of mismatched pairs: {noise['rate']:.1%} ({path.parent / 'noise.json'})")
        print("likeliest mismatched pairs:")
        for row in rows[: args.show]:
            print(f"  {float(row['mismatch_probability']):.3f}  {row['prompt'][-50:]!r} -> {row['response'][:50]!r}")
        return 0
    print(f"estimated label noise: {noise['rate']:.1%} of the {noise['units']}; "
          + ", ".join(f"{name} {rate:.0%}" for name, rate in noise["per_class"].items()) + f" ({path.parent / 'noise.json'})")
    print("lowest-valued samples:")
    for row in rows[: args.show]:
        print(f"  {float(row['value']):.3f}  given {row['given_label']!r:<14} suggested {row['suggested_label']!r:<14} "
              f"{row['text'][:70]}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    from autoft.autonomous import run

    comparison = run(config, overwrite=args.overwrite, resume=args.resume)
    print(f"run: {comparison['output_dir']}  ({comparison['wall_seconds']:.0f} s)")
    print(comparison["table"])
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    _announce("evaluate", f"{args.run_dir} on {args.data}" + (f" → {args.output}" if args.output else ""))
    from autoft.run import Run

    run = Run.load(args.run_dir)
    if args.set:
        run.set_decoding(args.set)
    metrics = run.evaluate(args.data, progress=not args.no_progress)
    text = json.dumps(metrics, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        write_text_atomic(Path(args.output), text)
    summary = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    print(json.dumps(summary, indent=2) if args.output else text, end="\n" if args.output else "")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    _announce("predict", f"{args.run_dir} on {'stdin' if args.input == '-' else args.input} → "
                         f"{args.output or 'stdout'}")
    from autoft.data.loading import read_texts
    from autoft.run import Run

    run = Run.load(args.run_dir)
    if args.set:
        run.set_decoding(args.set)
    text_column = args.text_column or run.config.data.text_column
    examples = read_texts(args.input, task=run.task, text_column=text_column, columns=run.config.data.columns)
    predictions = run.predict(examples, progress=not args.no_progress and args.output is not None,
                              backend=args.backend)
    lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
    if args.output:
        write_text_atomic(Path(args.output), lines)
        print(f"{len(predictions)} predictions written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    fmt = "merged" if args.merge and args.format == "model" else args.format
    target = args.output or (Path(args.run_dir) / "onnx" if fmt == "onnx" else None)
    _announce("export", f"{args.run_dir} ({fmt})" + (f" → {target}" if target else ""))
    from autoft.run import Run

    run = Run.load(args.run_dir)
    output = run.export(args.output, format=fmt, overwrite=args.overwrite)
    kind = {"onnx": "ONNX model (autoft predict --backend onnx uses it)", "merged": "merged model"}.get(
        fmt, "model" if not run.is_peft else "adapter (peft loads it on the base model)")
    print(f"{kind} written to {output}", file=sys.stderr)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    given = [*args.data, *(f"{f} (unlabelled)" for f in args.unlabeled)]
    _announce("update", f"{args.run_dir}{' (its latest)' if args.latest else ''} + {' '.join(given)} → "
                        f"{args.output or 'a new run beside the lineage root'}")
    from autoft.continual import update
    from autoft.lineage import latest

    parent = latest(args.run_dir) if args.latest else args.run_dir
    overrides = [*args.set, *(["training.progress=false"] if args.no_progress else [])]
    result = update(parent, args.data or None, unlabeled=args.unlabeled or None, validation=args.validation,
                    output=args.output, overrides=overrides, overwrite=args.overwrite, resume=args.resume)
    record = result.record
    metric = record["metric"]
    for name, score in record["scores"].items():
        if score["update"] is not None:
            before = "-" if score["parent"] is None else f"{score['parent']:.4f}"
            print(f"{name} {metric}: parent {before}, update {score['update']:.4f}")
    verdict = "promoted: the lineage's latest" if result.promoted else f"NOT promoted ({record['gate']['why']})"
    print(f"{result.run.path}: {verdict}")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    _announce("lineage", str(args.run_dir))
    from autoft.lineage import lineage_table

    print(lineage_table(args.run_dir))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from autoft.config_reference import reference_markdown, reference_yaml

    print(reference_markdown() if args.markdown else reference_yaml(), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    _announce("report", f"{args.run_dir} → {Path(args.run_dir) / 'report.html'}")
    from autoft.reporting import write_report

    print(write_report(args.run_dir))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if min(args.workers, args.max_batch, args.max_items, args.max_new_tokens) < 1:
        raise ConfigError("--workers, --max-batch, --max-items and --max-new-tokens must be >= 1")
    _announce("serve", f"{args.run_dir} on http://{args.host}:{args.port}")
    from autoft.run import Run
    from autoft.serving import ServeSettings, read_token, serve

    token = read_token(args.token_file) if args.token_file else None
    if args.threads < 0 or args.follow_interval <= 0 or args.collect_max_mb <= 0:
        raise ConfigError("--threads must be >= 0 (0: each worker's share of the cores); --follow-interval and "
                          "--collect-max-mb > 0")
    settings = ServeSettings(run_dir=args.run_dir, token=token, max_body_bytes=int(args.max_body_mb * (1 << 20)),
                             max_items=args.max_items, max_batch=args.max_batch, batch_window_ms=args.batch_window_ms,
                             backend=args.backend, quantize=args.quantize, threads=args.threads,
                             follow_latest=args.follow_latest, follow_interval=args.follow_interval,
                             collect=args.collect, collect_max_mb=args.collect_max_mb,
                             max_new_tokens=args.max_new_tokens)
    run = Run.load(args.run_dir)  # a bad run directory is a one-line error before the server starts
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("serving on %s without --token-file: anyone who reaches the port can use the model", args.host)
    serve(settings, run=run if args.workers == 1 else None, host=args.host, port=args.port, workers=args.workers,
          log_level="warning" if args.quiet else "info")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    _announce("demo", f"BBC News, {args.train_size} training articles, {args.noise:.0%} noise → {args.output_dir}")
    from autoft.demo import run_demo

    result = run_demo(args.output_dir, train_size=args.train_size, epochs=args.epochs, noise=args.noise,
                      policy=args.policy, progress=not args.no_progress)
    comparison, detection = result["comparison"], result["detection"]
    print(f"\nBBC News, packaged MiniLM, {args.train_size} training articles with {args.noise:.0%} of their labels "
          f"flipped at random; clean validation and test sets. Runs: {comparison['output_dir']}\n")
    print(comparison["table"])
    print(f"\nThe agent estimated that {detection['estimated_noise']:.1%} of the training labels are wrong "
          f"(it was not told; {detection['flipped'] / args.train_size:.1%} were flipped).")
    if detection["flipped"]:
        print(f"\nThe agent left out {detection['flagged']} samples; {detection['flagged_that_were_flipped']} of "
              f"them were among the {detection['flipped']} flipped labels.")
    print("\nLowest-valued training samples (data_values.csv):")
    for row in result["worst"]:
        print(f"  value {float(row['value']):.3f}  given {row['given_label']:<13} suggested {row['suggested_label']:<13} "
              f"{row['text'][:60]}")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    return 0


def _config_arguments(parser: argparse.ArgumentParser, *, overwrite: bool) -> None:
    """The arguments of every command that reads a config: CONFIG, --set, [--overwrite], --no-progress."""
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set training.epochs=1 (repeatable)")
    if overwrite:
        parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output_dir")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _resume_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted job from its last checkpoint (the same config and data); with "
                             "nothing to resume from it starts from the beginning")


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
    verbosity.add_argument("-v", "--verbose", action="store_true",
                           help="log debug messages too, among them the libraries' FutureWarnings and TracerWarnings")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="let model weights load from pickle files (pytorch_model.bin), which can run code; by "
                             "default only safetensors load")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _training_commands(commands)
    _run_dir_commands(commands)
    _lineage_commands(commands)
    _tool_commands(commands)
    return parser


def _training_commands(commands: Any) -> None:
    """train, value, run: from a config."""
    p = commands.add_parser("train", help="fine-tune a model from a YAML config into a run directory",
                            description="Fine-tune per CONFIG and write the run directory (output_dir).")
    _config_arguments(p, overwrite=True)
    _resume_argument(p)
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("value", help="value every training sample (offline agent): data_values.csv",
                            description="Offline valuation: embed the data with the frozen encoder, fit "
                                        f"selection.policy (default {DEFAULT_POLICY}) and write data_values.csv, worst "
                                        "first, into output_dir.")
    _config_arguments(p, overwrite=False)
    p.add_argument("--show", type=int, default=10, help="lowest-valued samples to print (default 10)")
    p.set_defaults(func=cmd_value)

    p = commands.add_parser("run", help="plain vs autonomous fine-tuning side by side, with a comparison",
                            description="Train plain fine-tuning and fine-tuning with the agent on the same "
                                        "splits; write both runs, comparison.md/json, decisions.jsonl and "
                                        "data_values.csv into output_dir.")
    _config_arguments(p, overwrite=True)
    _resume_argument(p)
    p.set_defaults(func=cmd_run)


def _run_dir_commands(commands: Any) -> None:
    """evaluate, predict, export: with a run directory."""
    p = commands.add_parser("evaluate", help="score a run's model on a labelled file",
                            description="Print the metrics of RUN_DIR's model on a labelled data file as JSON.")
    p.add_argument("run_dir", help="run directory written by 'autoft train'")
    p.add_argument("--data", required=True, help="labelled file (CSV, TSV, JSONL, Parquet or CoNLL)")
    p.add_argument("--output", help="also write the full metrics JSON here")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--set", action="append", default=[], metavar="generation.KEY=VALUE",
                   help="generative runs: a decoding setting for this call (e.g. generation.num_beams=4)")
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("predict", help="predict labels, entities, answers or generated text, writing JSONL",
                            description="Predict with RUN_DIR's model. Input: a table file (text column), CoNLL "
                                        "tokens, a plain text file, or stdin (one text per line; question "
                                        "answering: JSON lines with context and question).")
    p.add_argument("run_dir", help="run directory written by 'autoft train'")
    p.add_argument("--input", default="-", help="input file, or - for stdin (default)")
    p.add_argument("--output", help="JSONL output file (default: stdout)")
    p.add_argument("--text-column", help="text column of a table input (default: the run's data.text_column)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="onnx: onnxruntime on RUN_DIR/onnx/model.onnx (autoft export RUN_DIR --format onnx)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--set", action="append", default=[], metavar="generation.KEY=VALUE",
                   help="generative runs: a decoding setting for this call (e.g. generation.num_beams=4)")
    p.set_defaults(func=cmd_predict)

    p = commands.add_parser("export", help="write a run's model for plain transformers (--merge folds adapters in)",
                            description="Write RUN_DIR's model and tokenizer in save_pretrained format. With "
                                        "--merge a peft adapter is folded into the base weights, so plain "
                                        "transformers loads the result; without it an adapter run exports its "
                                        "adapter.")
    p.add_argument("run_dir", help="run directory written by 'autoft train'")
    p.add_argument("--output", help="folder to write (must be new or empty; --format onnx: default RUN_DIR/onnx)")
    p.add_argument("--format", choices=("model", "merged", "onnx"), default="model",
                   help="model: save_pretrained (an adapter run: its adapter); merged: adapters folded into the base "
                        "weights; onnx (encoder tasks): model.onnx with dynamic batch and sequence axes")
    p.add_argument("--merge", action="store_true", help="the same as --format merged")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=cmd_export)


def _lineage_commands(commands: Any) -> None:
    """update, lineage: continual learning."""
    p = commands.add_parser("update", help="continue a finished run on new data, without forgetting the old",
                            description="Train a new run from RUN_DIR's weights on the new data plus a replay of "
                                        "old samples (continual.*), compare it with its parent on the old and new "
                                        "validation data, and promote it to the lineage's latest if the gate "
                                        "passes. The update is a new run directory (--output). RUN_DIR's own "
                                        "files (model, config, metrics) are not changed, but the lineage's root "
                                        "(RUN_DIR, unless RUN_DIR is itself an update) gains a line in "
                                        "lineage.jsonl per update, the symlink 'latest' (set or moved when an "
                                        "update is promoted) and an empty lock file, .update.lock.")
    p.add_argument("run_dir", help="the parent run directory")
    p.add_argument("--data", nargs="+", default=[], help="new labelled file(s), in the parent's columns")
    p.add_argument("--unlabeled", nargs="+", default=[], metavar="PATH",
                   help="new texts without labels (classification; files or folders, e.g. what 'autoft serve "
                        "--collect DIR' kept): learned from by self-training on the parent's pseudo-labels, beside "
                        "the replayed old samples; without --data the lineage's validation data validates the update")
    p.add_argument("--latest", action="store_true", help="start from the newest promoted run of RUN_DIR's lineage")
    p.add_argument("--validation", help="new validation file (default: a seeded split of the new data)")
    p.add_argument("--output", help="the update's run directory (default: <root>-update-<n> beside the root)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. continual.method=ewc (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _resume_argument(p)
    p.set_defaults(func=cmd_update)

    p = commands.add_parser("lineage", help="print a run's lineage: the root and every update, the latest marked",
                            description="Print RUN_DIR's lineage, oldest first; * marks the latest promoted run.")
    p.add_argument("run_dir", help="any run of the lineage")
    p.set_defaults(func=cmd_lineage)


def _tool_commands(commands: Any) -> None:
    """report, serve, config, demo."""
    p = commands.add_parser("report", help="write RUN_DIR/report.html: tables and plots of a run",
                            description="Write one self-contained HTML page about RUN_DIR (a run directory, or the "
                                        "output of 'autoft run'): the before/after table, learning curves, the "
                                        "agent's rewards, selections and noise estimate, data values, suspect "
                                        "samples, the confusion matrix, NER examples, generated outputs.")
    p.add_argument("run_dir", help="run directory, or the output_dir of 'autoft run'")
    p.set_defaults(func=cmd_report)

    p = commands.add_parser("serve", help="serve a run over HTTP: POST /predict, GET /health, /metadata, /metrics",
                            description="Serve RUN_DIR with FastAPI and uvicorn: POST /predict ({\"input\": x} or "
                                        "{\"inputs\": [...]}, the JSON shapes of 'autoft predict'), POST "
                                        "/generate (generation: server-sent events, with per-request decoding "
                                        "parameters), GET /health, GET "
                                        "/metadata, GET /metrics (Prometheus), docs at /docs. Concurrent requests "
                                        "are batched; SIGTERM drains the requests in flight before exiting.")
    p.add_argument("run_dir", help="run directory written by 'autoft train'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token-file", help="file holding a bearer token every request must send")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own model")
    p.add_argument("--max-batch", type=int, default=32, help="inputs per model call (default 32)")
    p.add_argument("--batch-window-ms", type=float, default=5.0,
                   help="how long a request waits for others to batch with (default 5 ms)")
    p.add_argument("--max-items", type=int, default=64, help="inputs per request (default 64; more: 413)")
    p.add_argument("--max-new-tokens", type=int, default=512,
                   help="generation: the most tokens a /generate request's parameters may ask for (default 512)")
    p.add_argument("--max-body-mb", type=float, default=1.0, help="request body size limit (default 1 MiB; 413)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="onnx: onnxruntime on RUN_DIR/onnx/model.onnx (exported on first start when missing; "
                        "encoder tasks)")
    p.add_argument("--quantize", choices=("int8",), help="with --backend onnx: serve a dynamic int8 quantisation "
                                                          "(RUN_DIR/onnx/model.int8.onnx, written once)")
    p.add_argument("--threads", type=int, default=0,
                   help="intra-op threads per worker (default 0: the cores shared out among the workers)")
    p.add_argument("--follow-latest", action="store_true",
                   help="serve the latest run of RUN_DIR's lineage, and each run 'autoft update' promotes after it "
                        "(loaded in the background, swapped in between batches; a run that fails to load is refused)")
    p.add_argument("--follow-interval", type=float, default=5.0, help="seconds between looks at latest (default 5)")
    p.add_argument("--collect", metavar="DIR", help="append every input /predict answers, with its prediction, to "
                                                     "DIR/served-YYYY-MM-DD.jsonl (unlabelled data for the next "
                                                     "update; off by default)")
    p.add_argument("--collect-max-mb", type=float, default=100.0,
                   help="stop collecting once DIR's served files reach this size (default 100)")
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser("config", help="print a complete config: every field at its default, each explained",
                            description="Print a YAML config with every field at its default and a comment per "
                                        "field (the reference docs/configuration.md gives as tables).")
    p.add_argument("--markdown", action="store_true", help="print the reference as Markdown tables instead")
    p.set_defaults(func=cmd_config)

    p = commands.add_parser("demo", help="plain vs autonomous fine-tuning of MiniLM on noisy BBC News",
                            description="The main job on the embedded default model and packaged data: BBC "
                                        "News with injected label noise, plain vs autonomous fine-tuning, the "
                                        "before/after table and the worst-valued samples.")
    p.add_argument("--output-dir", default="runs/demo", help="run directory (replaced if present)")
    p.add_argument("--train-size", type=int, default=600, help="training articles (default 600)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--noise", type=float, default=0.3, help="share of training labels flipped (default 0.3)")
    p.add_argument("--policy", default=DEFAULT_POLICY, help=f"the agent's policy (default {DEFAULT_POLICY})")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_demo)


def _version() -> str:
    from autoft import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.verbose:  # autoft's debug lines and the quiet warnings; other libraries' debug chatter stays out
        for name in ("autoft", "py.warnings"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    route_warnings()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.trust_pickle:
        from autoft.modeling.load import TRUST_PICKLE

        os.environ[TRUST_PICKLE] = "1"
    if args.quiet or getattr(args, "no_progress", False):
        hide_progress_bars()
    try:
        return args.func(args)
    except AutoftError as error:
        print(f"autoft: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("autoft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
