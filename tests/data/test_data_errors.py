"""Bad inputs: one ConfigError before any output, and no cache folder left behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_runs import composer, error_line, read_only
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.data.config import DataConfig
from composer_automl.data.prepare import prepare


def assert_nothing_written(cache):
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_source_is_an_error(tmp_path):
    """A path that does not exist raises 'no such file or directory'."""
    with pytest.raises(ConfigError, match="no such file or directory"):
        prepare(DataConfig(source=str(tmp_path / "absent"), cache_dir=str(tmp_path / "cache")))
    assert_nothing_written(tmp_path / "cache")


def test_empty_file_and_empty_glob_are_errors(tmp_path):
    """An empty input file is named in the error; a glob matching nothing is an error too."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("some text")
    (tmp_path / "in" / "b.txt").write_text("")
    with pytest.raises(ConfigError, match="b.txt.*is empty"):
        prepare(DataConfig(source=str(tmp_path / "in"), cache_dir=str(tmp_path / "cache")))
    with pytest.raises(ConfigError, match="matches no files"):
        prepare(DataConfig(source=str(tmp_path / "in" / "*.md"), cache_dir=str(tmp_path / "cache")))
    assert_nothing_written(tmp_path / "cache")


def test_absent_jsonl_field_is_an_error(tmp_path):
    """A JSONL record without the configured field raises, naming the field and the keys present."""
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"content": "hello"}) + "\n")
    with pytest.raises(ConfigError, match=r"jsonl_field='text' is absent.*\['content'\]"):
        prepare(DataConfig(source=str(path), cache_dir=str(tmp_path / "cache")))


def test_absent_field_on_a_later_line_leaves_no_partial_output(tmp_path):
    """A bad record found while tokenizing aborts the build and removes its temporary folder."""
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": f"doc {i}"}) for i in range(600)] + [json.dumps({"other": 1})]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"docs.jsonl:601"):
        prepare(DataConfig(source=str(path), cache_dir=str(tmp_path / "cache"), progress=False))
    assert_nothing_written(tmp_path / "cache")


def test_a_garbage_line_found_while_tokenizing_leaves_not_even_the_cache_folder(tmp_path):
    """The cache folders the build created (``cache/a/b``) are removed again when a bad line stops it; a cache
    folder that held something before is kept."""
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(6)) + "garbage\n")
    with pytest.raises(ConfigError, match=r"docs.jsonl:7: not valid JSON"):
        prepare(DataConfig(source=str(path), cache_dir=str(tmp_path / "cache" / "a" / "b"), progress=False))
    assert not (tmp_path / "cache").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "other").write_text("x")
    with pytest.raises(ConfigError, match=r"docs.jsonl:7"):
        prepare(DataConfig(source=str(path), cache_dir=str(tmp_path / "kept" / "new"), progress=False))
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["other"]


def test_a_garbage_indexed_dataset_is_one_error_line_and_no_stray_traceback(tmp_path):
    """Megatron's reader fails on a bad .idx header and again in its ``__del__``: only our one line is printed."""
    (tmp_path / "x.idx").write_bytes(b"garbage index")
    (tmp_path / "x.bin").write_bytes(b"garbage tokens")
    done = composer("data", ["prepare", f"data.source={tmp_path / 'x'}", f"data.cache_dir={tmp_path / 'cache'}"])
    assert error_line(done) == f"data.source='{tmp_path / 'x'}' is not a readable megatron indexed dataset: bad " \
                               f"header, cannot read: {tmp_path / 'x.idx'}"
    assert "Exception ignored" not in done.stderr and not (tmp_path / "cache").exists()


def test_token_ids_outside_vocabulary_are_an_error(tmp_path):
    """A raw token file with ids ≥ the tokenizer's vocabulary (257 for bytes) is rejected before writing."""
    raw = tmp_path / "tokens.bin"
    np.array([1, 2, 256, 3, 999, 256], dtype=np.uint16).tofile(raw)
    with pytest.raises(ConfigError, match=r"token ids span \[1, 999\].*\[0, 257\)"):
        prepare(DataConfig(source=str(raw), cache_dir=str(tmp_path / "cache")))
    assert_nothing_written(tmp_path / "cache")


def test_single_document_corpus_cannot_be_split(tmp_path):
    """One document cannot give both a train and a valid split."""
    (tmp_path / "one.txt").write_text("just one document")
    with pytest.raises(ConfigError, match="at least 2"):
        prepare(DataConfig(source=str(tmp_path / "one.txt"), cache_dir=str(tmp_path / "cache")))


@pytest.mark.parametrize("field, value, pattern", [
    ("tokenizer", "sentencepiece", "^data.tokenizer='sentencepiece' is not allowed"),
    ("format", "parquet", "^data.format='parquet' is not allowed"),
    ("valid_fraction", 0.9, r"^data.valid_fraction=0.9 must be in \(0, 0.5\]$"),
    ("tokenizer_path", None, "^data.tokenizer_path is required with tokenizer=hf"),
])
def test_bad_config_values_name_the_field(field, value, pattern):
    """Out-of-range or unknown config values raise one ConfigError naming the field under the section typed."""
    kwargs = {"tokenizer": "hf", "tokenizer_path": "/x.json"} if field != "tokenizer" else {}
    kwargs[field] = value
    with pytest.raises(ConfigError, match=pattern):
        to_dataclass(DataConfig, kwargs, "data")


def test_a_broken_symbolic_link_in_the_corpus_is_an_error(tmp_path):
    """A corpus folder holding a link to a file that is gone is refused, naming the link (it used to be skipped)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("some text")
    (tmp_path / "in" / "b.txt").symlink_to(tmp_path / "gone.txt")
    for source in (tmp_path / "in", tmp_path / "in" / "*.txt"):
        with pytest.raises(ConfigError, match=f"^source: input '{tmp_path / 'in' / 'b.txt'}' is a broken symbolic "
                                              r"link \(1 in all\); fix or remove it$"):
            prepare(DataConfig(source=str(source), cache_dir=str(tmp_path / "cache")))
    assert_nothing_written(tmp_path / "cache")


def test_unreadable_inputs_and_unwritable_caches_are_one_line_before_work(tmp_path):
    """An input file this user may not read and a cache folder that is a file or read-only: one `error:` line
    each from `data prepare`, nothing tokenized or written."""
    corpus = tmp_path / "in"
    corpus.mkdir()
    (corpus / "a.txt").write_text("some text")
    (corpus / "b.txt").write_text("more text")
    (corpus / "b.txt").chmod(0)
    done = composer("data", ["prepare", f"data.source={corpus}", f"data.cache_dir={tmp_path / 'cache'}"], as_user=True)
    assert error_line(done) == f"data.source: input file '{corpus / 'b.txt'}' cannot be read (permission denied; " \
                               "1 such file(s) in all)"
    (corpus / "b.txt").chmod(0o644)
    a_file, locked = tmp_path / "a_file", read_only(tmp_path / "locked")
    a_file.write_text("x")
    done = composer("data", ["prepare", f"data.source={corpus}", f"data.cache_dir={a_file}"])
    assert error_line(done) == f"data.cache_dir='{a_file}' is a file, not a folder"
    done = composer("data", ["prepare", f"data.source={corpus}", f"data.cache_dir={locked}"], as_user=True)
    assert error_line(done) == f"data.cache_dir='{locked}': cannot write in '{locked}' (permission denied)"
    assert not (tmp_path / "cache").exists() and list(locked.iterdir()) == []
