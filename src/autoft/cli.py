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

from autoft.cli_parser import build_parser
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
    print(
        f"estimated label noise: {noise['rate']:.1%} of the {noise['units']}; "
        + ", ".join(f"{name} {rate:.0%}" for name, rate in noise["per_class"].items())
        + f" ({path.parent / 'noise.json'})"
    )
    print("lowest-valued samples:")
    for row in rows[: args.show]:
        print(
            f"  {float(row['value']):.3f}  given {row['given_label']!r:<14} suggested {row['suggested_label']!r:<14} "
            f"{row['text'][:70]}"
        )
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
    _announce(
        "predict", f"{args.run_dir} on {'stdin' if args.input == '-' else args.input} → {args.output or 'stdout'}"
    )
    from autoft.data.loading import read_texts
    from autoft.run import Run

    run = Run.load(args.run_dir)
    if args.set:
        run.set_decoding(args.set)
    text_column = args.text_column or run.config.data.text_column
    examples = read_texts(args.input, task=run.task, text_column=text_column, columns=run.config.data.columns)
    predictions = run.predict(examples, progress=not args.no_progress and args.output is not None, backend=args.backend)
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
        fmt, "model" if not run.is_peft else "adapter (peft loads it on the base model)"
    )
    print(f"{kind} written to {output}", file=sys.stderr)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    given = [*args.data, *(f"{f} (unlabelled)" for f in args.unlabeled)]
    _announce(
        "update",
        f"{args.run_dir}{' (its latest)' if args.latest else ''} + {' '.join(given)} → "
        f"{args.output or 'a new run beside the lineage root'}",
    )
    from autoft.continual import update
    from autoft.lineage import latest

    parent = latest(args.run_dir) if args.latest else args.run_dir
    overrides = [*args.set, *(["training.progress=false"] if args.no_progress else [])]
    result = update(
        parent,
        args.data or None,
        unlabeled=args.unlabeled or None,
        validation=args.validation,
        output=args.output,
        overrides=overrides,
        overwrite=args.overwrite,
        resume=args.resume,
    )
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
    if args.drain_seconds < 0:
        raise ConfigError(f"--drain-seconds must be >= 0, got {args.drain_seconds:g}")
    _announce("serve", f"{args.run_dir} on http://{args.host}:{args.port}")
    from autoft.run import Run
    from autoft.serving import ServeSettings, read_token, serve

    token = read_token(args.token_file) if args.token_file else None
    if args.threads < 0 or args.follow_interval <= 0 or args.collect_max_mb <= 0:
        raise ConfigError(
            "--threads must be >= 0 (0: each worker's share of the cores); --follow-interval and --collect-max-mb > 0"
        )
    settings = ServeSettings(
        run_dir=args.run_dir,
        token=token,
        max_body_bytes=int(args.max_body_mb * (1 << 20)),
        max_items=args.max_items,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
        backend=args.backend,
        quantize=args.quantize,
        threads=args.threads,
        follow_latest=args.follow_latest,
        follow_interval=args.follow_interval,
        collect=args.collect,
        collect_max_mb=args.collect_max_mb,
        max_new_tokens=args.max_new_tokens,
        drain_seconds=args.drain_seconds,
    )
    run = Run.load(args.run_dir)  # a bad run directory is a one-line error before the server starts
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("serving on %s without --token-file: anyone who reaches the port can use the model", args.host)
    serve(
        settings,
        run=run if args.workers == 1 else None,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning" if args.quiet else "info",
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    _announce("demo", f"BBC News, {args.train_size} training articles, {args.noise:.0%} noise → {args.output_dir}")
    from autoft.demo import run_demo

    result = run_demo(
        args.output_dir,
        train_size=args.train_size,
        epochs=args.epochs,
        noise=args.noise,
        policy=args.policy,
        progress=not args.no_progress,
    )
    comparison, detection = result["comparison"], result["detection"]
    print(
        f"\nBBC News, packaged MiniLM, {args.train_size} training articles with {args.noise:.0%} of their labels "
        f"flipped at random; clean validation and test sets. Runs: {comparison['output_dir']}\n"
    )
    print(comparison["table"])
    print(
        f"\nThe agent estimated that {detection['estimated_noise']:.1%} of the training labels are wrong "
        f"(it was not told; {detection['flipped'] / args.train_size:.1%} were flipped)."
    )
    if detection["flipped"]:
        print(
            f"\nThe agent left out {detection['flagged']} samples; {detection['flagged_that_were_flipped']} of "
            f"them were among the {detection['flipped']} flipped labels."
        )
    print("\nLowest-valued training samples (data_values.csv):")
    for row in result["worst"]:
        print(
            f"  value {float(row['value']):.3f}  given {row['given_label']:<13} suggested {row['suggested_label']:<13} "
            f"{row['text'][:60]}"
        )
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
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
        return globals()[f"cmd_{args.command}"](args)  # (looked up now: a test may replace a command)
    except AutoftError as error:
        print(f"autoft: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("autoft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
