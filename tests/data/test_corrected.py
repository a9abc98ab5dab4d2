"""corrected.<ext>: the training file with the agent's drops removed and relabels applied, format kept."""

import csv
import json

import pytest

from autoft.data.corrected import corrected_name, line_of, write_corrected
from autoft.data.loading import load_examples


def test_csv_keeps_other_columns_and_quoting(tmp_path):
    source = tmp_path / "train.csv"
    source.write_text('id,text,label\n1,"good, really",pos\n2,bad,pos\n3,"multi\nline",neg\n4,fine,neg\n')
    lines = {e.text: line_of(e.origin)[1] for e in load_examples(source, task="classification")}
    written = write_corrected(source, tmp_path / "corrected.csv", fmt="auto", label_column="label",
                              drop={lines["fine"]}, relabel={lines["bad"]: "neg"})
    with (tmp_path / "corrected.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert written == 3 and rows == [{"id": "1", "text": "good, really", "label": "pos"},
                                     {"id": "2", "text": "bad", "label": "neg"},
                                     {"id": "3", "text": "multi\nline", "label": "neg"}]
    assert [e.label for e in load_examples(tmp_path / "corrected.csv", task="classification")] == ["pos", "neg", "neg"]


def test_jsonl_and_broken_rows(tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_text('{"text": "a", "label": "x", "score": 1}\nnot json\n\n{"text": "b", "label": "y"}\n')
    write_corrected(source, tmp_path / "out.jsonl", fmt="jsonl", label_column="label", drop=set(), relabel={4: "x"})
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows == [{"text": "a", "label": "x", "score": 1}, {"text": "b", "label": "x"}]  # the broken line is gone


def test_conll_drops_whole_sentences(tmp_path):
    source = tmp_path / "train.conll"
    source.write_text("-DOCSTART-\tO\n\nObama\tB-PER\nspoke\tO\n\nParis\tB-LOC\n\nApple\tB-ORG\n")
    starts = [line_of(e.origin)[1] for e in load_examples(source, task="token-classification")]
    write_corrected(source, tmp_path / "out.conll", fmt="conll", label_column="label", drop={starts[1]}, relabel={})
    kept = load_examples(tmp_path / "out.conll", task="token-classification")
    assert [e.text for e in kept] == [["Obama", "spoke"], ["Apple"]]
    with pytest.raises(Exception, match="relabelling CoNLL"):
        write_corrected(source, tmp_path / "x.conll", fmt="conll", label_column="label", drop=set(), relabel={3: "x"})


def test_parquet_rows(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    source = tmp_path / "train.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": ["x", "y", "x"], "n": [1, 2, 3]}), source)
    write_corrected(source, tmp_path / "out.parquet", fmt="parquet", label_column="label", drop={2}, relabel={4: "y"})
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [{"text": "b", "label": "y", "n": 2},
                                                                   {"text": "c", "label": "y", "n": 3}]


def test_corrected_names():
    from pathlib import Path

    assert corrected_name(Path("d/train.tsv"), "tsv", several=False) == "corrected.tsv"
    assert corrected_name(Path("d/news.csv"), "csv", several=True) == "corrected_news.csv"
