"""The config's data, training, PEFT, generation and continual-learning sections."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from autoft.config.base import AUTO, Auto, DataFormat, _auto_or_positive, _Strict


class DataConfig(_Strict):
    """Where the data lives and which columns hold text and labels."""

    train: str | list[str] = Field(description="training file, or a list of files (one source each)")
    validation: str | None = Field(None, description="clean validation file; else a seeded split of train")
    test: str | None = Field(
        None,
        description="test file: scored once, after training, for the comparison and the "
        "report; never used to choose anything",
    )
    unlabeled: str | None = Field(
        None,
        description="texts without labels (classification): the agent may learn from their pseudo-labels "
        "(selection.self_training)",
    )
    text_column: str = Field("text", description="the text's column (NER in JSONL: a list of tokens)")
    label_column: str = Field(
        "label",
        description="the label's column (NER in JSONL: a list of tags; multi-label: "
        "a JSON list of labels, or text split at label_delimiter)",
    )
    label_delimiter: str = Field(
        "|",
        min_length=1,
        description="multi-label-classification: what separates a row's "
        "labels in a text cell (a JSON list needs none); an empty cell is a text no label fits",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="column names of a task's roles where they differ from the role's name: "
        "question-answering reads context, question and answers (or answer and answer_start)",
    )
    format: DataFormat = Field(
        "auto",
        description="auto (by suffix: .csv, .tsv, .jsonl, .parquet, .conll; a .txt file of "
        "relation-extraction is semeval, a .json file of question-answering is squad), or one of csv, tsv, jsonl, "
        "parquet, conll (token<TAB>tag), semeval (SemEval-2010 Task 8 blocks), squad (SQuAD v1.1 JSON)",
    )
    validation_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="without data.validation: the share of train split off (seeded, stratified) to validate on",
    )
    on_bad_rows: Literal["error", "skip"] = Field(
        "error",
        description="a broken row (empty text or label, wrong field count, bad JSON, a tag missing) stops "
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


class PeftConfig(_Strict):
    """Parameter-efficient fine-tuning with the ``peft`` library: the encoder stays frozen, small adapter weights
    train, and the task head stays fully trainable."""

    method: Literal["lora", "ia3"] = Field("lora", description="lora (low-rank updates) or ia3 (learned rescaling)")
    r: int = Field(8, gt=0, description="lora: rank of the update matrices")
    alpha: float = Field(16.0, gt=0.0, description="lora: scaling (the update is multiplied by alpha / r)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="lora: dropout on the adapter's input")
    target_modules: Auto | list[str] = Field(
        AUTO,
        description="module names to adapt; auto: every linear layer of the encoder, attention and MLP "
        "(lora), or peft's choice for the architecture (ia3)",
    )

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
        AUTO, description="auto: early stopping on validation within a step budget that scales with the data size"
    )
    learning_rate: Annotated[float, Field(gt=0.0)] | Auto = Field(
        AUTO,
        description="auto: a learning-rate range test on the training data picks it, held under a ceiling "
        "that falls with the planned steps (a long run forgets the pretraining at a rate a short one needs)",
    )
    head_learning_rate: Annotated[float, Field(gt=0.0)] | Auto = Field(
        AUTO,
        description="the rate of the task head (classifier, score, qa_outputs), which starts untrained; "
        "auto: the range test's rate when learning_rate is auto (unheld by the ceiling), else learning_rate",
    )
    batch_size: Annotated[int, Field(gt=0)] | Auto = Field(
        AUTO, description="auto: 32 on CPU (generative tasks 8); on a GPU the largest of 32..128 that fits in memory"
    )
    eval_batch_size: int = Field(64, gt=0, description="batch size of evaluation and prediction")
    max_length: Annotated[int, Field(ge=8)] | Auto = Field(
        AUTO,
        description="tokens per input (longer ones are cut); auto: the task's default, 128 (question "
        "answering: 384, longer contexts read in overlapping windows)",
    )
    seed: int = Field(0, description="seed of the head's initialisation, the batches, the splits and the agent")
    early_stopping_patience: Annotated[int, Field(ge=1)] | Auto | None = Field(
        AUTO, description="epochs without improvement; auto: 2, or 3 when more than 12 epochs are planned; null = off"
    )
    early_stopping_on: Literal["metric", "metric-or-loss"] = Field(
        "metric-or-loss",
        description="what counts as progress: the validation metric only (as transformers' "
        "EarlyStoppingCallback), or it or the validation loss (a model still learning before its predictions "
        "change, as on small data, is not stopped)",
    )
    on_plateau: Literal["continue", "rollback"] = Field(
        "continue",
        description="after an epoch whose validation metric fell: go on as it is, or go back to the best "
        "epoch's weights and go on at half the learning rate (helps where the rate is too high for the data, hurts "
        "where the model is still under-trained: measured in the README, so not the default)",
    )
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW's decoupled weight decay (not on biases and norms)")
    warmup_ratio: float = Field(
        0.1, ge=0.0, lt=1.0, description="linear warm-up over this share of the planned epochs, then linear decay to 0"
    )
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="clip the gradient's norm to this; null: no clipping")
    group_by_length: bool = Field(True, description="batch samples of similar length together")
    padding: Literal["dynamic", "max_length"] = Field(
        "dynamic", description="pad to the batch's longest or to max_length"
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "no", description="fp16 or bf16 autocast on a GPU (accelerate); no: full precision"
    )
    gradient_checkpointing: bool | Auto = Field(
        AUTO,
        description="recompute activations in the backward pass instead of keeping them: far less memory for "
        "about a third more compute; auto: on for generative tasks (long sequences through deep decoders)",
    )
    progress: bool = Field(True, description="show tqdm progress bars")
    checkpoint_every: Annotated[int, Field(gt=0)] | Auto = Field(
        AUTO,
        description="optimisation steps between checkpoints within an epoch (one is always written at each "
        "epoch's end); auto: every 10 minutes of training",
    )
    logging: Literal["none", "tensorboard", "mlflow"] = Field(
        "none",
        description="besides metrics.jsonl (always): tensorboard writes the same scalars as TensorBoard "
        "event files into the run directory's tensorboard/ (needs pip install tensorboard); mlflow logs the "
        "resolved config as params, the same scalars and the final scores as metrics, and the run directory as "
        "artifacts (needs pip install mlflow-skinny)",
    )
    mlflow_uri: str | None = Field(
        None, description="logging: mlflow — the tracking URI; default $MLFLOW_TRACKING_URI, else a local ./mlruns"
    )
    mlflow_experiment: str = Field("autoft", description="logging: mlflow — the experiment's name")
    peft: PeftConfig | None = Field(
        None,
        description="null: full fine-tuning; lora or ia3 (or a mapping with method, r, alpha, dropout, "
        "target_modules): train adapters and the task head only",
    )

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


class ContinualConfig(_Strict):
    """How ``autoft update`` continues a finished run on new data without forgetting the old."""

    method: Literal["replay", "ewc", "l2", "lora-per-task"] = Field(
        "replay",
        description="replay: mix old samples into the new data; ewc / l2: also pull the weights toward the "
        "parent's (Fisher-weighted / plain), with penalty as the strength; lora-per-task (a training.peft lora "
        "run): the parent's adapters are folded into the frozen base and the update trains a new adapter",
    )
    replay_budget: Annotated[float, Field(ge=0.0, le=1.0)] | Auto = Field(
        AUTO,
        description="old training samples replayed, as a share of all the data the lineage trained on (0: none); "
        "auto: as many as the update brings new samples (labelled rows and unlabelled texts), at least a tenth of "
        "the old data and at most all of it — an even mix of old and new, an update costing about twice its new data",
    )
    replay_by: Literal["value", "random", "herding"] = Field(
        "herding",
        description="herding: the old samples that best represent their class (or, without classes, all the old "
        "data) in the parent model's own representation; value: those the parent model holds most firmly (its "
        "margin for the given label); random: a seeded sample; never one an agent of the lineage flagged "
        "(generation: random, having neither)",
    )
    replay_weight: Annotated[float, Field(ge=1.0)] | Auto | Literal["full"] = Field(
        AUTO,
        description="loss weight of each replayed sample; auto: the square root of the old samples it stands "
        "for (all the lineage's old training data over the samples replayed): the old data weighs less than in "
        "joint training, so each update still learns its new data; full: all the old samples it stands for (the "
        "old data weighs what it would in joint training)",
    )

    @field_validator("replay_budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> Any:
        return _auto_or_positive(value, float, minimum=0.0, inclusive=True)

    @field_validator("replay_weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "full":
            return "full"
        try:
            return _auto_or_positive(value, float, minimum=1.0, inclusive=True)
        except ValueError as error:
            raise ValueError(f"{error} (or 'full')") from None

    @field_validator("distill", mode="before")
    @classmethod
    def _distill(cls, value: Any) -> Any:
        return _auto_or_positive(value, float, minimum=0.0, inclusive=True)

    distill: Annotated[float, Field(ge=0.0)] | Auto = Field(
        AUTO,
        description="strength of the pull toward the parent's predictions on its own labels, on every training "
        "batch (learning without forgetting: the KL from the parent's softened predictions, T = 2); auto: where the "
        "update brings labels the parent does not know, 1 while they have at most 8 training rows each, (8 / their "
        "rows per label)² with more, down to 0.25 (at 16 and beyond); else 0; 0: off",
    )
    distill_on: Literal["all", "replayed"] = Field(
        "all",
        description="the training rows distillation pulls toward the parent's predictions: all (the new rows "
        "too: learning without forgetting) or the replayed old samples alone (the new rows' outputs left free; "
        "with nothing replayed, no distillation and a warning)",
    )
    penalty: float = Field(1.0, ge=0.0, description="ewc / l2: strength of the pull toward the parent's weights")
    align: Literal["auto", "off", "norms", "norms+bias"] = Field(
        "auto",
        description="an update that brings new labels (classification): after training, scale the new "
        "labels' output rows to the old ones' mean norm (norms; weight aligning), and also move their biases to the "
        "old ones' mean (norms+bias), so the model does not favour the newest labels; auto: whichever of off, norms "
        "and norms+bias scores best on the lineage's validation data and the update's",
    )
    gate: float | None = Field(
        0.01,
        ge=0.0,
        description="promotion gate: the update becomes the lineage's latest only when it is not "
        "worse than its parent by more than this (primary metric) on the old and the new validation data; "
        "null: always promote",
    )
