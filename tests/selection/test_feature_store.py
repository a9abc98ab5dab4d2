"""The on-disk feature store: keyed by the encoder's weights and each text, memory-mapped, safe to crash in."""

from __future__ import annotations

import multiprocessing

import numpy as np
import torch

from autoft.data.example import Example
from autoft.selection import embeddings
from autoft.selection.feature_store import FeatureStore, text_digests


def test_rows_round_trip_and_a_text_is_stored_once(tmp_path):
    store = FeatureStore(tmp_path / "store")
    texts = ["a", "b", "a", "c"]
    vectors = np.arange(8, dtype=np.float32).reshape(4, 2)
    rows = store.append(text_digests(texts), vectors)
    assert rows[0] == rows[2] and store.count == 3  # "a" twice in one call: one row
    assert np.array_equal(store.gather(rows[[1, 3]]), vectors[[1, 3]])
    again = FeatureStore(tmp_path / "store")  # read back from disk
    assert np.array_equal(again.lookup(text_digests(["c", "z"])), [rows[3], -1])
    assert np.array_equal(again.vectors()[rows[3]], vectors[3])


def test_rows_written_without_an_index_entry_are_overwritten(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.append(text_digests(["a"]), np.ones((1, 2), np.float32))
    with (tmp_path / "store" / "vectors.f32").open("ab") as stream:  # a crash after the rows, before the index
        stream.write(np.full(2, 7, np.float32).tobytes())
    store = FeatureStore(tmp_path / "store")
    rows = store.append(text_digests(["b"]), np.full((1, 2), 2, np.float32))
    assert store.count == 2 and np.array_equal(store.gather(rows), [[2, 2]])
    assert (tmp_path / "store" / "vectors.f32").stat().st_size == 2 * 2 * 4


def _append(folder, start):
    store = FeatureStore(folder)
    texts = [f"text {i}" for i in range(start, start + 300)]
    for first in range(0, 300, 50):
        part = texts[first : first + 50]
        store.append(text_digests(part), np.array([[float(t.split()[1])] * 3 for t in part], np.float32))


def test_two_processes_appending_at_once_keep_every_row_right(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append, args=(tmp_path / "store", start)) for start in (0, 150)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store = FeatureStore(tmp_path / "store")
    texts = [f"text {i}" for i in range(450)]
    rows = store.lookup(text_digests(texts))
    assert (rows >= 0).all() and store.count == 450
    assert np.array_equal(store.gather(rows)[:, 0], np.arange(450, dtype=np.float32))


def test_only_new_texts_are_encoded_and_new_weights_never_read_old_features(tmp_path, tiny_model_dir, monkeypatch):
    encoded: list[int] = []
    real = embeddings.Encoder.pooled

    def counting(self, texts, **kwargs):
        encoded.append(len(texts))
        return real(self, texts, **kwargs)

    monkeypatch.setattr(embeddings.Encoder, "pooled", counting)
    first = [Example(f"sentence number {i}", "x") for i in range(40)]
    a = embeddings.embed_examples(str(tiny_model_dir), first, max_length=16, progress=False)
    assert encoded == [40]
    overlapping = first[20:] + [Example(f"new sentence {i}", "x") for i in range(10)]
    b = embeddings.embed_examples(str(tiny_model_dir), overlapping, max_length=16, progress=False)
    assert encoded == [40, 10] and np.array_equal(b[:20], a[20:])  # only the 10 new texts went through the encoder
    assert np.array_equal(embeddings.embed_examples(str(tiny_model_dir), first, max_length=16, progress=False), a)
    assert encoded == [40, 10]
    # The same folder with other weights (fine-tuned in place, say) is another encoder: nothing is read back.
    from transformers import BertModel

    model = BertModel.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(2.0)
    model.save_pretrained(tiny_model_dir.parent / "changed")
    import shutil

    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, tiny_model_dir.parent / "changed" / name)
    changed = embeddings.embed_examples(str(tiny_model_dir.parent / "changed"), first, max_length=16, progress=False)
    assert encoded == [40, 10, 40] and not np.allclose(changed, a)


def test_stored_rows_streams_an_iterator(tmp_path, tiny_model_dir):
    texts = (f"line {i}" for i in range(20000))  # a generator: read as it is encoded, in chunks
    store, rows = embeddings.stored_rows(str(tiny_model_dir), texts, max_length=8, progress=False)
    assert len(rows) == 20000 and len(np.unique(rows)) == 20000
    direct = embeddings.Encoder(str(tiny_model_dir), max_length=8).pooled(["line 7", "line 19999"])
    assert np.allclose(store.gather(rows[[7, 19999]]), direct, atol=1e-6)
