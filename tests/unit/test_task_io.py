"""The command line's I/O and the formats under it: input discovery and manifests (wavlm.tasks.manifest), output
names and JSONL (wavlm.cli.io), atomic writes (wavlm.files), sharding (wavlm.cli.dist), length buckets
(wavlm.inference), SRT (wavlm.tasks.srt)."""
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from wavlm.cli.dist import DistInfo, dist_info, shard
from wavlm.cli.io import output_path_for, read_jsonl, write_jsonl
from wavlm.files import atomic_write
from wavlm.inference import length_buckets
from wavlm.tasks.manifest import Input, collect_inputs, read_manifest
from wavlm.tasks.srt import Caption, parse_srt, to_srt


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_collect_inputs_walks_folders_recursively(tmp_path):
    root = tmp_path / "data"
    for rel in ["z.wav", "a.WAV", "sub/b.flac", "sub/deeper/c.mp3", "sub/x.opus", "notes.txt", ".hidden.wav",
                "sub/._b.flac", ".cache/d.wav", "e.m4a", "f.webm"]:
        _touch(root / rel)
    inputs = collect_inputs([root])
    assert [i.id for i in inputs] == ["a", "e", "f", "sub/b", "sub/deeper/c", "sub/x", "z"]
    assert inputs[3].path == root / "sub" / "b.flac"
    assert [i.id for i in collect_inputs([root], extensions=["flac"])] == ["sub/b"]
    # a file named on the command line is taken whatever its extension
    assert collect_inputs([root / "notes.txt"]) == [Input("notes", root / "notes.txt")]
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        collect_inputs([root / "missing.wav"])


def test_duplicate_ids_are_made_unique_in_order(tmp_path):
    _touch(tmp_path / "one" / "a.wav")
    _touch(tmp_path / "two" / "a.wav")
    _touch(tmp_path / "two" / "a_2.wav")
    ids = [i.id for i in collect_inputs([tmp_path / "one", tmp_path / "two"])]
    assert ids == ["a", "a_3", "a_2"]  # a_2 is taken by a real file
    assert len(set(ids)) == len(ids)


def test_manifest(tmp_path):
    (tmp_path / "m").mkdir()
    manifest = tmp_path / "m" / "list.jsonl"
    manifest.write_text('{"audio": "clips/x.wav", "text": "hello"}\n\n'
                        '{"audio": "/abs/y.flac", "id": "utt-7"}\n'
                        '{"audio": "/abs/z.flac"}\n')
    inputs = collect_inputs([manifest])
    assert inputs == [Input("clips/x", tmp_path / "m" / "clips" / "x.wav"), Input("utt-7", Path("/abs/y.flac")),
                      Input("z", Path("/abs/z.flac"))]
    assert inputs[0].meta == {"text": "hello"}


@pytest.mark.parametrize("line, message", [
    ('{"audio": "a.wav"', "invalid JSON"),
    ('["a.wav"]', "expected a JSON object, got list"),
    ('{"path": "a.wav"}', 'missing or non-string "audio"'),
    ('{"audio": "a.wav", "id": 3}', '"id" must be a non-empty string'),
])
def test_manifest_errors_name_the_line(tmp_path, line, message):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text('{"audio": "ok.wav"}\n' + line + "\n")
    with pytest.raises(ValueError, match=f"bad.jsonl:2: {message}"):
        read_manifest(manifest)


def test_unreadable_manifest_or_folder_is_named_not_skipped(tmp_path, monkeypatch):
    """A manifest or (sub)folder that cannot be read (EACCES; faked, as root reads everything) stops the run with
    its name: a folder os.walk cannot list would otherwise drop its audio from the run without a word."""
    import builtins

    manifest = tmp_path / "list.jsonl"
    manifest.write_text('{"audio": "a.wav"}\n')
    locked = tmp_path / "corpus" / "locked"
    locked.mkdir(parents=True)
    (tmp_path / "corpus" / "a.wav").write_bytes(b"")
    (locked / "b.wav").write_bytes(b"")

    real_open, real_scandir = builtins.open, os.scandir

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: denied(path) if Path(path) == manifest
                        else real_open(path, *a, **k))
    monkeypatch.setattr(os, "scandir", lambda path=".": denied(path) if Path(path) == locked else real_scandir(path))
    with pytest.raises(ValueError, match=f"cannot read the manifest {manifest}: Permission denied"):
        collect_inputs([manifest])
    with pytest.raises(ValueError, match=f"cannot list the folder {locked}: Permission denied"):
        collect_inputs([tmp_path / "corpus"])


def test_output_path_for(tmp_path):
    assert output_path_for(Input("sub/b", tmp_path), tmp_path / "out", ".rttm") == tmp_path / "out" / "sub" / "b.rttm"
    for bad in ["../x", "/etc/x", "a//b", "a/./b"]:
        with pytest.raises(ValueError, match="cannot be used as an output path"):
            output_path_for(Input(bad, tmp_path), tmp_path, ".txt")


def test_atomic_write(tmp_path):
    target = tmp_path / "new" / "out.txt"
    atomic_write(target, "héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    atomic_write(target, b"bytes")
    atomic_write(target, lambda f: np.save(f, np.arange(3)))
    assert np.load(target).tolist() == [0, 1, 2]

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("writer broke")

    with pytest.raises(RuntimeError, match="writer broke"):
        atomic_write(target, fail)
    assert np.load(target).tolist() == [0, 1, 2]  # old content intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no temporary file left


@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
def test_shard_covers_everything_once_and_balances(world_size):
    rng = np.random.default_rng(world_size)
    lengths = rng.integers(1, 1000, 50).tolist()
    items = list(range(50))
    parts = [shard(items, r, world_size, lengths) for r in range(world_size)]
    assert sorted(i for p in parts for i in p) == items
    assert all(p == sorted(p) for p in parts)  # original order kept within a rank
    totals = [sum(lengths[i] for i in p) for p in parts]
    assert max(totals) - min(totals) <= max(lengths)
    plain = [shard(items, r, world_size) for r in range(world_size)]
    assert sorted(i for p in plain for i in p) == items
    with pytest.raises(ValueError, match="rank"):
        shard(items, world_size, world_size)


def test_dist_info(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert dist_info() == DistInfo(0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_info() == DistInfo(3, 4, 1)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        dist_info()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="inconsistent"):
        dist_info()


def test_length_buckets_with_and_without_a_sample_budget():
    lengths = [5, 100, 30, 100, 7, 60, 1000, 2]
    batches = length_buckets(lengths, None, 3)
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert all(len(b) <= 3 for b in batches)
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    assert batches[0] == [6, 1, 3]  # ties in input order
    budget = length_buckets(lengths, 200, 8)
    assert sorted(i for b in budget for i in b) == list(range(8))
    assert budget[0] == [6]  # alone: longer than the budget
    assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in budget[1:])
    assert budget[1] == [1, 3]
    assert length_buckets(lengths, None, None) == [[6, 1, 3, 5, 2, 4, 0, 7]]
    for bad in (dict(max_batch_samples=0), dict(max_batch_size=0)):
        with pytest.raises(ValueError, match="must be >= 1"):
            length_buckets(lengths, **{"max_batch_samples": None, "max_batch_size": None, **bad})


def test_srt_round_trip_and_parsing():
    caps = [Caption(0.0, 1.5, "hello world"), Caption(61.25, 3723.0049, "two\nlines"), (3725.5, 3726, "tuple")]
    text = to_srt(caps)
    assert text.startswith("1\n00:00:00,000 --> 00:00:01,500\nhello world\n\n2\n00:01:01,250 --> 01:02:03,005\n")
    back = parse_srt(text)
    assert [c.text for c in back] == ["hello world", "two\nlines", "tuple"]
    assert [(c.start, c.end) for c in back] == [(0.0, 1.5), (61.25, pytest.approx(3723.005)), (3725.5, 3726.0)]
    assert to_srt(back) == text
    assert parse_srt("\ufeff1\r\n00:00:01,000 --> 00:00:02,000\r\nhi\r\n") == [Caption(1.0, 2.0, "hi")]
    with pytest.raises(ValueError, match="SRT line 6"):
        parse_srt("1\n00:00:01,000 --> 00:00:02,000\nhi\n\n2\n00:00:03 -> 00:00:04\nbad\n")
    with pytest.raises(ValueError, match="ends"):
        to_srt([(2.0, 1.0, "backwards")])


def test_jsonl(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"id": "a", "score": np.float32(0.5), "emb": np.arange(2), "text": "ü"}, {"id": "b"}])
    assert read_jsonl(path) == [{"id": "a", "score": 0.5, "emb": [0, 1], "text": "ü"}, {"id": "b"}]
    assert "ü" in path.read_text(encoding="utf-8")
