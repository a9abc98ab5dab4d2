import json

import pytest

from autoft.config import DataConfig
from autoft.data.loading import load_examples, read_texts
from autoft.data.splits import load_splits, split_validation
from autoft.errors import DataError
from tests.conftest import write_conll


def test_csv_tsv_jsonl_parquet_read_the_same(tmp_path):
    rows = [("good day", "pos"), ("bad, sad day", "neg"), ('quoted "x"\nmultiline', "neg")]
    import csv

    with (tmp_path / "a.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    with (tmp_path / "a.tsv").open("w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows([("text", "label"), *rows])
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [r[0] for r in rows], "label": [r[1] for r in rows]}), tmp_path / "a.parquet")
    for suffix in ("csv", "tsv", "jsonl", "parquet"):
        examples = load_examples(tmp_path / f"a.{suffix}", task="classification")
        assert [(e.text, e.label) for e in examples] == rows, suffix


def test_integer_labels_become_strings(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x", "label": 3}\n{"text": "y", "label": 1.0}\n')
    assert [e.label for e in load_examples(tmp_path / "a.jsonl", task="classification")] == ["3", "1"]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: file not found"):
        load_examples(tmp_path / "nope.csv", task="classification")


def test_missing_column_names_file_line_and_columns(tmp_path):
    (tmp_path / "a.csv").write_text("sentence,label\nhello,x\n")
    with pytest.raises(DataError, match=r"a.csv:2: missing column 'text' \(columns: 'sentence', 'label'\)"):
        load_examples(tmp_path / "a.csv", task="classification")


def test_empty_text_names_line(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nhello,x\n   ,y\n")
    with pytest.raises(DataError, match=r"a.csv:3: empty text"):
        load_examples(tmp_path / "a.csv", task="classification")


def test_line_numbers_count_multiline_fields(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"two\nlines",x\n"",y\n')
    with pytest.raises(DataError, match=r"a.csv:4: empty text"):
        load_examples(tmp_path / "a.csv", task="classification")


def test_undecodable_bytes_name_line(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"text,label\nok,x\nbad \xff\xfe byte,y\n")
    with pytest.raises(DataError, match=r"a.csv:3: undecodable bytes"):
        load_examples(tmp_path / "a.csv", task="classification")


def test_wrong_field_count(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nok,x,extra\n")
    with pytest.raises(DataError, match=r"a.csv:2: expected 2 fields"):
        load_examples(tmp_path / "a.csv", task="classification")


def test_invalid_jsonl_line(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x", "label": "a"}\n{"text": \n')
    with pytest.raises(DataError, match=r"a.jsonl:2: invalid JSON"):
        load_examples(tmp_path / "a.jsonl", task="classification")


def test_unknown_suffix(tmp_path):
    (tmp_path / "a.xlsx").write_text("x")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_examples(tmp_path / "a.xlsx", task="classification")


def test_conll_sentences_and_origins(tmp_path):
    path = write_conll(tmp_path / "a.conll", copies=1)
    examples = load_examples(path, task="token-classification")
    assert len(examples) == 5
    assert examples[0].text == ["Alice", "lives", "in", "Paris"]
    assert examples[0].label == ["B-PER", "O", "O", "B-LOC"]
    assert examples[1].origin.endswith("a.conll:6")


def test_conll_wrong_column_count_names_line(tmp_path):
    (tmp_path / "a.conll").write_text("Alice\tB-PER\nlives\tO\textra\n\n")
    with pytest.raises(DataError, match=r"a.conll:2: expected 2 tab-separated columns"):
        load_examples(tmp_path / "a.conll", task="token-classification")


def test_conll_keeps_blank_tokens_aligned(tmp_path):
    (tmp_path / "a.conll").write_text("Hi\tO\n\tO\nBob\tB-PER\n\n")
    (example,) = load_examples(tmp_path / "a.conll", task="token-classification")
    assert example.text == ["Hi", "", "Bob"] and example.label == ["O", "O", "B-PER"]


def test_conll_for_classification_is_rejected(tmp_path):
    path = write_conll(tmp_path / "a.conll", copies=1)
    with pytest.raises(DataError, match="CoNLL files hold token classification"):
        load_examples(path, task="classification")


def test_jsonl_token_lists(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"tokens": ["Bob", "runs"], "tags": ["B-PER", "O"]}) + "\n")
    (example,) = load_examples(
        tmp_path / "a.jsonl", task="token-classification", text_column="tokens", label_column="tags"
    )
    assert example.text == ["Bob", "runs"] and example.label == ["B-PER", "O"]


def test_unseen_validation_label_names_line(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\na,x\nb,y\n")
    (tmp_path / "v.csv").write_text("text,label\na,x\nb,z\n")
    data = DataConfig(train=str(tmp_path / "t.csv"), validation=str(tmp_path / "v.csv"))
    with pytest.raises(DataError, match=r"v.csv:3: validation label 'z' never occurs in the training data"):
        load_splits(data, task="classification", seed=0)


def test_validation_split_is_seeded_and_stratified(tmp_path):
    rows = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(100))
    (tmp_path / "t.csv").write_text("text,label\n" + rows)
    data = DataConfig(train=str(tmp_path / "t.csv"), validation_fraction=0.2)
    first = load_splits(data, task="classification", seed=3)
    again = load_splits(data, task="classification", seed=3)
    other = load_splits(data, task="classification", seed=4)
    assert first.validation == again.validation and first.validation != other.validation
    assert len(first.validation) == 20 and len(first.train) == 80
    assert sum(e.label == "a" for e in first.validation) == 10
    assert first.labels == ["a", "b"]


def test_several_train_files_become_sources(tmp_path):
    (tmp_path / "news.csv").write_text("text,label\na,x\nb,y\n")
    (tmp_path / "tweets.csv").write_text("text,label\nc,x\nd,y\n")
    (tmp_path / "v.csv").write_text("text,label\ne,x\n")
    data = DataConfig(
        train=[str(tmp_path / "news.csv"), str(tmp_path / "tweets.csv")], validation=str(tmp_path / "v.csv")
    )
    splits = load_splits(data, task="classification", seed=0)
    assert [e.source for e in splits.train] == ["news", "news", "tweets", "tweets"]


def test_split_validation_needs_two_examples():
    from autoft.data.loading import Example

    with pytest.raises(DataError, match="too few examples"):
        split_validation([Example("a", "x", "f:2")], fraction=0.5, seed=0, stratify=True)


def test_read_texts_plain_file(tmp_path):
    (tmp_path / "in.txt").write_text("first\n\nsecond\n")
    assert [e.text for e in read_texts(tmp_path / "in.txt", task="classification")] == ["first", "second"]


def _rows_with_breaks(tmp_path, n_good):
    """A CSV of ``n_good`` good rows with an empty text at line 3 and a ragged row at line 5."""
    lines = ["text,label"] + [f"sentence {i},{'ab'[i % 2]}" for i in range(n_good)]
    lines.insert(2, '"  ",a')
    lines.insert(4, "one,two,three")
    path = tmp_path / "a.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_skip_leaves_out_broken_rows_and_names_each(tmp_path, caplog):
    from autoft.data.loading import BadRows

    path = _rows_with_breaks(tmp_path, 300)
    with pytest.raises(DataError, match=r"a.csv:3: empty text"):
        load_examples(path, task="classification")
    bad = BadRows("skip")
    with caplog.at_level("WARNING"):
        examples = load_examples(path, task="classification", bad_rows=bad)
    assert len(examples) == 300 and all(e.text.startswith("sentence") for e in examples)
    assert bad.skipped == [
        f"{path}:3: empty text in column 'text'",
        f"{path}:5: expected 2 fields as in the header, found 3",
    ]
    assert [r.getMessage() for r in caplog.records] == [f"skipped {line}" for line in bad.skipped]


def test_skip_refuses_more_than_one_percent(tmp_path):
    from autoft.data.loading import BadRows

    with pytest.raises(
        DataError, match=r"a.csv: 2 of 100 rows are broken, more than the 1%.*the first: .*a.csv:3: empty"
    ):
        load_examples(_rows_with_breaks(tmp_path, 98), task="classification", bad_rows=BadRows("skip"))


def test_skip_in_jsonl_and_conll(tmp_path):
    from autoft.data.loading import BadRows

    rows = [json.dumps({"text": f"t{i}", "label": "x" if i % 2 else "y"}) for i in range(200)]
    rows[10], rows[20] = "[1, 2]", "{not json"
    (tmp_path / "a.jsonl").write_text("\n".join(rows) + "\n")
    bad = BadRows("skip")
    assert len(load_examples(tmp_path / "a.jsonl", task="classification", bad_rows=bad)) == 198
    assert [s.split(": ", 1)[0] for s in bad.skipped] == [f"{tmp_path / 'a.jsonl'}:11", f"{tmp_path / 'a.jsonl'}:21"]

    path = write_conll(tmp_path / "a.conll", copies=40)  # 200 sentences
    lines = path.read_text().splitlines()
    lines[1] = "lives"  # the first sentence loses a tag: it is left out whole
    path.write_text("\n".join(lines) + "\n")
    bad = BadRows("skip")
    sentences = load_examples(path, task="token-classification", bad_rows=bad)
    assert len(sentences) == 199 and sentences[0].text == ["Bob", "works", "at", "Google"]
    assert sentences[0].origin == f"{path}:6"
    assert bad.skipped == [f"{path}:2: expected 2 tab-separated columns (token, tag), found 1"]


def test_on_bad_rows_skip_through_the_config(tmp_path):
    path = _rows_with_breaks(tmp_path, 300)
    splits = load_splits(DataConfig(train=str(path), on_bad_rows="skip"), task="classification", seed=0)
    assert len(splits.train) + len(splits.validation) == 300 and len(splits.skipped) == 2


def test_missing_file_says_not_found_whatever_its_suffix(tmp_path):
    for name in ("nope.xlsx", "nope"):
        with pytest.raises(DataError, match=rf"{name}: file not found"):
            load_examples(tmp_path / name, task="classification")
        with pytest.raises(DataError, match=rf"{name}: file not found"):
            read_texts(tmp_path / name, task="classification")


def test_a_held_out_validation_split_is_logged(tmp_path, caplog):
    (tmp_path / "b.csv").write_text("\n".join(["text,label"] + [f"s{i},{'ab'[i % 2]}" for i in range(50)]) + "\n")
    with caplog.at_level("INFO"):
        load_splits(DataConfig(train=str(tmp_path / "b.csv")), task="classification", seed=0)
    (line,) = [r.getMessage() for r in caplog.records if "validation" in r.getMessage()]
    assert line.startswith("no data.validation given: 5 training rows") and "seed 0" in line
