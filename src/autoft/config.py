"""Typed, self-validating configuration.

A config is YAML (or a dict) with the sections below; unknown keys, wrong types and out-of-range values
are rejected with the dotted field name, e.g. ``config.yaml: training.epochs: expected 'auto' or an integer
> 0, got 0``. Relative paths are taken relative to the current working directory.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autoft.errors import ConfigError

TaskName = Literal["classification", "multi-label-classification", "relation-extraction", "token-classification",
                   "question-answering", "generation", "seq2seq"]
ONE_LABEL_TASKS = frozenset({"classification", "relation-extraction"})
"""Tasks with one label per text: stratified splits, per-class replay, the agent's per-sample units."""
GENERATIVE_TASKS = frozenset({"generation", "seq2seq"})
"""Tasks that write their output token by token (decoder-only or encoder-decoder models)."""
TEXT_TARGET_TASKS = frozenset({"question-answering"}) | GENERATIVE_TASKS
"""Tasks whose targets are texts (an answer span, a response), not names from a label set."""
TASK_COLUMNS = {"question-answering": ("context", "question", "answers", "answer", "answer_start"),
                "generation": ("prompt", "response", "messages"),
                "seq2seq": ("source", "target")}
"""The column roles of tasks that read more than a text and a label; ``data.columns`` renames them."""
DataFormat = Literal["auto", "csv", "tsv", "jsonl", "parquet", "conll", "semeval", "squad"]
Auto = Literal["auto"]
AUTO: Final = "auto"


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2's booleans: only ``true`` / ``false``. YAML 1.1 (PyYAML's default) also reads ``off``, ``on``,
    ``yes`` and ``no`` as booleans, so ``correction: off`` would arrive as ``False`` and be refused."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse YAML text as configs are read (``off`` and ``on`` stay words); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Yaml12Loader)  # (a SafeLoader)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the data lives and which columns hold text and labels."""

    train: str | list[str] = Field(description="training file, or a list of files (one source each)")
    validation: str | None = Field(None, description="clean validation file; else a seeded split of train")
    test: str | None = Field(None, description="test file: scored once, after training, for the comparison and the "
                             "report; never used to choose anything")
    unlabeled: str | None = Field(
        None, description="texts without labels (classification): the agent may learn from their pseudo-labels "
        "(selection.self_training)")
    text_column: str = Field("text", description="the text's column (NER in JSONL: a list of tokens)")
    label_column: str = Field("label", description="the label's column (NER in JSONL: a list of tags; multi-label: "
                              "a JSON list of labels, or text split at label_delimiter)")
    label_delimiter: str = Field("|", min_length=1, description="multi-label-classification: what separates a row's "
                                 "labels in a text cell (a JSON list needs none); an empty cell is a text no label fits")
    columns: dict[str, str] = Field(
        default_factory=dict, description="column names of a task's roles where they differ from the role's name: "
        "question-answering reads context, question and answers (or answer and answer_start)")
    format: DataFormat = Field(
        "auto", description="auto (by suffix: .csv, .tsv, .jsonl, .parquet, .conll; a .txt file of "
        "relation-extraction is semeval, a .json file of question-answering is squad), or one of csv, tsv, jsonl, "
        "parquet, conll (token<TAB>tag), semeval (SemEval-2010 Task 8 blocks), squad (SQuAD v1.1 JSON)")
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="without data.validation: the share of "
                                       "train split off (seeded, stratified) to validate on")
    on_bad_rows: Literal["error", "skip"] = Field(
        "error", description="a broken row (empty text or label, wrong field count, bad JSON, a tag missing) stops "
        "with file:line (error), or is logged and left out (skip; more than max_bad_rows of a file is still an error)",
    )
    max_bad_rows: float = Field(0.01, ge=0.0, lt=1.0, description="share of a file's rows that skip may leave out")

    @field_validator("train")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("needs at least one file")
        return value

    @property
    def train_files(self) -> list[str]:
        return [self.train] if isinstance(self.train, str) else list(self.train)


def _auto_or_positive(value: Any, kind: type, *, minimum: float = 0.0, inclusive: bool = False) -> Any:
    """``'auto'``, or a number of ``kind`` above ``minimum`` (at least, with ``inclusive``)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    name = "an integer" if kind is int else "a number"
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected 'auto' or {name}, got {value!r}") from None
    if number < minimum or (number == minimum and not inclusive):
        raise ValueError(f"expected 'auto' or {name} {'>=' if inclusive else '>'} {minimum:g}, got {value!r}")
    return number


class PeftConfig(_Strict):
    """Parameter-efficient fine-tuning with the ``peft`` library: the encoder stays frozen, small adapter weights
    train, and the task head stays fully trainable."""

    method: Literal["lora", "ia3"] = Field("lora", description="lora (low-rank updates) or ia3 (learned rescaling)")
    r: int = Field(8, gt=0, description="lora: rank of the update matrices")
    alpha: float = Field(16.0, gt=0.0, description="lora: scaling (the update is multiplied by alpha / r)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="lora: dropout on the adapter's input")
    target_modules: Auto | list[str] = Field(
        AUTO, description="module names to adapt; auto: every linear layer of the encoder, attention and MLP "
        "(lora), or peft's choice for the architecture (ia3)")

    @field_validator("target_modules")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("needs at least one module name, or 'auto'")
        return value


class TrainingConfig(_Strict):
    """Optimisation settings of the one training loop. ``auto`` values are resolved by the loop
    (``autoft.training.plan``) from the data, the task and the machine."""

    epochs: Annotated[int, Field(gt=0)] | Auto = Field(
        AUTO, description="auto: early stopping on validation within a step budget that scales with the data size")
    learning_rate: Annotated[float, Field(gt=0.0)] | Auto = Field(
        AUTO, description="auto: a learning-rate range test on the training data picks it, held under a ceiling "
        "that falls with the planned steps (a long run forgets the pretraining at a rate a short one needs)")
    head_learning_rate: Annotated[float, Field(gt=0.0)] | Auto = Field(
        AUTO, description="the rate of the task head (classifier, score, qa_outputs), which starts untrained; "
        "auto: the range test's rate when learning_rate is auto (unheld by the ceiling), else learning_rate")
    batch_size: Annotated[int, Field(gt=0)] | Auto = Field(
        AUTO, description="auto: 32 on CPU (generative tasks 8); on a GPU the largest of 32..128 that fits in memory")
    eval_batch_size: int = Field(64, gt=0, description="batch size of evaluation and prediction")
    max_length: Annotated[int, Field(ge=8)] | Auto = Field(
        AUTO, description="tokens per input (longer ones are cut); auto: the task's default, 128 (question "
        "answering: 384, longer contexts read in overlapping windows)")
    seed: int = Field(0, description="seed of the head's initialisation, the batches, the splits and the agent")
    early_stopping_patience: Annotated[int, Field(ge=1)] | Auto | None = Field(
        AUTO, description="epochs without improvement; auto: 2, or 3 when more than 12 epochs are planned; null = off")
    early_stopping_on: Literal["metric", "metric-or-loss"] = Field(
        "metric-or-loss", description="what counts as progress: the validation metric only (as transformers' "
        "EarlyStoppingCallback), or it or the validation loss (a model still learning before its predictions "
        "change, as on small data, is not stopped)")
    on_plateau: Literal["continue", "rollback"] = Field(
        "continue", description="after an epoch whose validation metric fell: go on as it is, or go back to the best "
        "epoch's weights and go on at half the learning rate (helps where the rate is too high for the data, hurts "
        "where the model is still under-trained: measured in the README, so not the default)")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW's decoupled weight decay (not on biases and norms)")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="linear warm-up over this share of the planned "
                                "epochs, then linear decay to 0")
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="clip the gradient's norm to this; null: no "
                                        "clipping")
    group_by_length: bool = Field(True, description="batch samples of similar length together")
    padding: Literal["dynamic", "max_length"] = Field("dynamic", description="pad to the batch's longest or to max_length")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("no", description="fp16 or bf16 autocast on a GPU "
                                                           "(accelerate); no: full precision")
    gradient_checkpointing: bool | Auto = Field(
        AUTO, description="recompute activations in the backward pass instead of keeping them: far less memory for "
        "about a third more compute; auto: on for generative tasks (long sequences through deep decoders)")
    progress: bool = Field(True, description="show tqdm progress bars")
    checkpoint_every: Annotated[int, Field(gt=0)] | Auto = Field(
        AUTO, description="optimisation steps between checkpoints within an epoch (one is always written at each "
        "epoch's end); auto: every 10 minutes of training")
    logging: Literal["none", "tensorboard", "mlflow"] = Field(
        "none", description="besides metrics.jsonl (always): tensorboard writes the same scalars as TensorBoard "
        "event files into the run directory's tensorboard/ (needs pip install tensorboard); mlflow logs the "
        "resolved config as params, the same scalars and the final scores as metrics, and the run directory as "
        "artifacts (needs pip install mlflow-skinny)")
    mlflow_uri: str | None = Field(
        None, description="logging: mlflow — the tracking URI; default $MLFLOW_TRACKING_URI, else a local ./mlruns")
    mlflow_experiment: str = Field("autoft", description="logging: mlflow — the experiment's name")
    peft: PeftConfig | None = Field(
        None, description="null: full fine-tuning; lora or ia3 (or a mapping with method, r, alpha, dropout, "
        "target_modules): train adapters and the task head only")

    @field_validator("peft", mode="before")
    @classmethod
    def _peft_shorthand(cls, value: Any) -> Any:
        return {"method": value} if isinstance(value, str) else value

    @field_validator("epochs", "batch_size", "max_length", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        return _auto_or_positive(value, int)

    @field_validator("learning_rate", "head_learning_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        return _auto_or_positive(value, float)

    @field_validator("early_stopping_patience", mode="before")
    @classmethod
    def _patience(cls, value: Any) -> Any:
        return None if value is None else _auto_or_positive(value, int, minimum=1, inclusive=True)


class GenerationConfig(_Strict):
    """How generative tasks (``generation``, ``seq2seq``) write their outputs when evaluated and predicted
    (the arguments of transformers' ``generate``)."""

    max_new_tokens: int = Field(64, gt=0, description="at most this many tokens per output")
    num_beams: int = Field(1, ge=1, description="1: greedy (or sampling); more: beam search")
    do_sample: bool = Field(False, description="sample instead of choosing the likeliest token (seeded by seed)")
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="sampling: nucleus share")
    repetition_penalty: float = Field(1.0, gt=0.0, description="above 1 discourages repeated tokens")
    seed: int = Field(0, description="seed of sampling")
    system_prompt: str | None = Field(None, description="generation with a chat template: a system message first")


DEFAULT_POLICY = "exp3"
"""The agent ``autoft run`` / ``value`` / ``demo`` use when the config says ``policy: none``: on TweetEval
with 40% noise it detected the noise best of the agents and trained the most accurate model (README)."""

REWARDS = ("primary", "accuracy", "macro_f1", "f1", "precision", "recall", "loss")


class SelectionConfig(_Strict):
    """The agent that decides which samples the model learns from (``policy: none`` = plain fine-tuning)."""

    policy: str = Field("none", description="none, random, small-loss, suspicion, reinforce, q-learning or exp3; "
                        "train uses it as given (none: plain fine-tuning); run, value and demo use exp3 where it "
                        "says none (their agent)")
    mode: Literal["auto", "sample", "weight", "mask"] = Field(
        "auto", description="drop low-valued samples, or weight their losses, or (NER) leave the tags of the "
        "lowest-valued entities out of the loss while the rest of their sentences trains; auto: mask for NER, "
        "sample for classification",
    )
    drop_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] | Auto = Field(
        AUTO, description="share of lowest-valued samples left out; auto: the label-noise rate estimated from the "
        "data (out-of-fold probes calibrated on the validation labels), at most 0.5")
    relabel_confidence: float | None = Field(
        None, gt=0.0, le=1.0, description="repair instead of drop: a sample the agent leaves out whose suggested "
        "label (the noise estimate's posterior) differs from the given one with at least this probability trains on "
        "the suggested label instead (NER: each suspect entity on its suggested type; a masked entity is unmasked "
        "so); null: leave it out")
    flagged: Literal["drop", "unlabel"] = Field(
        "drop", description="what happens to a sample the agent leaves out (and does not relabel): drop, or unlabel "
        "(classification: its text stays and trains on the fine-tuned model's own label once that is consistent "
        "across two epochs and at least self_training_threshold confident)")
    balance: Literal["global", "per-class"] = Field(
        "global", description="drop that share over all samples, or within each given label"
    )
    correction: Literal["auto", "off", "forward"] = Field(
        AUTO, description="forward (classification): forward-correct the loss of the samples that train on their "
        "given label with the label-transition matrix the noise estimate fits on the clean validation labels "
        "(GLC), re-estimated each epoch on the samples kept; off: plain cross-entropy; auto: forward for "
        "classification agent runs, off otherwise")
    reward: str = Field(
        "primary",
        description="online reward: the gain of this validation metric (primary: the task's own; accuracy, "
        "macro_f1, f1, precision, recall, loss) or of a user function 'module:function' called as "
        "f(predictions, labels) with the decoded validation predictions and gold labels",
    )
    update_every: Literal["auto", "epoch"] | int = Field(
        AUTO, description="reward the agent per epoch, or every N optimisation steps on a validation mini-batch; "
        "auto: per epoch for classification and NER, four times an epoch on 32 pairs for generative tasks (their runs "
        "are a few epochs long)")
    reward_batch: int = Field(128, ge=1, description="validation samples in the mini-batch of update_every: N")
    fit_rows: int = Field(
        20000, ge=100, description="autoft value on a pool with more training rows (classification): the offline "
        "phase runs on a seeded sample of this many and its values are carried to every row by a model of the "
        "sample's values; the pool is read, encoded and written as a stream")
    reward_fraction: float = Field(
        0.5, gt=0.0, lt=1.0, description="share of the validation set (seeded, stratified) the agent learns from "
        "(its valuation, noise estimate and rewards); the rest alone chooses early stopping and the best epoch")
    bucket_by: Literal["value", "source"] = Field("value", description="buckets of q-learning / exp3")
    rescore: Literal["off", "dynamics", "model"] = Field(
        "dynamics",
        description="re-score samples each epoch: off; dynamics (area under the margin of the samples trained "
        "on, free); model (the fine-tuned model's margin on every training sample, also those left out, "
        "so they can come back: one inference pass over the training set per epoch)",
    )
    self_training: Literal["agent", "threshold", "off"] = Field(
        "agent", description="how data.unlabeled texts are learned from: agent (pseudo-labels consistent across "
        "epochs, admitted per class above the confidence whose precision on the agent's validation part reaches a "
        "target the agent chooses online), threshold (every pseudo-label above self_training_threshold), off")
    self_training_threshold: float = Field(0.9, gt=0.0, le=1.0, description="confidence of self_training: threshold")
    options: dict[str, Any] = Field(default_factory=dict, description="policy-specific options, e.g. reinforce: "
                                    "iterations, hidden, epsilon; exp3: gamma, eta; q-learning: epsilon, n_buckets; "
                                    "every policy: reward, the inner learner's score (log_likelihood, accuracy, "
                                    "macro_f1 or a user function 'module:function')")

    @property
    def uses_agent(self) -> bool:
        """Whether a run values its samples (a policy other than ``none``, or a loss correction, which needs
        the noise estimate)."""
        return self.policy != "none" or self.correction == "forward"

    @field_validator("drop_fraction", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        value = _auto_or_positive(value, float, minimum=0.0, inclusive=True)
        if value != AUTO and value >= 1.0:
            raise ValueError(f"expected 'auto' or a number in [0, 1), got {value!r}")
        return value

    @field_validator("reward")
    @classmethod
    def _known_reward(cls, value: str) -> str:
        if value not in REWARDS and ":" not in value:
            raise ValueError(f"unknown reward {value!r}; known: {', '.join(REWARDS)}, or 'module:function'")
        return value

    @field_validator("rescore", mode="before")
    @classmethod
    def _rescore_flag(cls, value: Any) -> Any:
        return {True: "dynamics", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("update_every")
    @classmethod
    def _positive_steps(cls, value: str | int) -> str | int:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be 'epoch' or a number of steps >= 1, got {value}")
        return value

    @field_validator("policy")
    @classmethod
    def _policy_key(cls, value: str) -> str:
        # Normalised here; whether it names a registered policy is checked where policies live
        # (``autoft.selection.policies.check_policy``), before any training starts.
        return value.strip().lower().replace("_", "-")


class ContinualConfig(_Strict):
    """How ``autoft update`` continues a finished run on new data without forgetting the old."""

    method: Literal["replay", "ewc", "l2", "lora-per-task"] = Field(
        "replay", description="replay: mix old samples into the new data; ewc / l2: also pull the weights toward the "
        "parent's (Fisher-weighted / plain), with penalty as the strength; lora-per-task (a training.peft lora "
        "run): the parent's adapters are folded into the frozen base and the update trains a new adapter")
    replay_budget: float = Field(0.1, ge=0.0, le=1.0, description="old training samples replayed, as a share of "
                                 "all the data the lineage trained on (0: none)")
    replay_by: Literal["value", "random"] = Field(
        "value", description="value: the old samples the parent model holds most firmly (its margin for the given "
        "label); random: a seeded sample; never one an agent of the lineage flagged")
    replay_weight: Annotated[float, Field(ge=1.0)] | Auto = Field(
        AUTO, description="loss weight of each replayed sample; auto: the old samples it stands for (all the "
        "lineage's old training data over the samples replayed), so the old data weighs what it would in joint "
        "training")

    @field_validator("replay_weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> Any:
        return _auto_or_positive(value, float, minimum=1.0, inclusive=True)

    @field_validator("distill", mode="before")
    @classmethod
    def _distill(cls, value: Any) -> Any:
        return _auto_or_positive(value, float, minimum=0.0, inclusive=True)

    distill: Annotated[float, Field(ge=0.0)] | Auto = Field(
        AUTO, description="strength of the pull toward the parent's predictions on its own labels, on every training "
        "batch (learning without forgetting: the KL from the parent's softened predictions, T = 2); auto: 1 when the update brings labels the parent does not know, else "
        "0; 0: off")
    penalty: float = Field(1.0, ge=0.0, description="ewc / l2: strength of the pull toward the parent's weights")
    align: Literal["auto", "off", "norms", "norms+bias"] = Field(
        "auto", description="an update that brings new labels (classification): after training, scale the new "
        "labels' output rows to the old ones' mean norm (norms; weight aligning), and also move their biases to the "
        "old ones' mean (norms+bias), so the model does not favour the newest labels; auto: whichever of off, norms "
        "and norms+bias scores best on the lineage's validation data and the update's")
    gate: float | None = Field(
        0.01, ge=0.0, description="promotion gate: the update becomes the lineage's latest only when it is not "
        "worse than its parent by more than this (primary metric) on the old and the new validation data; "
        "null: always promote")


class Config(_Strict):
    """A whole autoft job."""

    task: TaskName = Field("classification", description="classification, multi-label-classification, "
                           "token-classification (NER), relation-extraction, question-answering, generation or "
                           "seq2seq")
    model: str = Field("default", description="'default' (the packaged MiniLM; generation: the packaged "
                       "SmolLM2-135M-Instruct), a local save_pretrained folder, a .gguf file or a hub id")
    data: DataConfig = Field(description="where the data lives")
    training: TrainingConfig = Field(TrainingConfig(), description="optimisation; every field optional")
    selection: SelectionConfig = Field(SelectionConfig(), description="the agent")
    continual: ContinualConfig = Field(ContinualConfig(), description="autoft update")
    generation: GenerationConfig = Field(GenerationConfig(), description="decoding of generative tasks")
    output_dir: str = Field("runs/autoft", description="the run directory to write (refused when it holds "
                            "another run, unless --overwrite)")

    @model_validator(mode="after")
    def _task_defaults(self) -> Config:
        """Generative defaults: ``model: default`` is the packaged SmolLM2-135M-Instruct, and LoRA adapters train
        unless ``training.peft`` says otherwise (full fine-tuning of a causal LM is slow on a CPU and forgets more).
        ``seq2seq`` has no packaged model: it needs one named."""
        if self.task == "generation" and self.model == "default":
            self.model = "default-generative"
        if self.task == "seq2seq" and self.model == "default":
            raise ValueError("model: task seq2seq needs an encoder-decoder model named (e.g. t5-small, "
                             "facebook/bart-base, Helsinki-NLP/opus-mt-en-de, or a local folder)")
        if self.task in GENERATIVE_TASKS and "peft" not in self.training.model_fields_set:
            self.training = self.training.model_copy(update={"peft": PeftConfig()})
        return self

    @model_validator(mode="after")
    def _known_columns(self) -> Config:
        roles = TASK_COLUMNS.get(self.task, ())
        unknown = [role for role in self.data.columns if role not in roles]
        if unknown:
            known = f"known for {self.task}: {', '.join(roles)}" if roles else f"{self.task} reads text_column and label_column"
            raise ValueError(f"data.columns: unknown role {unknown[0]!r} ({known})")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _format_validation_error(error: ValidationError, source: str) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return f"{source}: " + "; ".join(parts)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. training.epochs=2")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[leaf] = load_yaml(value) if value else ""
    return raw


def parse_config(raw: dict[str, Any], *, source: str = "config") -> Config:
    """Validate a raw dict; errors name ``source`` and the dotted field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of config sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config file, apply ``--set`` overrides and validate it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    try:
        raw = load_yaml(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections")
    return parse_config(apply_overrides(raw, overrides or []), source=str(path))


def as_config(config: Config | dict[str, Any] | str | Path, overrides: list[str] | None = None) -> Config:
    """Accept a Config, a raw dict or a YAML path (the Python API's single entry point)."""
    if isinstance(config, Config):
        if not overrides:
            return config
        return parse_config(apply_overrides(config.model_dump(mode="json"), overrides))
    if isinstance(config, dict):
        return parse_config(apply_overrides(copy.deepcopy(config), overrides or []))
    return load_config(config, overrides)
