"""Parameter-efficient fine-tuning (``training.peft``) with the ``peft`` library.

``wrap`` turns a transformers model with a task head into a ``PeftModel``: LoRA or IA3 adapters on the
encoder's linear layers, the encoder frozen, the task head fully trainable (peft's ``modules_to_save`` for
the task type). Its ``save_pretrained`` writes the adapter (and the head) with ``adapter_config.json``,
which names the base model; ``load`` puts a saved adapter back on a freshly loaded base model, and
``merge`` folds it into the base weights, for a model plain transformers loads.

A run's adapter names its base as the config does (``save`` with the config's ``model``), never by the folder
a packaged model resolves to: ``model: default`` (MiniLM inside site-packages) is written ``default``, so a run
directory holds no path of the machine it was trained on, and ``autoft.load`` resolves the name
(``resolve_model_name``) as it loads the base. A model given as a folder path or a Hub id is its own name. In
memory an adapter names the folder its base was loaded from, as peft expects; an adapter saved without
``save`` (``autoft export``, for peft or transformers outside autoft) names that folder.

An adapter stack (``continual.method: lora-per-task``): a continual update trains a new adapter on a base into
which the parent's adapters were folded, frozen. Its model folder keeps the earlier adapters in ``stack/<i>/``,
listed in order, with the labels each was trained for, in ``stack.json``; ``load`` folds them into the base
one after the other before it puts the folder's own adapter on top.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autoft.config import AUTO, PeftConfig
from autoft.errors import ConfigError, ModelLoadError
from autoft.modeling.load import resolve_model_name

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
STACK = "stack.json"
HEADS = ["classifier", "score", "qa_outputs"]
"""The task heads peft keeps fully trainable (``modules_to_save``); ``target_modules: auto`` leaves them out (peft's
``all-linear`` does not recognise a token-classification head as the output layer)."""


def is_adapter(folder: str | Path) -> bool:
    """Whether ``folder`` holds a peft adapter rather than a whole model."""
    return (Path(folder) / ADAPTER_CONFIG).exists()


def is_wrapped(model: Any) -> bool:
    """Whether ``model`` is a peft model (adapters on a base model)."""
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def _peft_config(config: PeftConfig, task_type: str, model_type: str, heads: list[str] = HEADS) -> Any:
    from peft import IA3Config, LoraConfig
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING

    targets = config.target_modules
    # The head trains whole, unadapted (named only where the model has one: peft warns about a name matching nothing).
    every_linear: dict[str, Any] = {"target_modules": "all-linear", **({"exclude_modules": heads} if heads else {})}
    if config.method == "lora":
        # (peft annotates lora_alpha as int; it takes the config's float as it is: scaling = alpha / r)
        return LoraConfig(
            r=config.r,
            lora_alpha=config.alpha,  # type: ignore[arg-type]
            lora_dropout=config.dropout,
            task_type=task_type,
            **(every_linear if targets == AUTO else {"target_modules": list(targets)}),
        )
    if targets == AUTO and model_type not in TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING:
        return IA3Config(task_type=task_type, feedforward_modules=[], **every_linear)
    return IA3Config(
        task_type=task_type,
        target_modules=None if targets == AUTO else list(targets),
        feedforward_modules=None if targets == AUTO else [],
    )


def wrap(model: Any, config: PeftConfig, task_type: str) -> Any:
    """``model`` with ``config``'s adapters (peft ``task_type``, e.g. ``SEQ_CLS``); a target module name that
    matches nothing in the architecture is a ``ConfigError`` naming ``training.peft.target_modules``."""
    from peft import get_peft_model

    model_type = getattr(model.config, "model_type", "")
    try:
        names = {name.rpartition(".")[2] for name, _ in model.named_modules()}
        heads = [head for head in HEADS if head in names]
        wrapped = get_peft_model(model, _peft_config(config, task_type, model_type, heads))
    except ValueError as error:  # peft's NoMatchingPeftModuleError is a ValueError
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        targets = config.target_modules if config.target_modules != AUTO else "auto"
        raise ConfigError(
            f"training.peft.target_modules: {targets!r} does not fit a {model_type or 'this'} model: {first}"
        ) from None
    trainable, total = parameter_counts(wrapped)
    log.info("peft %s: %d of %d parameters train (%.2f%%)", config.method, trainable, total, 100 * trainable / total)
    return wrapped


def parameter_counts(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of ``model``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def stack_labels(folder: str | Path) -> list[str] | None:
    """The labels the first adapter of ``folder``'s stack was trained for (the base model's head then);
    ``None``: ``folder`` holds no stack."""
    path = Path(folder) / STACK
    return json.loads(path.read_text(encoding="utf-8"))["adapters"][0]["labels"] if path.exists() else None


def load(base: Any, folder: str | Path, *, labels: list[str] | None = None, trainable: bool = False) -> Any:
    """The adapter saved in ``folder`` on ``base`` (the base model with a task head of the right size: the
    labels of the first adapter of a stack, see ``stack_labels``), for inference or, ``trainable``, to train on
    (a continual update). The adapters of a stack are folded into ``base`` first, and its head then grows to
    ``labels``, the ones the top adapter was trained for."""
    from peft import PeftModel

    from autoft.modeling.heads import grow_head

    folder = Path(folder)
    if (folder / STACK).exists():
        for entry in json.loads((folder / STACK).read_text(encoding="utf-8"))["adapters"]:
            grow_head(base, entry["labels"])
            base = PeftModel.from_pretrained(base, str(folder / entry["folder"])).merge_and_unload()
        if labels is not None:
            grow_head(base, labels)
    model = PeftModel.from_pretrained(base, str(folder), is_trainable=trainable)
    for config in model.peft_config.values():  # a saved name (``default``) stands for the folder ``base`` came from
        config.base_model_name_or_path = getattr(base, "name_or_path", None) or config.base_model_name_or_path
    return model if trainable else model.eval()


def _grown_embeddings(model: Any, base_name: str) -> bool | str:
    """Whether ``model``'s vocabulary outgrew its base's (relation extraction adds entity markers), so the
    adapter must carry the grown embeddings; ``"auto"`` (peft's own check) where the base's config is not a
    local folder. peft asks the folder it names, which a name like ``default`` is not."""

    def has_config(folder: str) -> bool:
        return bool(folder) and (Path(folder) / "config.json").is_file()

    base = model.get_base_model()
    folder = getattr(base, "name_or_path", None) or ""  # where the base was loaded from
    if not has_config(folder):
        with contextlib.suppress(ModelLoadError):
            folder = resolve_model_name(base_name)
    saved = getattr(type(base.config).from_pretrained(folder), "vocab_size", None) if has_config(folder) else None
    grown = getattr(base.config, "vocab_size", None)
    return "auto" if saved is None or grown is None else saved != grown


@contextlib.contextmanager
def _named(model: Any, name: str) -> Iterator[None]:
    """While open, peft model ``model`` gives ``name`` as its base: in each adapter's config and in the model
    card peft writes (its ``base_model`` and tag come from the base model's ``name_or_path``)."""
    base = model.get_base_model()
    configs = list(model.peft_config.values())
    before = (
        [c.base_model_name_or_path for c in configs],
        getattr(base, "name_or_path", None),
        base.config.name_or_path,
    )
    try:
        for c in configs:
            c.base_model_name_or_path = name
        base.name_or_path = base.config.name_or_path = name
        yield
    finally:
        for c, old in zip(configs, before[0]):
            c.base_model_name_or_path = old
        base.name_or_path, base.config.name_or_path = before[1], before[2]


def save(model: Any, folder: str | Path, base_name: str | None = None) -> None:
    """``model.save_pretrained(folder)``; a peft model's adapter names its base ``base_name`` (the config's
    ``model``; None: the folder it was loaded from) and holds the embeddings when the vocabulary grew."""
    if not is_wrapped(model) or base_name is None:
        model.save_pretrained(folder)
        return
    grown = _grown_embeddings(model, base_name)
    with _named(model, base_name):
        model.save_pretrained(folder, save_embedding_layers=grown)


def write_stack(parent: str | Path, output: str | Path, parent_labels: list[str]) -> None:
    """Into model folder ``output``: the stack of the adapter run in model folder ``parent`` (its own earlier
    adapters, then its adapter, trained for ``parent_labels``), for an adapter trained on top of them all."""
    parent, output = Path(parent), Path(output)
    earlier = json.loads((parent / STACK).read_text(encoding="utf-8"))["adapters"] if (parent / STACK).exists() else []
    entries = []
    for i, entry in enumerate([*earlier, {"folder": ".", "labels": parent_labels}]):
        target = output / "stack" / str(i)
        target.mkdir(parents=True, exist_ok=True)
        source = parent / entry["folder"]
        for name in (ADAPTER_CONFIG, "adapter_model.safetensors"):
            shutil.copyfile(source / name, target / name)
        entries.append({"folder": f"stack/{i}", "labels": entry["labels"]})
    (output / STACK).write_text(json.dumps({"adapters": entries}, indent=2) + "\n", encoding="utf-8")


def merge(model: Any) -> Any:
    """A plain transformers model with ``model``'s adapters folded into its weights (``model`` itself when it
    has none)."""
    return model.merge_and_unload() if is_wrapped(model) else model


__all__ = [
    "ADAPTER_CONFIG",
    "STACK",
    "is_adapter",
    "is_wrapped",
    "load",
    "merge",
    "parameter_counts",
    "save",
    "stack_labels",
    "wrap",
    "write_stack",
]
