"""corrected.<ext>: the training file with the agent's drops removed and relabels applied, format kept."""

import csv
import json

import pytest

from autoft.data.corrected import corrected_name, line_of, write_corrected
from autoft.data.loading import Example, load_examples


def test_csv_keeps_other_columns_and_quoting(tmp_path):
    source = tmp_path / "train.csv"
    source.write_text('id,text,label\n1,"good, really",pos\n2,bad,pos\n3,"multi\nline",neg\n4,fine,neg\n')
    lines = {e.text: line_of(e.origin)[1] for e in load_examples(source, task="classification")}
    written = write_corrected(
        source,
        tmp_path / "corrected.csv",
        fmt="auto",
        label_column="label",
        drop={lines["fine"]},
        relabel={lines["bad"]: "neg"},
    )
    with (tmp_path / "corrected.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert written == 3 and rows == [
        {"id": "1", "text": "good, really", "label": "pos"},
        {"id": "2", "text": "bad", "label": "neg"},
        {"id": "3", "text": "multi\nline", "label": "neg"},
    ]
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
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [
        {"text": "b", "label": "y", "n": 2},
        {"text": "c", "label": "y", "n": 3},
    ]


def test_corrected_names():
    from pathlib import Path

    assert corrected_name(Path("d/train.tsv"), "tsv", several=False) == "corrected.tsv"
    assert corrected_name(Path("d/news.csv"), "csv", several=True) == "corrected_news.csv"


def test_semeval_sentences_drop_and_relabel_and_broken_ones_are_left_out(tmp_path):
    source = tmp_path / "train.txt"
    source.write_text(
        '1\t"The <e1>fire</e1> caused <e2>smoke</e2>."\r\nCause-Effect(e1,e2)\r\nComment: clear\r\n\r\n'
        '2\t"A <e1>cup</e1> on a <e2>table</e2>."\nOther\nComment:\n\n'
        '3\t"no markers here"\nOther\nComment:\n\n'
        '4\t"The <e1>flood</e1> came from the <e2>storm</e2>."\nCause-Effect(e1,e2)\nComment:\n'
    )
    from autoft.data.loading import BadRows

    loaded = load_examples(source, task="relation-extraction", bad_rows=BadRows("skip", max_share=1.0))
    starts = {e.text.split("<e1>")[1].split("<")[0]: line_of(e.origin)[1] for e in loaded}
    written = write_corrected(
        source,
        tmp_path / "corrected.txt",
        fmt="semeval",
        label_column="label",
        drop={starts["cup"]},
        relabel={starts["flood"]: "Cause-Effect(e2,e1)"},
    )
    again = load_examples(tmp_path / "corrected.txt", task="relation-extraction")  # strict: nothing broken left
    assert written == 2 and [(e.text, e.label) for e in again] == [
        ("The <e1>fire</e1> caused <e2>smoke</e2>.", "Cause-Effect(e1,e2)"),
        ("The <e1>flood</e1> came from the <e2>storm</e2>.", "Cause-Effect(e2,e1)"),
    ]
    assert "Comment: clear" in (tmp_path / "corrected.txt").read_text()  # the file's own lines are kept
    assert corrected_name(source, "semeval", several=False) == "corrected.txt"
    assert corrected_name(source, "semeval", several=True) == "corrected_train.txt"


def _family_files(tmp_path):
    """Per task family, a small training file and the repairs an agent could make: (task, path, drop, relabel)."""
    relation = tmp_path / "relation.txt"
    relation.write_text(
        "".join(
            f'{i}\t"the <e1>{c}</e1> and the <e2>{e}</e2>"\n{r}\nComment:\n\n'
            for i, (c, e, r) in enumerate(
                [
                    ("fire", "smoke", "Cause-Effect(e1,e2)"),
                    ("storm", "flood", "Other"),
                    ("virus", "fever", "Cause-Effect(e1,e2)"),
                    ("cup", "table", "Other"),
                ],
                1,
            )
        )
    )
    spans = tmp_path / "spans.csv"
    spans.write_text(
        'text,label,e1_start,e1_end,e2_start,e2_end\nfire caused smoke,"Cause-Effect(e1,e2)",0,4,12,17\n'
        'smoke from fire,"Cause-Effect(e2,e1)",0,5,11,15\nrain then mud,Other,0,4,10,13\n'
        'sun and sea,Other,0,3,8,11\nmud after rain,"Cause-Effect(e2,e1)",0,3,10,14\n'
    )
    classification = tmp_path / "topics.csv"
    classification.write_text("text,label\npizza,food\nsoup,food\ngoal,sport\nchip,tech\ncode,tech\n")
    multi = tmp_path / "acts.jsonl"
    multi.write_text(
        '{"text": "hi", "label": ["GREET"]}\n{"text": "bye", "label": ["BYE", "THANK"]}\n'
        '{"text": "ok", "label": []}\n{"text": "hello", "label": ["GREET"]}\n'
    )
    ner = tmp_path / "ner.conll"
    ner.write_text("Alice\tB-PER\nsings\tO\n\nParis\tB-LOC\n\nBob\tB-PER\nin\tO\nRome\tB-LOC\n")
    return [
        ("relation-extraction", relation, [2], {3: "Cause-Effect(e1,e2)"}),
        ("relation-extraction", spans, [2], {4: "Cause-Effect(e1,e2)"}),
        ("classification", classification, [0], {3: "food"}),
        ("multi-label-classification", multi, [0], {}),
        ("token-classification", ner, [1], {}),
    ]


@pytest.mark.parametrize("family", range(5), ids=["semeval", "relation-spans", "classification", "multi-label", "ner"])
def test_a_corrected_file_is_training_data_again(tmp_path, family):
    """What `autoft run` writes per family loads, through a config naming it as data.train, with the original
    validation file, as the training data with the agent's repairs."""
    from autoft.config import as_config
    from autoft.data.splits import load_splits
    from autoft.run import _write_corrected

    task, source, drop, relabel = _family_files(tmp_path)[family]
    config = as_config(
        {"task": task, "data": {"train": str(source), "validation": str(source)}, "output_dir": str(tmp_path / "run")}
    )
    train = load_splits(config.data, task=task, seed=0).train
    labels = sorted(
        {label for e in train for label in (e.label if isinstance(e.label, list) else [e.label])}
        | set(relabel.values())
    )
    (tmp_path / "out").mkdir()
    _write_corrected(
        tmp_path / "out", config, train, labels, drop, {row: labels.index(label) for row, label in relabel.items()}
    )
    written = next((tmp_path / "out").iterdir())
    expected = [Example(e.text, relabel.get(i, e.label)) for i, e in enumerate(train) if i not in drop]
    again = as_config({**config.model_dump(mode="json"), "data": {"train": str(written), "validation": str(source)}})
    assert [Example(e.text, e.label) for e in load_splits(again.data, task=task, seed=0).train] == expected
    assert written.suffix == source.suffix or (task, written.suffix) == ("multi-label-classification", ".jsonl")


def test_a_label_the_repairs_would_empty_keeps_its_rows(tmp_path, caplog):
    """The agent leaves out the only training row of a relation the validation file has: that row stays, so the
    corrected file still trains with that validation file (the loader refuses a label training never saw)."""
    from autoft.config import as_config
    from autoft.data.corrected import keep_every_label
    from autoft.data.splits import load_splits
    from autoft.run import _write_corrected

    task, source, _, _ = _family_files(tmp_path)[0]
    config = as_config(
        {"task": task, "data": {"train": str(source), "validation": str(source)}, "output_dir": str(tmp_path / "run")}
    )
    train = load_splits(config.data, task=task, seed=0).train
    labels = ["Cause-Effect(e1,e2)", "Other"]
    # Rows 1 and 3 are the Other rows: leaving out one and relabelling the other would leave Other no row.
    assert keep_every_label(train, [1, 2], {3: "Cause-Effect(e1,e2)"}) == ({2}, {}, ["Other"])
    assert keep_every_label(train, [2], {3: "Cause-Effect(e1,e2)"}) == ({2}, {3: "Cause-Effect(e1,e2)"}, [])
    # Undoing a relabel can empty the label it was relabelled to: that one keeps its rows too.
    abc = [Example("a", "A"), Example("b", "B"), Example("c", "C")]
    assert keep_every_label(abc, [2], {0: "C"}) == (set(), {}, ["A", "C"])
    with caplog.at_level("WARNING"):
        _write_corrected(tmp_path, config, train, labels, [1, 2], {3: 0})
    assert "every training row of 'Other'" in caplog.text
    again = as_config(
        {
            **config.model_dump(mode="json"),
            "data": {"train": str(tmp_path / "corrected.txt"), "validation": str(source)},
        }
    )
    assert [e.label for e in load_splits(again.data, task=task, seed=0).train] == [
        "Cause-Effect(e1,e2)",
        "Other",
        "Other",
    ]
