import pytest

from autoft.config import apply_overrides, as_config, load_config
from autoft.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_gets_defaults(tmp_path):
    config = load_config(write(tmp_path, "data: {train: t.csv}\n"))
    assert config.task == "classification"
    assert config.model == "default"
    training = config.training
    assert (
        training.epochs == training.learning_rate == training.batch_size == training.early_stopping_patience == "auto"
    )
    assert training.early_stopping_on == "metric-or-loss" and config.data.on_bad_rows == "error"
    assert config.data.train_files == ["t.csv"]


def test_unknown_key_names_the_field(tmp_path):
    path = write(tmp_path, "data: {train: t.csv}\ntraining: {epochz: 3}\n")
    with pytest.raises(ConfigError, match=r"config.yaml: training.epochz: unknown field"):
        load_config(path)


def test_bad_value_names_the_field(tmp_path):
    path = write(tmp_path, "data: {train: t.csv}\ntraining: {epochs: 0}\n")
    with pytest.raises(ConfigError, match=r"training.epochs: expected 'auto' or an integer > 0, got 0"):
        load_config(path)


def test_bad_task(tmp_path):
    with pytest.raises(ConfigError, match=r"task: "):
        load_config(write(tmp_path, "task: regression\ndata: {train: t.csv}\n"))


def test_missing_required_section(tmp_path):
    with pytest.raises(ConfigError, match=r"data: Field required"):
        load_config(write(tmp_path, "task: classification\n"))


def test_invalid_yaml_names_line(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml:2: invalid YAML"):
        load_config(write(tmp_path, "data: {train: t.csv}\nmodel: a: b\n"))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_parse_yaml_values(tmp_path):
    config = load_config(
        write(tmp_path, "data: {train: t.csv}\n"),
        ["training.epochs=7", "training.learning_rate=1e-3", "data.train=[a.csv, b.csv]"],
    )
    assert config.training.epochs == 7
    assert config.training.learning_rate == pytest.approx(1e-3)
    assert config.data.train_files == ["a.csv", "b.csv"]


def test_off_is_a_word_in_files_and_overrides(tmp_path):
    """YAML 1.1 reads ``off`` as False; options named off (correction, rescore) must arrive as the word."""
    path = write(
        tmp_path, "data: {train: t.csv}\nselection: {correction: off, rescore: off}\ntraining: {progress: false}\n"
    )
    config = load_config(path)
    assert (config.selection.correction, config.selection.rescore) == ("off", "off")
    assert config.training.progress is False
    overridden = load_config(
        write(tmp_path, "data: {train: t.csv}\n"), ["selection.correction=off", "training.progress=false"]
    )
    assert overridden.selection.correction == "off" and overridden.training.progress is False


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["training.epochs"])


def test_as_config_does_not_mutate_caller_dict():
    raw = {"data": {"train": "t.csv"}, "training": {"epochs": 1}}
    config = as_config(raw, ["training.epochs=4"])
    assert config.training.epochs == 4
    assert raw["training"]["epochs"] == 1


def test_round_trip_yaml(tmp_path):
    config = as_config({"data": {"train": "t.csv"}, "training": {"epochs": 2}})
    path = write(tmp_path, config.to_yaml())
    assert load_config(path) == config
