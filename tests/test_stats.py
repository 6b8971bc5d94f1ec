"""The statistics pass against brute force on tiny corpora, a planted feature, and files."""

from __future__ import annotations

import json
import subprocess
import sys

import _tiny
import numpy as np
import pandas as pd
import pytest
import torch

import saekit
from saekit.activations import Activations
from saekit.analysis._accumulate import HIST_BINS, HIST_LO, FlatBatch, SAEAccumulator
from saekit.analysis._stats_pass import settings_from
from saekit.analysis._stats_view import peak_label
from saekit.analysis.stats import FeatureStats, feature_stats, feature_stats_from_activations
from saekit.errors import CompatibilityError, FormatError, SaekitError, SiteError
from saekit.ids import FeatureRef
from saekit.sae import ReLUSAE, SAEConfig, TopKSAE, init_weights

D_IN, D_SAE = 6, 12


def relu_sae(seed: int = 0, site: str = "") -> ReLUSAE:
    """A random ReLU SAE whose features fire on roughly a third of random inputs."""
    sae = init_weights(ReLUSAE(SAEConfig(d_in=D_IN, d_sae=D_SAE, site=site)), seed=seed, decoder_norm=1.0)
    with torch.no_grad():
        sae.b_enc.fill_(-0.4)
    return sae


def stream(n_docs: int = 12, doc_len: int = 15, docs_per_batch: int = 4, seed: int = 0) -> list[Activations]:
    """Random activations for ``n_docs`` documents, whole documents per batch."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n_docs, docs_per_batch):
        docs = torch.arange(start, min(start + docs_per_batch, n_docs))
        doc = docs.repeat_interleave(doc_len)
        pos = torch.arange(doc_len).repeat(len(docs)) + 1  # position 0 was BOS, dropped
        x = torch.randn(len(doc), D_IN, generator=gen)
        tok = torch.randint(3, 50, (len(doc),), generator=gen)
        out.append(Activations({"s": x}, tok, doc, pos))
    return out


def reference(batches: list[Activations], sae: ReLUSAE) -> tuple[torch.Tensor, Activations]:
    allb = Activations.concat(batches)
    with torch.no_grad():
        return sae.encode(allb["s"]), allb  # codes [n, d_sae]


def window(allb: Activations, codes: torch.Tensor, f: int, doc: int, pos: int, left: int, right: int):
    sel = (allb.doc == doc) & (allb.pos >= pos - left) & (allb.pos <= pos + right)
    return allb.token_ids[sel].tolist(), codes[sel, f].numpy()


# ----- against brute force ---------------------------------------------------------------
def test_summary_equals_brute_force() -> None:
    batches, sae = stream(), relu_sae()
    codes, _ = reference(batches, sae)
    stats = feature_stats_from_activations(batches, sae, k=3)
    s = stats.summary
    active = (codes > 0).numpy()
    assert len(s) == D_SAE and stats.n_tokens == codes.shape[0] == 180
    np.testing.assert_array_equal(s["n_active"], active.sum(0))
    np.testing.assert_allclose(s["density"], active.mean(0))
    np.testing.assert_allclose(s["max_act"], codes.max(0).values.numpy(), rtol=1e-6)
    np.testing.assert_allclose(s["mean_act"], codes.numpy().mean(0), rtol=1e-5)
    np.testing.assert_allclose(s["mean_active_act"], codes.numpy().sum(0) / active.sum(0), rtol=1e-5)
    assert 0 < s["density"].min() and s["density"].max() < 0.9  # a real mix, not all/nothing


def test_top_k_and_windows_equal_brute_force() -> None:
    batches, sae = stream(), relu_sae()
    codes, allb = reference(batches, sae)
    k, (left, right) = 4, (3, 2)
    stats = feature_stats_from_activations(batches, sae, k=k, context=(left, right))
    for f in range(D_SAE):
        col = codes[:, f]
        n = min(k, int((col > 0).sum()))
        vals, idx = col.topk(n)
        top = stats.top_examples(0, f)
        np.testing.assert_allclose(top["activation"], vals.numpy(), rtol=1e-6)
        want = list(zip(allb.doc[idx].tolist(), allb.pos[idx].tolist(), strict=True))
        assert list(zip(top["doc"], top["pos"], strict=True)) == want
        for e in top["example"]:
            ex = stats.example(e)
            tok, act = window(allb, codes, f, ex.doc, ex.pos, left, right)
            assert ex.token_ids.tolist() == tok
            np.testing.assert_allclose(ex.acts, act, rtol=1e-6)
            assert ex.acts[ex.max_index] == pytest.approx(ex.activation)


def test_histogram_counts_every_active_token_in_its_log_bin() -> None:
    batches, sae = stream(), relu_sae()
    codes, _ = reference(batches, sae)
    stats = feature_stats_from_activations(batches, sae)
    h = stats.histograms
    for f in range(D_SAE):
        vals = codes[:, f][codes[:, f] > 0].numpy()
        bins = np.clip(np.floor((np.log10(vals) - HIST_LO) / 0.05), 0, HIST_BINS - 1).astype(int)
        mine = h[h["feature"] == f]
        want = pd.Series(bins).value_counts().sort_index()
        assert mine["bin"].tolist() == want.index.tolist()
        assert mine["count"].tolist() == want.tolist()
    row = h.iloc[0]
    assert row["log10_hi"] - row["log10_lo"] == pytest.approx(0.05)


def test_quantile_examples_lie_in_their_bins() -> None:
    batches, sae = stream(n_docs=24, seed=3), relu_sae(1)
    codes, allb = reference(batches, sae)
    q, m = 4, 3
    stats = feature_stats_from_activations(batches, sae, n_quantiles=q, examples_per_quantile=m)
    ex = stats.examples[stats.examples["kind"] == "quantile"]
    top = stats.summary.set_index("feature")["max_act"]
    width = top[ex["feature"]].to_numpy() / q
    assert (ex["activation"].to_numpy() >= ex["bin"].to_numpy() * width * (1 - 1e-6)).all()
    assert (ex["activation"].to_numpy() <= (ex["bin"].to_numpy() + 1) * width * (1 + 1e-6)).all()
    assert ex.groupby(["feature", "bin"]).size().max() <= m
    assert not ex.duplicated(["feature", "doc", "pos"]).any()  # distinct tokens
    key = set(zip(allb.doc.tolist(), allb.pos.tolist(), strict=True))
    assert set(zip(ex["doc"], ex["pos"], strict=True)) <= key


def test_quantile_counts_exact_when_max_is_in_first_batch() -> None:
    batches, sae = stream(n_docs=16, seed=5), relu_sae(2)
    first = batches[0]
    peak = first["s"][0] * 0 + 40 * sae.W_enc[:, 0].detach() / sae.W_enc[:, 0].norm()
    first.acts["s"][0] = peak  # feature 0's global max is now in the first batch
    codes, _ = reference(batches, sae)
    q, m = 5, 2
    stats = feature_stats_from_activations(batches, sae, n_quantiles=q, examples_per_quantile=m)
    col = codes[:, 0][codes[:, 0] > 0].numpy()
    assert col.max() == pytest.approx(codes[0, 0].item())
    want = np.bincount(np.minimum((col / col.max() * q).astype(int), q - 1), minlength=q)
    got = stats.examples.query("feature == 0 and kind == 'quantile'").groupby("bin").size()
    assert [int(got.get(b, 0)) for b in range(q)] == np.minimum(want, m).tolist()


def test_random_examples_are_uniform_over_active_tokens() -> None:
    # One feature active on 40 tokens in 4 batches; 3 kept: each token's chance is 3/40.
    settings = settings_from(1, 1, 1, 3, (0, 0))
    codes = torch.rand(4, 10, 1) + 0.1
    batches = [FlatBatch(torch.zeros(10, dtype=torch.long), torch.full((10,), b), torch.arange(10))
               for b in range(4)]
    runs, hits = 400, np.zeros((4, 10))
    for seed in range(runs):
        acc = SAEAccumulator(1, settings, seed, torch.device("cpu"))
        for b in range(4):
            acc.update(codes[b], batches[b])
        kept = acc.random.fields
        assert torch.isfinite(acc.random.key).all()
        np.add.at(hits, (kept["doc"][0].numpy(), kept["pos"][0].numpy()), 1)
    expected = runs * 3 / 40
    chi2 = ((hits - expected) ** 2 / expected).sum()
    assert hits.sum() == 3 * runs
    assert chi2 < 72  # 99.9% point of chi-square with 39 degrees of freedom


def test_same_seed_same_examples_other_seed_other_sample() -> None:
    batches, sae = stream(), relu_sae()
    a = feature_stats_from_activations(batches, sae, seed=1)
    b = feature_stats_from_activations(batches, sae, seed=1)
    c = feature_stats_from_activations(batches, sae, seed=2)
    pd.testing.assert_frame_equal(a.examples, b.examples)
    rand = "kind == 'random'"
    assert not a.examples.query(rand)[["doc", "pos"]].equals(c.examples.query(rand)[["doc", "pos"]])


# ----- memory ----------------------------------------------------------------------------
def test_state_and_result_sizes_do_not_grow_with_the_corpus() -> None:
    sae = relu_sae()
    settings = settings_from(3, 4, 2, 2, (3, 2))
    sizes = []
    for n_docs in (4, 40):
        acc = SAEAccumulator(D_SAE, settings, 0, torch.device("cpu"))
        for b in stream(n_docs=n_docs, seed=n_docs):
            with torch.no_grad():
                acc.update(sae.encode(b["s"]), FlatBatch(b.token_ids, b.doc, b.pos))
        tensors = [v for v in vars(acc).values() if isinstance(v, torch.Tensor)]
        for kept in (acc.top, acc.quantile, acc.random):
            tensors += [kept.key, *kept.fields.values()]
        sizes.append((acc.nbytes(), sum(t.numel() * t.element_size() for t in tensors), acc.n_tokens))
    assert sizes[0][:2] == sizes[1][:2] and sizes[1][2] == 10 * sizes[0][2]
    big = feature_stats_from_activations(stream(n_docs=40), sae, k=3, n_quantiles=4,
                                         examples_per_quantile=2, n_random=2)
    assert len(big.examples) <= D_SAE * (3 + 4 * 2 + 2)


# ----- the model path: planted feature, brute force, special tokens ------------------------
def planted_sae(model: saekit.Model, token: str, corpus: list[str] = _tiny.CORPUS) -> tuple[ReLUSAE, int]:
    """Feature 0 fires only on ``token`` at resid_pre.0 (token embeddings in Llama)."""
    acts = model.activations(corpus, ["resid_pre.0"], progress=False)
    tid = model.to_tokens(token)[-1]
    assert model.to_strings([tid]) == [token]
    direction = acts["resid_pre.0"][acts.token_ids == tid][0]
    direction = direction / direction.norm()
    proj = acts["resid_pre.0"] @ direction
    on, off = proj[acts.token_ids == tid].min(), proj[acts.token_ids != tid].max()
    assert on > off + 1e-3
    sae = init_weights(ReLUSAE(SAEConfig(d_in=model.d_model, d_sae=8, site="resid_pre.0")), seed=1)
    with torch.no_grad():
        sae.W_enc[:, 0] = direction
        sae.b_enc[0] = -(on + off) / 2
    return sae, tid


def test_planted_feature_top_examples_find_its_token(tiny_llama) -> None:  # type: ignore[no-untyped-def]
    sae, tid = planted_sae(tiny_llama, " capital")
    stats = feature_stats(tiny_llama, {"planted": sae}, _tiny.CORPUS, k=5, context=(4, 1), progress=False)
    n_capital = sum(tiny_llama.to_tokens(t).count(tid) for t in _tiny.CORPUS)
    top = stats.top_examples("planted", 0)
    assert len(top) == n_capital == 2
    assert all("« capital»" in t for t in top["text"])
    assert top["text"][0].endswith("« capital» of")  # 4 tokens left, 1 right
    view = stats.feature("planted", 0)
    assert view.n_active == 2 and view.density == pytest.approx(2 / stats.n_tokens)
    assert [e.tokens[e.max_index] for e in view.random] == [" capital"] * 2
    tok = stats.example_tokens
    mine = tok[tok["example"].isin(top["example"]) & tok["is_max"]]
    assert mine["token"].tolist() == [" capital"] * 2 and (mine["token_id"] == tid).all()


def test_model_path_equals_brute_force_with_shared_pass(tiny_model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    corpus = _tiny.CORPUS * 3
    d = tiny_model.d_model
    saes = {
        "a": init_weights(TopKSAE(SAEConfig(d_in=d, d_sae=16, k=3, site="resid_post.1")), seed=0),
        "b": init_weights(TopKSAE(SAEConfig(d_in=d, d_sae=24, k=2, site="resid_post.1")), seed=1),
        "c": init_weights(TopKSAE(SAEConfig(d_in=d, d_sae=16, k=4, site="mlp_out.2")), seed=2),
    }
    calls = []
    real_run = tiny_model.run
    monkeypatch.setattr(tiny_model, "run", lambda *a, **kw: calls.append(kw["read"]) or real_run(*a, **kw))
    stats = feature_stats(tiny_model, saes, corpus, k=3, batch_size=4, progress=False)
    monkeypatch.undo()
    n_batches = len(list(tiny_model.batches(corpus, batch_size=4)))
    assert len(calls) == n_batches and all(sorted(r) == ["mlp_out.2", "resid_post.1"] for r in calls)
    acts = tiny_model.activations(corpus, ["resid_post.1", "mlp_out.2"], progress=False)
    assert stats.n_tokens == len(acts) and 0 not in set(acts.token_ids.tolist())  # no BOS
    for name, sae in saes.items():
        with torch.no_grad():
            codes = sae.encode(acts[sae.cfg.site])
        s = stats.summary[stats.summary["sae"] == name]
        np.testing.assert_allclose(s["density"], (codes > 0).float().mean(0).numpy(), rtol=1e-6)
        np.testing.assert_allclose(s["max_act"], codes.max(0).values.numpy(), rtol=1e-5)
        f = int(s["n_active"].to_numpy().argmax())
        top = stats.top_examples(name, f)
        np.testing.assert_allclose(top["activation"], codes[:, f].topk(3).values.numpy(), rtol=1e-5)


def test_special_tokens_excluded_by_default_and_kept_on_request(tiny_llama) -> None:  # type: ignore[no-untyped-def]
    sae = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, site="resid_post.0")), seed=0)
    plain = feature_stats(tiny_llama, sae, _tiny.CORPUS, progress=False)
    kept = feature_stats(tiny_llama, sae, _tiny.CORPUS, keep_special=True, progress=False)
    n_plain = sum(len(tiny_llama.to_tokens(t)) - 1 for t in _tiny.CORPUS)
    assert plain.n_tokens == n_plain and kept.n_tokens == n_plain + len(_tiny.CORPUS)
    assert 0 not in plain.vocab and (plain.window_tokens != 0).all()
    assert (plain.examples["pos"] >= 1).all()
    assert plain.summary["n_active"].sum() == 4 * n_plain  # TopK: exactly k per token


# ----- results: views, files, errors -------------------------------------------------------
@pytest.fixture(scope="module")
def small_stats() -> FeatureStats:
    names = lambda ids: [f"t{i}" for i in ids]  # noqa: E731
    return feature_stats_from_activations(stream(), {"x": relu_sae()}, token_strings=names)


def test_feature_view_labels_and_refs(small_stats: FeatureStats) -> None:
    view = small_stats.feature("x", 2)
    assert view.top[0].activation == pytest.approx(view.max_act)
    assert len(view.quantiles) == 10 and view.quantiles[-1].hi == pytest.approx(view.max_act)
    assert view.hist_counts.sum() == view.n_active and len(view.hist_edges) == len(view.hist_counts) + 1
    text = repr(view)
    assert text.startswith("Feature 2 of x: density") and "Top examples:" in text
    assert view.refs == (FeatureRef("x", 2),) and view.label == peak_label(view.top, 4)
    assert view.frame.query("kind == 'top'")["text"].tolist() == [e.text() for e in view.top]
    assert small_stats.feature(FeatureRef("x", 2)).max_act == view.max_act
    labels = small_stats.labels(4)
    assert labels[FeatureRef("x", 2)] == view.label  # one label rule for cards and maps
    np.testing.assert_allclose(small_stats.densities([FeatureRef("x", 2), FeatureRef("nope", 0)]),
                               [view.density, 0.0])
    snip = view.top[0].snippet(1, 0)
    assert snip.tokens[snip.max_index] == view.top[0].tokens[view.top[0].max_index] and len(snip.tokens) <= 2
    dens = small_stats.density_histogram("x", n_bins=5)
    assert dens["count"].sum() == (small_stats.summary["n_active"] > 0).sum()
    assert repr(small_stats).startswith("FeatureStats over 180 tokens from 12 texts")


def test_peak_tokens_equal_the_examples_modal_token(small_stats: FeatureStats) -> None:
    peaks = small_stats.peak_tokens("x")
    assert list(peaks.columns) == ["token", "share", "n", "density"] and peaks.index.name == "feature"
    for f in peaks.index[:5]:
        view = small_stats.feature("x", int(f))
        words = [e.tokens[e.max_index].strip().lower() for e in view.top]
        best = max(set(words), key=words.count)
        row = peaks.loc[f]
        assert row["n"] == len(words) and row["share"] == pytest.approx(words.count(best) / len(words))
        assert words.count(row["token"]) == words.count(best)  # a most common token (ties: any)
        assert row["density"] == pytest.approx(view.density)
    never = small_stats.summary.query("sae == 'x' and n_active == 0")["feature"]
    assert not set(never) & set(peaks.index)


def test_save_load_round_trip(small_stats: FeatureStats, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = small_stats.save(tmp_path / "stats")
    assert sorted(p.name for p in path.iterdir()) == [
        "examples.parquet", "histograms.parquet", "manifest.json", "stats.json", "summary.parquet",
        "windows.safetensors"]
    files = json.loads((path / "manifest.json").read_text())["files"]
    assert sorted(files) == sorted(p.name for p in path.iterdir() if p.name != "manifest.json")
    assert all(len(e["sha256"]) == 64 and e["size"] == (path / n).stat().st_size for n, e in files.items())
    back = FeatureStats.load(path)
    for name in ("summary", "examples", "histograms"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(small_stats, name))
    np.testing.assert_array_equal(back.window_tokens, small_stats.window_tokens)
    np.testing.assert_array_equal(back.window_acts, small_stats.window_acts)
    assert back.vocab == small_stats.vocab and back.info == small_stats.info
    assert repr(back.feature("x", 3)) == repr(small_stats.feature("x", 3))
    small_stats.save(path)  # overwriting in place works
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_load_rejects_foreign_or_damaged_folders(small_stats: FeatureStats, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError, match="not a saved FeatureStats"):
        FeatureStats.load(tmp_path)
    path = small_stats.save(tmp_path / "s")
    meta = json.loads((path / "stats.json").read_text())
    (path / "stats.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(FormatError, match="damaged.*(truncated|hash)"):  # the manifest notices the edit
        FeatureStats.load(path)
    from saekit import _storage

    foreign = json.dumps({**meta, "format": "other"})
    _storage.write_folder(path, {"stats.json": lambda p: p.write_text(foreign)})
    with pytest.raises(FormatError, match="expected 'saekit.feature_stats'"):  # intact, but foreign
        FeatureStats.load(path)
    (path / "manifest.json").unlink()
    with pytest.raises(FormatError, match="not a saved FeatureStats"):
        FeatureStats.load(path)


@pytest.mark.parametrize("name", ["summary.parquet", "examples.parquet", "windows.safetensors", "stats.json",
                                  "manifest.json"])
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_save_is_a_format_error_not_a_library_error(small_stats: FeatureStats, tmp_path, name,
                                                            damage) -> None:  # type: ignore[no-untyped-def]
    path = small_stats.save(tmp_path / "s")
    f = path / name
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:-9] + bytes(9))
    with pytest.raises(FormatError, match=r"s\b.*(truncated|corrupt|hash|unreadable)") as err:
        FeatureStats.load(path)
    assert "stats.save" in str(err.value) or "manifest" in str(err.value)


def test_legacy_save_without_manifest_still_loads_and_damage_is_explained(small_stats: FeatureStats,
                                                                          tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = small_stats.save(tmp_path / "s")
    meta = (path / "stats.json").read_text()
    (path / "stats.json").unlink()
    (path / "manifest.json").write_text(meta)  # the layout before manifests of hashes
    back = FeatureStats.load(path)
    pd.testing.assert_frame_equal(back.summary, small_stats.summary)
    pq = path / "summary.parquet"
    pq.write_bytes(pq.read_bytes()[:40])
    with pytest.raises(FormatError, match="truncated or corrupt.*stats.save") as err:
        FeatureStats.load(path)
    assert "ArrowInvalid" in str(err.value)  # named, but wrapped: what, where, fix
    (path / "windows.safetensors").unlink()
    with pytest.raises(FormatError, match="lacks"):
        FeatureStats.load(path)


def test_failed_save_keeps_the_previous_save(small_stats: FeatureStats, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = small_stats.save(tmp_path / "s")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    real = pd.DataFrame.to_parquet

    def disk_full(self, p, **kw):  # type: ignore[no-untyped-def]
        real(self, p, **kw)
        with open(p, "r+b") as f:
            f.truncate(10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(OSError, match="No space"):
        small_stats.save(path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporaries left
    FeatureStats.load(path)


def test_bad_lookups_and_settings(small_stats: FeatureStats) -> None:
    with pytest.raises(SaekitError, match=r"out of range .* \[0, 11\]"):
        small_stats.feature("x", 12)
    with pytest.raises(SaekitError, match="out of range"):
        small_stats.top_examples("x", -1)
    with pytest.raises(SaekitError, match=r"No SAE 'y'.*\['x'\]"):
        small_stats.feature("y", 0)
    for kw, msg in [({"k": 0}, "k must be"), ({"context": (2,)}, "context must be"),
                    ({"n_random": -1}, "n_random must be")]:
        with pytest.raises(SaekitError, match=msg):
            feature_stats_from_activations(stream(), relu_sae(), **kw)
    with pytest.raises(CompatibilityError, match="reads site 'other'"):
        feature_stats_from_activations(stream(), relu_sae(site="other"))


def test_sae_that_does_not_fit_the_model(tiny_llama) -> None:  # type: ignore[no-untyped-def]
    wide = TopKSAE(SAEConfig(d_in=64, d_sae=8, k=2, site="resid_post.0"))
    with pytest.raises(CompatibilityError, match="expects d_in=64 but site 'resid_post.0'.*width 32"):
        feature_stats(tiny_llama, wide, _tiny.CORPUS, progress=False)
    with pytest.raises(CompatibilityError, match="cfg.site is empty"):
        feature_stats(tiny_llama, TopKSAE(SAEConfig(d_in=32, d_sae=8, k=2)), _tiny.CORPUS)
    with pytest.raises(SiteError):
        feature_stats(tiny_llama, TopKSAE(SAEConfig(d_in=32, d_sae=8, k=2, site="resid_post.9")), "x y")


def test_analysis_imports_no_view_code() -> None:
    code = ("import sys, saekit.analysis.stats, saekit.analysis.geometry; "
            "bad = {'plotly', 'anywidget', 'ipywidgets', 'umap'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_planted_feature_on_the_default_model(default_model) -> None:  # type: ignore[no-untyped-def]
    corpus = saekit.default_corpus(24)
    sae, tid = planted_sae(default_model, " the", corpus)
    stats = feature_stats(default_model, {"the": sae}, corpus, k=10, progress=False)
    ids = [i for t in corpus for i in default_model.to_tokens(t)[1:]]  # without BOS
    assert stats.n_tokens == len(ids) and stats.summary["n_active"][0] == ids.count(tid) > 10
    view = stats.feature("the", 0)
    assert len(view.top) == 10 and {e.tokens[e.max_index] for e in view.top} == {" the"}
    assert {e.tokens[e.max_index] for q in view.quantiles for e in q.examples} == {" the"}
