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
    assert two == four == 1.0 < ner and 1.9 < many < 2.2


def test_batch_size_on_cpu_is_the_cpu_default():
    size, how = auto_batch_size(torch.nn.Linear(2, 2), None, [{"input_ids": [1, 2]}], max_length=8,
                                device=torch.device("cpu"))
    assert size == 32 and "cpu" in how
