import numpy as np
import pytest
import torch

from autoft.selection.state import (
    TrainingDynamics,
    disagreement,
    margins_from_logits,
    probe_probabilities,
    quantile_buckets,
    state_features,
)


def blobs(n, n_classes, seed=0, dims=6):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    return np.eye(n_classes, dims)[y] * 3 + rng.normal(size=(n, dims)), y


def test_probes_shapes_rows_and_out_of_fold(noisy):
    oof, val = probe_probabilities(noisy.x, noisy.y, noisy.val_x, noisy.val_y, n_classes=noisy.n_classes)
    for probs in (oof, val):
        assert probs.shape == (len(noisy.y), noisy.n_classes)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # Out of fold, a flipped label is rarely the probe's favourite; the clean-validation probe agrees.
    for probs in (oof, val):
        assert np.mean(probs[noisy.bad].argmax(1) == noisy.y[noisy.bad]) < 0.2


def test_probes_handle_classes_missing_from_validation_and_folds():
    x, y = blobs(40, 3)
    y[:2] = 3  # class 3: two training members, fewer than the folds; absent from validation
    val_x, val_y = blobs(12, 2, seed=1)  # validation holds classes 0 and 1 only
    oof, val = probe_probabilities(x, y, val_x, val_y, n_classes=5, folds=5)
    assert oof.shape == val.shape == (40, 5)
    np.testing.assert_allclose(oof.sum(1), 1.0)
    np.testing.assert_allclose(val.sum(1), 1.0)
    assert np.all(val[:, 2:] == 0) and np.all(oof[:, 4] == 0)


def test_probe_of_a_single_class_validation_set_is_one_hot():
    x, y = blobs(20, 2)
    _, val = probe_probabilities(x, y, x[:3], np.array([1, 1, 1]), n_classes=2, folds=2)
    np.testing.assert_array_equal(val, np.tile([0.0, 1.0], (20, 1)))


def test_disagreement_and_margins_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_allclose(disagreement(np.array([0, 0]), probs), [0.3, 0.9])
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    np.testing.assert_allclose(margins_from_logits(logits, np.array([0, 0])), [1.0, -3.0])


def test_state_features_columns():
    rng = np.random.default_rng(0)
    emb, y = rng.normal(size=(50, 100)), np.arange(50) % 3
    probs = np.full((50, 3), 1 / 3)
    sources = np.arange(50) % 2
    dyn = np.zeros((50, 3))
    f = state_features(
        embeddings=emb,
        labels=y,
        n_classes=3,
        oof_probs=probs,
        val_probs=probs,
        sources=sources,
        n_sources=2,
        dynamics=dyn,
        embedding_dims=16,
    )
    assert f.dtype == np.float32 and f.shape == (50, 16 + 3 + 10 + 2 + 3)
    np.testing.assert_array_equal(f[:, 16:19], np.eye(3)[y])
    np.testing.assert_allclose(f[:, 19], 1 / 3, rtol=1e-6)  # prob of the given label, out-of-fold probe
    same = state_features(embeddings=emb, labels=y, n_classes=3, oof_probs=probs, val_probs=probs, embedding_dims=16)
    np.testing.assert_array_equal(same, f[:, :29])  # PCA is seeded: identical reduction
    small = state_features(embeddings=emb[:, :8], labels=y, n_classes=3, oof_probs=probs, val_probs=probs)
    np.testing.assert_allclose(small[:, :8], emb[:, :8], rtol=1e-6)  # narrow embeddings pass through


def test_training_dynamics_aum_on_a_hand_made_sequence():
    dyn = TrainingDynamics(3)
    # Sample 0: margins 1 then -3 -> AUM -1; sample 2: margin 2 once; sample 1: never seen.
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    dyn.update_from_logits(np.array([0, 2]), np.array([0.5, 0.1]), logits, np.array([0, 2]))
    dyn.update_from_logits(torch.tensor([0]), torch.tensor([1.5]), torch.tensor([[0.0, 3.0, 1.0]]), torch.tensor([0]))
    np.testing.assert_array_equal(dyn.count, [2, 0, 1])
    np.testing.assert_allclose(dyn.aum, [-1.0, np.nan, 2.0])
    np.testing.assert_allclose(dyn.mean_loss, [1.0, np.nan, 0.1])
    features = dyn.features()
    assert features.shape == (3, 3) and not np.isnan(features).any()
    np.testing.assert_allclose(features[1], [0.55, 0.5, 0.0])  # unseen: mean of the seen samples, count 0
    assert not np.isnan(TrainingDynamics(2).features()).any()


def test_quantile_buckets():
    np.testing.assert_array_equal(quantile_buckets(np.arange(10.0), 5), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    assert set(quantile_buckets(np.zeros(6), 3)) == {0}  # ties share a bucket
    with pytest.raises(ValueError):
        quantile_buckets(np.arange(3.0), 0)


def test_sequence_margins_take_the_worst_labelled_token():
    from autoft.selection.state import sequence_margins

    logits = np.array(
        [
            [[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]],  # margins: 2, -1, (ignored)
            [[0.0, 3.0], [0.0, 0.0], [0.0, 0.0]],
        ]
    )  # margins: 3, (ignored), (ignored)
    labels = np.array([[0, 0, -100], [1, -100, -100]])
    np.testing.assert_allclose(sequence_margins(logits, labels), [-1.0, 3.0])
    np.testing.assert_allclose(sequence_margins(logits[:1], np.full((1, 3), -100)), [0.0])


def test_units_map_values_between_entities_and_sentences():
    from autoft.selection.agent import Units

    # 4 sentences; units (entities) belong to sentences 0, 0, 2; sentence 1 (source 0) and 3 (source 1) have none.
    units = Units(
        x=np.zeros((3, 2)),
        labels=np.zeros(3, dtype=int),
        val_x=np.zeros((1, 2)),
        val_labels=np.zeros(1, dtype=int),
        class_names=["A", "B"],
        owner=np.array([0, 0, 2]),
        sources=np.array([0, 0, 1, 1]),
    )
    np.testing.assert_allclose(units.sample_values(np.array([0.5, 0.2, 0.9])), [0.2, 0.5, 0.9, 0.9])
    np.testing.assert_allclose(units.sample_any(np.array([0.0, 1.0, 0.0])), [1.0, 0.0, 0.0, 0.0])
    assert units.unit_mask(np.array([True, False, False, True])).tolist() == [True, True, False]


def test_neighbour_agreement_and_suspicion():
    from autoft.selection.state import neighbour_agreement, suspicion

    x = np.array([[1.0, 0.0], [0.99, 0.1], [0.98, 0.2], [0.0, 1.0], [0.1, 0.99], [0.2, 0.98]])
    y = np.array([0, 0, 1, 1, 1, 1])  # sample 2 sits among class 0 but says 1
    agreement = neighbour_agreement(x, y, k=2)
    np.testing.assert_allclose(agreement, [0.5, 0.5, 0.0, 1.0, 1.0, 1.0])
    probs = np.tile([0.5, 0.5], (6, 1))
    flat = np.full(6, 0.3)
    assert np.argmax(suspicion(y, probs, agreement, flat)) == 2
    # Each of the three signals counts: the noise posterior alone picks sample 4 when the others tie...
    posterior = np.array([0.1, 0.1, 0.1, 0.1, 0.9, 0.1])
    assert np.argmax(suspicion(y, probs, np.ones(6), posterior)) == 4
    # ...and the validation probe alone picks sample 3.
    val = probs.copy()
    val[3] = [0.95, 0.05]
    assert np.argmax(suspicion(y, val, np.ones(6), flat)) == 3
