import torch

from autoft.tasks.classification import ClassificationAdapter
from autoft.tasks.ner import TokenClassificationAdapter
from autoft.training.plan import MAX_EPOCHS, auto_batch_size, auto_patience, plan_epochs


def test_epoch_budget_grows_slower_than_the_data_so_small_data_gets_more_passes():
    planned = {n: plan_epochs(n) for n in (100, 500, 3_000, 10_000, 100_000, 1_000_000)}
    assert planned == {100: 11, 500: 8, 3_000: 5, 10_000: 4, 100_000: 2, 1_000_000: 1}
    samples = [n * e for n, e in planned.items()]
    assert samples == sorted(samples)  # more data: more samples trained on in all, in fewer passes
    assert plan_epochs(500, 2.0) == 15 and plan_epochs(10, 10.0) == MAX_EPOCHS
    assert [auto_patience(e) for e in (3, 12, 13, 20)] == [2, 2, 3, 3]


def test_tasks_that_need_longer_train_longer(tiny_model_dir):
    from autoft.modeling.load import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    four = ClassificationAdapter(list("abcd"), tokenizer, max_length=32).training_scale()
    two = ClassificationAdapter(list("ab"), tokenizer, max_length=32).training_scale()
    many = ClassificationAdapter([f"intent{i}" for i in range(77)], tokenizer, max_length=32).training_scale()
    ner = TokenClassificationAdapter(["O", "B-PER", "I-PER"], tokenizer, max_length=32).training_scale()
    assert two == four == 1.0 < ner < many and 1.7 < many < 1.75


def test_batch_size_on_cpu_is_the_tasks_cpu_default():
    from autoft.tasks.classification import ClassificationAdapter
    from autoft.tasks.generation import CausalGenerationAdapter

    for adapter, expected in ((ClassificationAdapter, 32), (CausalGenerationAdapter, 8)):
        size, how = auto_batch_size(torch.nn.Linear(2, 2), adapter, [{"input_ids": [1, 2]}], device=torch.device("cpu"))
        assert size == expected and "cpu" in how and adapter.name in how


def test_batch_size_on_a_gpu_is_the_largest_that_fits(monkeypatch):
    from autoft.training import plan

    tried = []

    def fits(model, adapter, feature, batch_size, device):
        tried.append(batch_size)
        return batch_size <= 64  # a card with room for 64 of the longest sample

    monkeypatch.setattr(plan, "_fits", fits)
    features = [{"input_ids": [1] * n} for n in range(1, 3001)]
    assert auto_batch_size(None, None, features, device=torch.device("cuda"))[0] == 64 and tried == [128, 64]
    tried.clear()  # 600 samples: at most 37 a batch, so an epoch still has 16 steps
    assert auto_batch_size(None, None, features[:600], device=torch.device("cuda"))[0] == 32 and tried == [32]


def test_the_probe_runs_a_real_forward_and_backward_pass(tiny_model_dir):
    from autoft.data.loading import Example
    from autoft.modeling.load import load_model, load_tokenizer
    from autoft.training.plan import _fits

    adapter = TokenClassificationAdapter(["O", "B-PER"], load_tokenizer(str(tiny_model_dir)), max_length=32)
    model = load_model(str(tiny_model_dir), adapter.auto_model_class(), adapter.labels)
    (feature,) = adapter.encode([Example(["Alice", "sings"], ["B-PER", "O"])])
    assert _fits(model, adapter, feature, 4, torch.device("cpu"))
    assert all(p.grad is None for p in model.parameters())
