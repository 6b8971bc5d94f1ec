"""On-disk activation cache: round trip, shuffling, resume, atomicity."""

from __future__ import annotations

import json

import _tiny
import pytest
import torch

import saekit
from saekit.errors import FormatError, SaekitError

TEXTS = [f"{chr(65 + i)} {t}" for i, t in enumerate(_tiny.CORPUS * 6)]  # 24 distinct texts


def test_cache_round_trip_equals_direct_activations(tiny_llama: saekit.Model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c",
                                     shard_tokens=100, docs_per_step=4, progress=False)
    direct = tiny_llama.activations(TEXTS, "resid_post.1", progress=False)
    assert cache.complete and cache.n_tokens == len(direct) and cache.d_in == 32
    assert len(cache.meta["shards"]) > 2
    torch.testing.assert_close(cache.load(), direct["resid_post.1"])
    assert cache.tokens()["doc"].tolist() == direct.doc.tolist()
    assert "complete" in repr(cache)


def test_outlier_norm_tokens_are_dropped_and_counted(tiny_llama: saekit.Model, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = tiny_llama.activations

    def with_sink(texts, sites, **kw):  # type: ignore[no-untyped-def]
        acts = real(texts, sites, **kw)
        x = acts["resid_post.1"].clone()
        x[(acts.doc == 0) & (acts.pos == 3)] *= 50  # one massive activation per call
        return saekit.Activations({"resid_post.1": x}, acts.token_ids, acts.doc, acts.pos)

    monkeypatch.setattr(tiny_llama, "activations", with_sink)
    cache = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c",
                                     shard_tokens=100, docs_per_step=8, progress=False)
    direct = real(TEXTS, "resid_post.1", progress=False)
    assert cache.n_dropped == 3 and cache.n_tokens == len(direct) - 3  # 24 texts, 8 per call
    assert "dropped=3 outlier-norm tokens" in repr(cache)
    kept = ~(torch.isin(direct.doc, torch.tensor([0, 8, 16])) & (direct.pos == 3))
    torch.testing.assert_close(cache.load(), direct["resid_post.1"][kept])
    everything = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "all",
                                          docs_per_step=8, max_norm_ratio=None, progress=False)
    assert everything.n_dropped == 0 and everything.n_tokens == len(direct)
    with pytest.raises(SaekitError, match="max_norm_ratio=0.5 would drop ordinary tokens"):
        saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "x", max_norm_ratio=0.5)


def test_iter_batches_shuffles_covers_and_resumes(tiny_llama: saekit.Model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c",
                                     shard_tokens=100, docs_per_step=4, progress=False)
    all_rows = cache.load()
    batches = list(cache.iter_batches(16, seed=1))
    assert len(batches) == cache.n_tokens // 16
    got = torch.cat(batches)
    assert not torch.equal(got, all_rows[: len(got)])  # shuffled
    # every returned row is a cached row, none twice
    idx = torch.cdist(got, all_rows).argmin(1)
    assert idx.unique().numel() == len(got)
    for start in (0, 3, 7, len(batches) - 1):
        resumed = list(cache.iter_batches(16, seed=1, start=start))
        assert len(resumed) == len(batches) - start
        torch.testing.assert_close(torch.cat(resumed), torch.cat(batches[start:]))
    ordered = torch.cat(list(cache.iter_batches(16, shuffle=False)))
    torch.testing.assert_close(ordered, all_rows[: len(ordered)])


def test_interrupted_caching_resumes(tiny_llama: saekit.Model, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import saekit._cache as cache_mod

    calls = {"n": 0}
    real = cache_mod._flush

    def crash_on_third(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(*a, **k)

    monkeypatch.setattr(cache_mod, "_flush", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c",
                                 shard_tokens=100, docs_per_step=4, progress=False)
    partial = saekit.ActivationCache(tmp_path / "c")
    assert not partial.complete and len(partial.meta["shards"]) == 2
    monkeypatch.setattr(cache_mod, "_flush", real)
    done = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c",
                                    shard_tokens=100, docs_per_step=4, progress=False)
    direct = tiny_llama.activations(TEXTS, "resid_post.1", progress=False)
    torch.testing.assert_close(done.load(), direct["resid_post.1"])
    assert not [f.name for f in (tmp_path / "c").iterdir() if f.name.startswith(".")]  # no temporaries


def test_cache_from_other_texts_refused(tiny_llama: saekit.Model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    saekit.cache_activations(tiny_llama, TEXTS[:4], "resid_post.1", tmp_path / "c", progress=False)
    with pytest.raises(SaekitError, match="other texts or settings"):
        saekit.cache_activations(tiny_llama, TEXTS[:5], "resid_post.1", tmp_path / "c", progress=False)


def test_missing_and_corrupt_cache(tiny_llama: saekit.Model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError, match="No activation cache"):
        saekit.ActivationCache(tmp_path / "nothing")
    cache = saekit.cache_activations(tiny_llama, TEXTS[:4], "resid_post.1", tmp_path / "c", progress=False)
    shard = tmp_path / "c" / cache.meta["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:50])
    with pytest.raises(FormatError, match="truncated or corrupt.*cache_activations"):
        cache.load()
    assert json.loads((tmp_path / "c" / "meta.json").read_text())["complete"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_broken_shard_is_recomputed_from_there_on(tiny_llama: saekit.Model, tmp_path, caplog, damage) -> None:  # type: ignore[no-untyped-def]
    kw = {"shard_tokens": 100, "docs_per_step": 4, "progress": False}
    cache = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c", **kw)
    ref = cache.load()
    shards = [tmp_path / "c" / s["file"] for s in cache.meta["shards"]]
    assert len(shards) >= 4 and all(len(s["sha256"]) == 64 for s in cache.meta["shards"])
    first = shards[0].stat().st_ino, shards[0].stat().st_mtime_ns
    data = shards[2].read_bytes()
    shards[2].write_bytes(data[:-40] if damage == "truncate" else data[:-8] + bytes(8))
    with pytest.raises(FormatError, match=r"shard_00002.*(truncated|corrupt).*same arguments"):
        saekit.ActivationCache(tmp_path / "c").load()  # a reader refuses it, saying how to repair
    with caplog.at_level("WARNING", logger="saekit"):
        again = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c", **kw)
    assert "shard_00002.safetensors" in caplog.text and "recomputing from text" in caplog.text
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()
    assert torch.equal(again.load(), ref) and again.complete
    assert again.meta["shards"] == cache.meta["shards"]  # bit-identical: same sizes and hashes
    assert (shards[0].stat().st_ino, shards[0].stat().st_mtime_ns) == first  # intact shards kept


@pytest.mark.parametrize("damage", [b"", b'{"version": 1, "mod', b"[1, 2]"])
def test_broken_meta_is_recomputed(tiny_llama: saekit.Model, tmp_path, caplog, damage) -> None:  # type: ignore[no-untyped-def]
    kw = {"shard_tokens": 100, "docs_per_step": 4, "progress": False}
    ref = saekit.cache_activations(tiny_llama, TEXTS[:8], "resid_post.1", tmp_path / "c", **kw).load()
    (tmp_path / "c" / "meta.json").write_bytes(damage)
    with pytest.raises(FormatError, match=r"meta.json.*same arguments"):
        saekit.ActivationCache(tmp_path / "c")  # not a JSONDecodeError
    with caplog.at_level("WARNING", logger="saekit"):
        again = saekit.cache_activations(tiny_llama, TEXTS[:8], "resid_post.1", tmp_path / "c", **kw)
    assert "is broken" in caplog.text and "recomputing it" in caplog.text
    assert torch.equal(again.load(), ref)
    names = sorted(f.name for f in (tmp_path / "c").iterdir())
    assert names == sorted(["meta.json", *(s["file"] for s in again.meta["shards"])])


def test_saes_trained_from_a_cache_record_model_and_site(tiny_llama: saekit.Model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c", progress=False)
    cfg = saekit.TrainConfig(batch_size=32, steps=3, k=4, device="cpu")
    sae = saekit.train_saes(cache, [64], cfg, progress=False).saes[0]
    assert (sae.cfg.site, sae.cfg.model_name) == ("resid_post.1", tiny_llama.name)
    saekit.evaluate(tiny_llama, [sae], TEXTS[:2], progress=False)  # usable as is


def test_older_cache_loads_and_is_repaired(tiny_llama: saekit.Model, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    kw = {"shard_tokens": 100, "docs_per_step": 4, "progress": False}
    ref = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c", **kw).load()
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    meta["shards"] = [{"file": s["file"], "n": s["n"]} for s in meta["shards"]]  # no sizes nor hashes
    (tmp_path / "c" / "meta.json").write_text(json.dumps(meta))
    assert torch.equal(saekit.ActivationCache(tmp_path / "c").load(), ref)
    shard = tmp_path / "c" / meta["shards"][1]["file"]
    shard.write_bytes(shard.read_bytes()[:-30])
    with pytest.raises(FormatError, match="shard_00001.*unreadable.*same arguments"):
        saekit.ActivationCache(tmp_path / "c").load()
    with caplog.at_level("WARNING", logger="saekit"):
        again = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "c", **kw)
    assert "recomputing from text 0" in caplog.text  # no resume points recorded: all of it
    assert torch.equal(again.load(), ref) and all("sha256" in s for s in again.meta["shards"])
