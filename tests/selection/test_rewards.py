import numpy as np
import pytest
from sklearn.metrics import f1_score

from autoft.errors import ConfigError
from autoft.selection.rewards import (
    accuracy,
    load_reward,
    log_likelihood,
    loss_delta,
    macro_f1,
    metric_delta,
    rescale_reward,
    scorer,
)


def constant_reward(predictions, labels):
    """A user reward for ``load_reward``: the share of predictions equal to 1."""
    return float(np.mean(np.asarray(predictions) == 1))


def test_accuracy_by_hand():
    assert accuracy([0, 1, 1], [0, 1, 0]) == pytest.approx(2 / 3)
    assert accuracy([], []) == 0.0


def test_macro_f1_by_hand():
    y_true, y_pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    # class 0: TP 1, FP 1, FN 1 -> 0.5; class 1: TP 2, FP 1 -> 0.8; class 2: TP 0, FN 1 -> 0.
    assert macro_f1(y_true, y_pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert macro_f1([0, 1], [0, 1], labels=[0, 1, 2]) == pytest.approx(2 / 3)


def test_log_likelihood_by_hand():
    probs = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert log_likelihood(probs, [0, 1]) == pytest.approx((np.log(0.5) + np.log(0.75)) / 2)


def test_deltas():
    assert metric_delta(0.5, 0.75) == pytest.approx(0.25)
    assert metric_delta({"accuracy": 0.8, "loss": 1.0}, {"accuracy": 0.7}) == pytest.approx(-0.1)
    assert metric_delta({"macro_f1": 0.2}, {"macro_f1": 0.5}, metric="macro_f1") == pytest.approx(0.3)
    assert loss_delta({"loss": 1.0}, {"loss": 0.6}) == pytest.approx(0.4)  # lower loss: positive reward
    assert loss_delta(0.5, 0.9) == pytest.approx(-0.4)
    with pytest.raises(KeyError, match="accuracy"):
        metric_delta({"loss": 1.0}, {"loss": 0.5})


def test_rescale_reward_by_quantiles():
    history = np.arange(11.0)  # 20th / 80th percentiles: 2 and 8
    assert rescale_reward(5.0, history) == pytest.approx(0.0)
    assert rescale_reward(3.5, history) == pytest.approx(-0.5)
    assert rescale_reward(1.0, history) == -1.0 and rescale_reward(9.0, history) == 1.0
    assert rescale_reward(-0.3, []) == -1.0 and rescale_reward(0.2, [1.0, 1.0]) == -1.0


def test_load_reward_and_user_scorer():
    spec = "tests.selection.test_rewards:constant_reward"
    assert load_reward(spec) is constant_reward
    score = scorer(spec)
    assert score(np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([1, 1])) == pytest.approx(0.5)
    assert scorer("accuracy")(np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([1, 1])) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("math:no_such_function", "has no attribute 'no_such_function'"),
        ("math:pi", "is not callable"),
        ("math", "expected 'module:function'"),
        (":f", "expected 'module:function'"),
    ],
)
def test_load_reward_errors_name_the_spec(spec, fragment):
    with pytest.raises(ConfigError) as error:
        load_reward(spec)
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert repr(spec) in message and fragment in message and "\n" not in message


def test_unknown_scorer_name():
    with pytest.raises(ConfigError, match="log_likelihood"):
        scorer("f2")
