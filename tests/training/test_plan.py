import torch

from autoft.tasks.classification import ClassificationAdapter
from autoft.tasks.ner import TokenClassificationAdapter
from autoft.training.plan import MAX_EPOCHS, MIN_EPOCHS, auto_batch_size, auto_patience, plan_epochs


def test_epoch_budget_counts_steps_so_small_data_gets_more_passes():
    assert plan_epochs(3200, 32, 500) == 5  # 100 steps an epoch
    assert plan_epochs(1600, 32, 500) == 10
    assert plan_epochs(320, 32, 500) == MAX_EPOCHS  # 10 steps an epoch would want 50
    assert plan_epochs(1_000_000, 32, 500) == MIN_EPOCHS
    assert plan_epochs(3200, 32, 500, num_processes=2) == 10  # each process takes half the batches
    assert [auto_patience(e) for e in (3, 12, 13, 20)] == [2, 2, 3, 3]


def test_tasks_that_need_longer_ask_for_more_steps(tiny_model_dir):
    from autoft.modeling.load import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    four = ClassificationAdapter(list("abcd"), tokenizer, max_length=32).auto_steps()
    many = ClassificationAdapter([f"intent{i}" for i in range(77)], tokenizer, max_length=32).auto_steps()
    ner = TokenClassificationAdapter(["O", "B-PER", "I-PER"], tokenizer, max_length=32).auto_steps()
    assert four < ner and four < many


def test_batch_size_on_cpu_is_the_cpu_default():
    size, how = auto_batch_size(torch.nn.Linear(2, 2), None, [{"input_ids": [1, 2]}], max_length=8,
                                device=torch.device("cpu"))
    assert size == 32 and "cpu" in how
