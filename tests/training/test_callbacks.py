"""What callbacks add to a run directory, declared through the callback protocol and gathered by CallbackList."""

import numpy as np

from autoft.training.callbacks import CallbackList, TrainerCallback


class Contributor(TrainerCallback):
    def __init__(self, name, *, selection=None, repairs=None):
        self.name, self.selection, self._repairs = name, selection, repairs

    def resolved_selection(self):
        return self.selection

    def run_metrics(self):
        return {self.name: 1}

    def run_warnings(self):
        return [f"{self.name} warns"]

    def decision_records(self):
        return [{"by": self.name}]

    def repairs(self):
        return self._repairs

    def write_artifacts(self, folder, examples, label_names):
        (folder / f"{self.name}.txt").write_text(",".join(label_names))


def test_a_plain_callback_adds_nothing(tmp_path):
    plain = TrainerCallback()
    plain.write_artifacts(tmp_path, [], ["a"])
    assert (
        plain.resolved_selection(),
        plain.run_metrics(),
        plain.run_warnings(),
        plain.decision_records(),
        plain.repairs(),
    ) == (None, {}, [], [], None)
    assert not any(tmp_path.iterdir())


def test_a_callback_list_gathers_what_each_adds_in_order(tmp_path):
    repairs = (np.array([3]), {5: 1})
    callbacks = CallbackList(
        [
            TrainerCallback(),
            Contributor("first", repairs=repairs),
            Contributor("second", selection="resolved", repairs=(np.array([9]), {})),
        ]
    )
    assert callbacks.resolved_selection() == "resolved"  # the first that has one
    assert callbacks.run_metrics() == {"first": 1, "second": 1}
    assert callbacks.run_warnings() == ["first warns", "second warns"]
    assert callbacks.decision_records() == [{"by": "first"}, {"by": "second"}]
    assert callbacks.repairs() is repairs
    callbacks.write_artifacts(tmp_path, [], ["a", "b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.txt", "second.txt"]


def test_a_run_writes_what_its_callbacks_add(tmp_path, tiny_model_dir):
    import json

    import autoft
    from tests.conftest import synthetic_rows, tiny_config, write_csv

    files = {
        split: write_csv(tmp_path / f"{split}.csv", synthetic_rows(n, seed))
        for split, n, seed in (("train", 24, 0), ("validation", 12, 1))
    }
    autoft.train(tiny_config(tiny_model_dir, files, tmp_path / "run", epochs=1), callbacks=[Contributor("guard")])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["guard"] == 1 and "guard warns" in metrics["warnings"]
    assert (tmp_path / "run" / "guard.txt").is_file()
