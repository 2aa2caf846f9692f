"""Every loader on small files written here: valid input, and malformed input that must
raise a ValueError naming the file, the line/row and the field."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ecomlm.data import load_splits
from ecomlm.data.esci import load_esci
from ecomlm.data.products import read_amazon_meta, read_esci_products
from ecomlm.data.queryner import read_bio_jsonl, read_conll
from ecomlm.data.reviews import read_amasum_file, read_fewsum

ESCI_ROWS = [
    {"example_id": i, "query": f"query {i // 2}", "query_id": i // 2, "product_id": f"P{i}",
     "product_locale": "us" if i < 18 else "es", "esci_label": "ESCI"[i % 4],
     "product_title": f"<b>Title</b> {i}", "product_brand": "Acme", "product_color": "red",
     "product_bullet_point": "one\ntwo", "product_description": "<p>Nice &amp; good</p>",
     "split": "test" if i % 5 == 0 else "train"}
    for i in range(20)
]  # fmt: skip


def write_esci_csv(path, rows, drop=()):
    df = pd.DataFrame(rows).drop(columns=list(drop))
    df.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- ESCI


def test_esci_joined_csv(tmp_path):
    path = write_esci_csv(tmp_path / "esci.csv", ESCI_ROWS, drop=["split"])
    examples, splits = load_esci(path)
    assert len(examples) == 18 and splits is None  # locale "us" only
    ex = examples[0]
    assert ex.label == "Exact" and ex.product_title == "Title 0"
    assert ex.product_description == "Nice & good" and ex.product_bullets == "one\ntwo"
    assert ex.query_id == "0" and ex.product_id == "P0"
    assert [e.label for e in examples[:4]] == ["Exact", "Substitute", "Complement", "Irrelevant"]
    parts = load_splits("esci", f"esci:{path}?locale=all")
    assert sum(len(v) for v in parts.values()) == 20
    queries = {k: {e.query for e in v} for k, v in parts.items()}
    assert not queries["train"] & queries["test"]  # split by query


def test_split_does_not_follow_the_run_seed(tmp_path):
    """Seeds of a study vary training, never the test set: runs differing only in their
    seed see the same split of an unsplit file; the source's ``seed=`` picks another."""
    from ecomlm.runs import RunSpec, load_run_data

    rows = [dict(r, query=f"query {i}", query_id=i) for i, r in enumerate(ESCI_ROWS)]
    path = write_esci_csv(tmp_path / "esci.csv", rows, drop=["split"])
    source = f"esci:{path}?locale=all"

    def test_ids(spec):
        return [e.product_id for e in load_run_data(spec)["test"]]

    seeds = [test_ids(RunSpec(task="esci", method="classical", source=source, seed=s))
             for s in (0, 1, 2)]  # fmt: skip
    assert seeds[0] and seeds[0] == seeds[1] == seeds[2]
    others = {tuple(test_ids(RunSpec(task="esci", method="classical", source=f"{source}&seed={s}")))
              for s in range(1, 6)}  # fmt: skip
    assert others - {tuple(seeds[0])}
    with pytest.raises(ValueError, match="seed must be an integer"):
        load_splits("esci", f"{source}&seed=x")


def test_esci_official_parquet_pair(tmp_path):
    df = pd.DataFrame(ESCI_ROWS)
    examples = df[["example_id", "query", "query_id", "product_id", "product_locale",
                   "esci_label", "split"]].assign(small_version=[1, 0] * 10)  # fmt: skip
    products = df[["product_id", "product_locale", "product_title", "product_description",
                   "product_bullet_point", "product_brand", "product_color"]]  # fmt: skip
    examples.to_parquet(tmp_path / "shopping_queries_dataset_examples.parquet")
    products.to_parquet(tmp_path / "shopping_queries_dataset_products.parquet")
    parts = load_splits("esci", f"esci:{tmp_path}")
    assert len(parts["test"]) == 4  # official test rows with locale us: 0, 5, 10, 15
    assert len(parts["train"]) + len(parts["dev"]) == 14 and parts["dev"]
    small = load_splits("esci", f"esci:{tmp_path}?version=small")
    assert sum(len(v) for v in small.values()) == 9
    assert parts["test"][0].product_title == "Title 0"
    # a product missing from the products table is reported with its row
    products.drop(index=3).to_parquet(tmp_path / "shopping_queries_dataset_products.parquet")
    with pytest.raises(ValueError, match=r"examples.parquet row 4: product_id 'P3' \(us\)"):
        load_splits("esci", f"esci:{tmp_path}")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"esci_label": ""}, r"esci.csv row 3: missing esci_label"),
        ({"query": ""}, r"esci.csv row 3: missing query"),
        ({"esci_label": "Maybe"}, r"esci.csv row 3: esci_label 'Maybe' is not one of"),
    ],
)
def test_esci_malformed_rows(tmp_path, change, message):
    rows = [dict(r) for r in ESCI_ROWS]
    rows[2].update(change)
    path = write_esci_csv(tmp_path / "esci.csv", rows)
    with pytest.raises(ValueError, match=message):
        load_esci(path)


def test_esci_missing_column_and_locale(tmp_path):
    path = write_esci_csv(tmp_path / "esci.csv", ESCI_ROWS, drop=["esci_label"])
    with pytest.raises(ValueError, match=r"esci.csv: missing column\(s\) \['esci_label'\]"):
        load_esci(path)
    path = write_esci_csv(tmp_path / "esci2.csv", ESCI_ROWS)
    with pytest.raises(ValueError, match="no rows with product_locale == 'jp'"):
        load_esci(path, locale="jp")
    with pytest.raises(FileNotFoundError, match="official ESCI pair"):
        load_esci(tmp_path)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['lang'\]; valid: locale, version"):
        load_splits("esci", f"esci:{path}?lang=en")


# ----------------------------------------------------------------------------- QueryNER

CONLL = "red\tB-color\nnike\tB-creator\nshoes\tB-core_product_type\n\n\n2\tB-quantity\npack\tI-quantity\nsocks\tB-core_product_type\n"  # noqa: E501


def test_queryner_conll_and_jsonl(tmp_path):
    train = "\n".join(f"item{i}\tB-modifier\n" + CONLL for i in range(20))
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text(CONLL)
    examples = read_conll(tmp_path / "test.txt")
    assert [e.tokens for e in examples] == [["red", "nike", "shoes"], ["2", "pack", "socks"]]
    assert examples[1].tags == ["B-quantity", "I-quantity", "B-core_product_type"]
    assert examples[0].id == "test-0"
    rows = [{"tokens": e.tokens, "tags": e.tags} for e in examples]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert [e.tags for e in read_bio_jsonl(tmp_path / "b.jsonl")] == [e.tags for e in examples]
    parts = load_splits("queryner", f"queryner:{tmp_path}")
    assert len(parts["test"]) == 2 and len(parts["train"]) + len(parts["dev"]) == 40
    assert parts["dev"] and parts["train"]
    # the 20 copies of "2 pack socks" form one group: all in train or all in dev
    assert sum(e.tokens == ["2", "pack", "socks"] for e in parts["dev"]) in (0, 20)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("red\tB-color\nshoes B-core_product_type\n", r"x.txt:2: expected 'token<TAB>label'"),
        ("red\tB-colour\n", r"x.txt:1: label: unknown BIO label 'B-colour'"),
        ("red\tB-color\textra\n", r"x.txt:1: expected 'token<TAB>label', got 3"),
        ("\tB-color\n", r"x.txt:1: empty token"),
    ],
)
def test_queryner_conll_malformed(tmp_path, text, message):
    (tmp_path / "x.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_conll(tmp_path / "x.txt")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"tokens": [], "tags": []}, r"b.jsonl:2: empty query"),
        ({"tokens": ["a", "b"], "tags": ["O"]}, r"b.jsonl:2: 2 tokens but 1 tags"),
        ({"tokens": ["a"], "tags": ["B-thing"]}, r"b.jsonl:2: field 'tags'\[0\]: unknown BIO"),
        ({"tokens": "a b", "tags": ["O"]}, r"b.jsonl:2: field 'tokens' must be a list"),
    ],
)
def test_queryner_jsonl_malformed(tmp_path, row, message):
    good = json.dumps({"tokens": ["a"], "tags": ["O"]})
    (tmp_path / "b.jsonl").write_text(good + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=message):
        read_bio_jsonl(tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").write_text(good + "\n{not json\n")
    with pytest.raises(ValueError, match=r"c.jsonl:2: invalid JSON"):
        read_bio_jsonl(tmp_path / "c.jsonl")


# ----------------------------------------------------------------------------- reviews

HEADER = ["cat", "group_id"] + [f"rev{i}" for i in range(1, 4)] + ["summ1", "summ2"]
HEADER += [f"rating{i}" for i in range(1, 4)]


def fewsum_row(gid, rating="5"):
    return ["cloth", gid, "Great shirt.", "Nice fit", 'Runs "small"', "Good shirt.", "Fits.",
            rating, "4", "3"]  # fmt: skip


def write_tsv(path, rows):
    path.write_text("\n".join("\t".join(r) for r in [HEADER, *rows]) + "\n")
    return path


def test_fewsum_valid(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        write_tsv(tmp_path / f"{split}.csv", [fewsum_row(f"{split}{i}") for i in range(n)])
    ex = read_fewsum(tmp_path / "train.csv")[0]
    assert ex.reviews == ["Great shirt.", "Nice fit", 'Runs "small"']  # quotes kept verbatim
    assert ex.summaries == ["Good shirt.", "Fits."] and ex.ratings == [5.0, 4.0, 3.0]
    assert ex.id == "train0" and ex.category == "cloth"
    parts = load_splits("review_summ", f"fewsum:{tmp_path}")
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [4, 2, 2]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (fewsum_row("g")[:5], r"f.csv:3: expected 10 tab-separated fields, got 5"),
        (fewsum_row("g", rating="five"), r"f.csv:3: field rating1: rating 'five' is not"),
        (["c", "g", "", "", "", "s", "", "1", "2", "3"], r"f.csv:3: no reviews"),
        (["c", "g", "a", "b", "c", "", "", "1", "2", "3"], r"f.csv:3: missing summary"),
        (["c", "", "a", "b", "c", "s", "", "1", "2", "3"], r"f.csv:3: missing group_id"),
    ],
)
def test_fewsum_malformed(tmp_path, row, message):
    path = write_tsv(tmp_path / "f.csv", [fewsum_row("ok"), row])
    with pytest.raises(ValueError, match=message):
        read_fewsum(path)


AMASUM = {
    "customer_reviews": [{"text": "Works well", "rating": 5}, {"text": "Loud", "rating": 2}],
    "website_summaries": [{"verdict": "A solid blender", "pros": ["Powerful"], "cons": ["Loud"]}],
    "product_meta": {"title": "Blendo 3000", "categories": ["Kitchen", "Blenders"]},
}


def test_amasum_folder_and_files(tmp_path):
    for split, n in (("train", 5), ("valid", 2), ("test", 2)):
        (tmp_path / split).mkdir()
        for i in range(n):
            (tmp_path / split / f"B0{split}{i}.json").write_text(json.dumps(AMASUM))
    parts = load_splits("review_summ", f"amasum:{tmp_path}")
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [5, 2, 2]
    ex = parts["test"][0]
    assert ex.summaries == ["A solid blender. Powerful. Loud."]
    assert ex.reviews == ["Works well", "Loud"] and ex.ratings == [5.0, 2.0]
    assert ex.product_title == "Blendo 3000" and ex.category == "Kitchen > Blenders"
    assert ex.id == "B0test0"
    simple = {"reviews": ["good", "bad"], "summary": "Mixed.", "id": "x"}
    (tmp_path / "s.jsonl").write_text(json.dumps(simple) + "\n" + json.dumps(AMASUM) + "\n")
    assert [e.summaries for e in read_amasum_file(tmp_path / "s.jsonl")][0] == ["Mixed."]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"customer_reviews": "text"}, r"a.jsonl:1: field 'customer_reviews' \(or 'reviews'\)"),
        ({"reviews": ["x"]}, r"a.jsonl:1: missing summary"),
        ({"reviews": [{"text": ""}], "summary": "s"}, r"a.jsonl:1: review 0 has no text"),
        ({"reviews": [{"text": "x", "rating": "?"}], "summary": "s"}, r"a.jsonl:1: review 0"),
    ],
)
def test_amasum_malformed(tmp_path, obj, message):
    (tmp_path / "a.jsonl").write_text(json.dumps(obj) + "\n")
    with pytest.raises(ValueError, match=message):
        read_amasum_file(tmp_path / "a.jsonl")


# ----------------------------------------------------------------------------- products

META = [
    {"asin": "A1", "title": "Acme Kettle", "brand": "Acme", "feature": ["1.7 L", "Auto off"],
     "description": ["<p>A fast kettle.</p>"], "category": ["Home", "Kitchen"]},
    {"parent_asin": "A2", "title": "Bolt Mug", "store": "Bolt", "features": ["Ceramic"],
     "description": ["A mug."], "main_category": "Home", "details": {"Color": "Blue"}},
    {"asin": "A3", "title": "No description", "description": []},
]  # fmt: skip


def test_amazon_meta(tmp_path):
    path = tmp_path / "meta.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in META * 5))
    examples = read_amazon_meta(path)
    assert len(examples) == 10  # rows without a description are skipped
    a, b = examples[0], examples[1]
    assert (a.title, a.brand, a.bullets, a.description) == (
        "Acme Kettle", "Acme", ["1.7 L", "Auto off"], "A fast kettle.",
    )  # fmt: skip
    assert a.category == "Home > Kitchen" and a.id == "A1"
    assert (b.brand, b.color, b.id, b.category) == ("Bolt", "Blue", "A2", "Home")
    parts = load_splits("desc_gen", f"amazon_meta:{path}")
    assert sum(len(v) for v in parts.values()) == 10


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"description": "x"}, r"meta.jsonl:2: missing title"),
        ({"title": "t", "description": "d", "feature": 3}, r"meta.jsonl:2: field 'feature'"),
        ("[1, 2]", r"meta.jsonl:2: expected a JSON object"),
    ],
)
def test_amazon_meta_malformed(tmp_path, row, message):
    line = row if isinstance(row, str) else json.dumps(row)
    (tmp_path / "meta.jsonl").write_text(json.dumps(META[0]) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        read_amazon_meta(tmp_path / "meta.jsonl")


def test_esci_products_table(tmp_path):
    df = pd.DataFrame(ESCI_ROWS)
    df.loc[1, "product_description"] = ""
    df.to_parquet(tmp_path / "products.parquet")
    examples = read_esci_products(tmp_path / "products.parquet")
    assert len(examples) == 17  # 18 us rows, one without a description
    assert examples[0].bullets == ["one", "two"] and examples[0].description == "Nice & good"
    parts = load_splits("desc_gen", f"esci_products:{tmp_path / 'products.parquet'}?locale=all")
    assert sum(len(v) for v in parts.values()) == 19
    df.loc[3, "product_title"] = ""
    df.to_csv(tmp_path / "products.csv", index=False)
    with pytest.raises(ValueError, match=r"products.csv row 4: missing product_title"):
        read_esci_products(tmp_path / "products.csv")


# ----------------------------------------------------------------------------- hf


def test_hf_local_file_and_folder(tmp_path):
    rows = [{"tokens": ["red", "shoes"], "ner_tags": ["B-color", "B-core_product_type"]}] * 30
    (tmp_path / "ner.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    parts = load_splits("queryner", f"hf:{tmp_path / 'ner.jsonl'}")
    assert sum(len(v) for v in parts.values()) == 30
    assert parts["train"][0].tags == ["B-color", "B-core_product_type"]

    folder = tmp_path / "esci_ds"
    folder.mkdir()
    rows = [{"query": f"q{i}", "title": f"T{i}", "label": "E"} for i in range(10)]
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    parts = load_splits("esci", f"hf:{folder}")
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [10, 10, 10]
    assert parts["dev"][0].product_title == "T0" and parts["dev"][0].label == "Exact"

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "title": "t", "label": "Z"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl \[train\] row 1: esci_label 'Z'"):
        load_splits("esci", f"hf:{bad}")


def test_hf_class_label_columns(tmp_path):
    import datasets

    names = ["O", "B-color", "B-core_product_type"]
    feats = datasets.Features(
        {"tokens": datasets.Sequence(datasets.Value("string")),
         "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))}
    )  # fmt: skip
    ds = datasets.Dataset.from_dict(
        {"tokens": [["red", f"shoe{i}"] for i in range(20)], "ner_tags": [[1, 2]] * 20},
        features=feats,
    )
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "saved"))
    parts = load_splits("queryner", f"hf:{tmp_path / 'saved'}")
    assert parts["test"][0].tags == ["B-color", "B-core_product_type"]
    assert len(parts["test"]) == 20 and parts["dev"]


def test_an_adapter_scored_on_a_smaller_task_takes_what_that_task_has():
    """A mixed adapter trained at n = 256 per task, or a merge of adapters of that scale,
    is scored on FewSum-sized data (fewer train examples than n): its evaluation run loads
    like its training did, capped at what there is; a run that trains on the split itself
    still refuses the size."""
    from ecomlm.runs import RunSpec, load_run_data

    source = "synthetic:n=20,dev=5,test=5"
    n_train = len(load_splits("review_summ", source)["train"])
    spec = RunSpec(task="review_summ", method="lora", source=source, train_size=n_train + 50,
                   method_config={"adapter_path": "runs/mixed"})  # fmt: skip
    assert len(load_run_data(spec)["train"]) == n_train
    merged = RunSpec(task="review_summ", method="merge", source=source,
                     train_size=n_train + 50, method_config={"adapters": ["a", "b"]})  # fmt: skip
    assert len(load_run_data(merged)["train"]) == n_train
    with pytest.raises(ValueError, match="cannot subsample"):
        load_run_data(RunSpec(task="review_summ", method="lora", source=source,
                              train_size=n_train + 50))  # fmt: skip
