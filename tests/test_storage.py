"""Storage under faults: a full disk never costs the previous file, a kill never leaves junk.

Every writer of saekit runs into a genuinely full disk in two ways (the parameter ids say
which ran):

- ``tmpfs-ENOSPC``: a small tmpfs is mounted and filled so that only half of what the new
  version needs is free; the writer fails with ENOSPC part-way. Skipped, with the reason,
  where mounting is not permitted.
- ``rlimit-EFBIG``: the file-size limit (``RLIMIT_FSIZE``) is set to half of the largest
  file the new version writes; the writer's own ``write`` fails with EFBIG part-way (this
  reaches native writers too: safetensors, pyarrow, numpy).

Each case writes a previous version, fails to write a new one, checks that the previous
one is byte-identical and still loads, that no temporary is left, and that the new
version is written once there is space again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _tiny
import numpy as np
import pandas as pd
import pytest
import torch

import saekit
from saekit import _storage as st
from saekit.activations import Activations
from saekit.analysis.stats import FeatureStats, feature_stats_from_activations
from saekit.errors import FormatError
from saekit.sae import ReLUSAE, SAEConfig, TopKSAE, init_weights, load_sae, save_sae

FULL = (errno.ENOSPC, errno.EFBIG)


# ----- a full disk, two ways ---------------------------------------------------------------
@dataclass
class Disk:
    """Where to write, and how to make it full."""

    kind: str
    root: Path

    @contextlib.contextmanager
    def full(self, need: int) -> Iterator[None]:
        """Only ``need // 2`` bytes can be written (per file, or in all) inside the block."""
        room = max(need // 2, 4096)
        if self.kind == "tmpfs":
            filler = self.root.parent / f"filler-{uuid.uuid4().hex[:6]}"
            vfs = os.statvfs(self.root)
            with contextlib.suppress(OSError), open(filler, "wb") as f:
                left = vfs.f_bavail * vfs.f_frsize - room
                while left > 0:
                    left -= f.write(b"\0" * min(left, 1 << 20))
            try:
                yield
            finally:
                filler.unlink()
            return
        old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, old_limit[1]))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_handler)


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory) -> Iterator[Path | None]:  # type: ignore[no-untyped-def]
    mnt = tmp_path_factory.mktemp("tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        yield None
        return
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture(params=["tmpfs-ENOSPC", "rlimit-EFBIG"])
def disk(request, tmpfs, tmp_path) -> Iterator[Disk]:  # type: ignore[no-untyped-def]
    if request.param == "tmpfs-ENOSPC":
        if tmpfs is None:
            pytest.skip("mount -t tmpfs is not permitted here; the rlimit-EFBIG variant covers this writer")
        root = tmpfs / uuid.uuid4().hex[:8]
        root.mkdir()
        yield Disk("tmpfs", root)
        shutil.rmtree(root, ignore_errors=True)
    else:
        root = tmp_path / "disk"
        root.mkdir()
        yield Disk("rlimit", root)


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def _temporaries(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.name.startswith(".")]


@dataclass
class Case:
    """One writer: ``old`` writes the previous version under a root, ``new`` the next one."""

    old: Callable[[Path], Any]
    new: Callable[[Path], Any]
    check_old: Callable[[Path], None]
    check_new: Callable[[Path], None]
    unchanged: bool = True  # the previous files stay byte-identical (not so for a resumable cache)


def run_case(case: Case, disk: Disk, scratch: Path) -> OSError:
    """Measure what ``new`` writes, then write it on a disk with half that room."""
    case.old(scratch)
    before = _snapshot(scratch)
    case.new(scratch)
    after = _snapshot(scratch)
    need = max(v[0] for k, v in after.items() if before.get(k, (None, None))[:2] != v[:2])
    assert need >= 12_000, f"the case writes too little ({need} bytes) to fill a disk meaningfully"

    case.old(disk.root)
    previous = _snapshot(disk.root)
    with disk.full(need), pytest.raises(OSError) as failed:
        case.new(disk.root)
    err = failed.value
    assert err.errno in FULL, err
    assert not _temporaries(disk.root), "a failed write left temporaries behind"
    if case.unchanged:
        assert _snapshot(disk.root) == previous, "a failed write changed the previous version"
    case.check_old(disk.root)
    case.new(disk.root)  # room again: the new version goes in
    case.check_new(disk.root)
    assert not _temporaries(disk.root)
    return err


# ----- the writers -------------------------------------------------------------------------
def _sae(seed: int, d_sae: int = 512, site: str = "resid_post.1") -> ReLUSAE:
    return init_weights(ReLUSAE(SAEConfig(d_in=32, d_sae=d_sae, site=site)), seed=seed)


def _stats(seed: int, n_docs: int, d_sae: int = 64) -> FeatureStats:
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, n_docs, 8):
        docs = torch.arange(start, min(start + 8, n_docs))
        doc = docs.repeat_interleave(16)
        pos = torch.arange(16).repeat(len(docs)) + 1
        x = torch.randn(len(doc), 32, generator=gen)
        batches.append(Activations({"s": x}, torch.randint(3, 50, (len(doc),), generator=gen), doc, pos))
    sae = init_weights(ReLUSAE(SAEConfig(d_in=32, d_sae=d_sae, site="s")), seed=seed, decoder_norm=1.0)
    with torch.no_grad():
        sae.b_enc.fill_(-0.4)
    names = lambda ids: [f"t{i}" for i in ids]  # noqa: E731
    return feature_stats_from_activations(batches, {"x": sae}, token_strings=names)


def test_feature_stats_save_keeps_previous_save(disk: Disk, tmp_path: Path) -> None:
    old, new = _stats(0, 8), _stats(1, 64, d_sae=512)
    err = run_case(Case(
        old=lambda r: old.save(r / "stats"),
        new=lambda r: new.save(r / "stats"),
        check_old=lambda r: pd.testing.assert_frame_equal(FeatureStats.load(r / "stats").summary,
                                                          old.summary),
        check_new=lambda r: pd.testing.assert_frame_equal(FeatureStats.load(r / "stats").summary,
                                                          new.summary),
    ), disk, tmp_path / "scratch")
    assert any("previous version" in n and "intact" in n for n in getattr(err, "__notes__", []))


def test_save_sae_over_existing_folder_keeps_previous_sae(disk: Disk, tmp_path: Path) -> None:
    old, new = _sae(1), _sae(2)
    run_case(Case(
        old=lambda r: save_sae(old, r / "sae"),
        new=lambda r: save_sae(new, r / "sae"),
        check_old=lambda r: torch.testing.assert_close(load_sae(r / "sae").W_dec, old.W_dec, rtol=0, atol=0),
        check_new=lambda r: torch.testing.assert_close(load_sae(r / "sae").W_dec, new.W_dec, rtol=0, atol=0),
    ), disk, tmp_path / "scratch")


TEXTS = [f"{chr(65 + i)} {t}" for i, t in enumerate(_tiny.CORPUS * 6)]


def test_activation_cache_shards_and_meta_survive_and_resume(disk: Disk, tmp_path: Path, tiny_llama,
                                                             monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import saekit._cache as cache_mod

    kw = {"shard_tokens": 150, "docs_per_step": 4, "progress": False}
    reference = saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", tmp_path / "ref", **kw)

    def interrupted(root: Path) -> None:  # the previous version: a cache stopped after 2 shards
        real, calls = cache_mod._flush, []

        def stop_on_third(*a, **k):  # type: ignore[no-untyped-def]
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            real(*a, **k)

        monkeypatch.setattr(cache_mod, "_flush", stop_on_third)
        with pytest.raises(KeyboardInterrupt):
            saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", root / "c", **kw)
        monkeypatch.setattr(cache_mod, "_flush", real)

    def check_partial(root: Path) -> None:
        c = saekit.ActivationCache(root / "c")
        assert not c.complete and len(c.meta["shards"]) == 2
        torch.testing.assert_close(c.load(), reference.load()[: c.n_tokens], rtol=0, atol=0)

    def check_done(root: Path) -> None:
        c = saekit.ActivationCache(root / "c")
        assert c.complete and c.meta["shards"] == reference.meta["shards"]  # bit-identical shards
        assert torch.equal(c.load(), reference.load())

    run_case(Case(
        old=interrupted,
        new=lambda r: saekit.cache_activations(tiny_llama, TEXTS, "resid_post.1", r / "c", **kw),
        check_old=check_partial, check_new=check_done, unchanged=False,
    ), disk, tmp_path / "scratch")


def test_training_checkpoint_keeps_previous_and_resumes_exactly(disk: Disk, tmp_path: Path) -> None:
    from saekit.train._checkpoint import latest_checkpoint, load_checkpoint

    data = torch.randn(128 * 12, 32, generator=torch.Generator().manual_seed(0))
    cfg = saekit.TrainConfig(batch_size=128, k=4, lr=3e-3, steps=12, warmup_steps=2, log_every=2,
                             checkpoint_every=4, device="cpu")
    full = saekit.train_saes(data, [256], cfg, progress=False)

    def check_old(root: Path) -> None:
        ckpt = latest_checkpoint(root / "ck")
        assert ckpt is not None and ckpt.name == "step-00000004"
        meta, tensors = load_checkpoint(ckpt)
        assert meta["step"] == 4 and tensors

    def check_new(root: Path) -> None:
        resumed = saekit.train_saes(data, [256], cfg, checkpoint_dir=root / "ck", resume=True, progress=False)
        assert torch.equal(resumed.saes[0].W_dec, full.saes[0].W_dec)  # bit-identical to uninterrupted
        pd.testing.assert_frame_equal(resumed.history, full.history)

    run_case(Case(
        old=lambda r: saekit.train_saes(data, [256], cfg, checkpoint_dir=r / "ck", stop_at=4, progress=False),
        new=lambda r: saekit.train_saes(data, [256], cfg, checkpoint_dir=r / "ck", resume=True, stop_at=8,
                                        progress=False),
        check_old=check_old, check_new=check_new,
    ), disk, tmp_path / "scratch")


def _fake_umap(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    from saekit.analysis import _umap

    fits: list[int] = []

    def fit(points: np.ndarray, k: int, min_dist: float, seed: int) -> np.ndarray:
        fits.append(len(points))
        return np.stack([points[:, 0], points[:, 1]], 1).astype(np.float32)

    monkeypatch.setattr(_umap, "_fit", fit)
    monkeypatch.setattr(_umap, "_import_umap", lambda: type("umap", (), {"__version__": "test"}))
    return fits


def test_umap_cache_keeps_previous_entries(disk: Disk, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from saekit.analysis import umap_coords

    fits = _fake_umap(monkeypatch)
    a, b = torch.randn(3000, 8), torch.randn(3000, 8)

    def check(root: Path, w: torch.Tensor) -> None:
        for e in (root / "u").iterdir():
            st.verify(e)
        n_fits = len(fits)
        got = umap_coords(w, cache_dir=root / "u", progress=False)
        assert len(fits) == n_fits  # read from the cache, not fitted again
        unit = (w / w.norm(dim=1, keepdim=True)).numpy()
        np.testing.assert_allclose(got.frame["x"], unit[:, 0], rtol=1e-6)

    run_case(Case(
        old=lambda r: umap_coords(a, cache_dir=r / "u", progress=False),
        new=lambda r: umap_coords(b, cache_dir=r / "u", progress=False),
        check_old=lambda r: check(r, a), check_new=lambda r: check(r, b),
    ), disk, tmp_path / "scratch")


def _fake_conversion(monkeypatch, seed: list[int]) -> None:  # type: ignore[no-untyped-def]
    """The default model's conversion, with small files in place of 500 MB of weights."""
    from safetensors.torch import save_file

    from saekit import _loading

    def write(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps({"model_type": "llama", "seed": seed[0]}))
        save_file({"w": torch.randn(64, 256, generator=torch.Generator().manual_seed(seed[0]))},
                  str(folder / "model.safetensors"))
        (folder / "tokenizer.json").write_text("{}")

    monkeypatch.setattr(_loading, "_write_default_model", write)


def test_default_model_conversion_never_leaves_a_half_model(disk: Disk, tmp_path: Path, monkeypatch,
                                                            caplog) -> None:  # type: ignore[no-untyped-def]
    from saekit import _loading

    seed = [0]
    _fake_conversion(monkeypatch, seed)

    def at(root: Path) -> Path:
        monkeypatch.setenv("SAEKIT_CACHE", str(root / "cache"))
        return root / "cache" / "models" / _loading.DEFAULT_MODEL

    def old(root: Path) -> None:  # a converted model, whose weights later got truncated
        at(root)
        w = _loading.default_model_folder() / "model.safetensors"
        w.write_bytes(w.read_bytes()[:1000])

    def check_old(root: Path) -> None:
        with pytest.raises(FormatError, match="truncated"):
            st.verify(at(root))  # still the broken one: never swapped for a half-written one

    def new(root: Path) -> None:
        seed[0] = 1
        assert _loading.default_model_folder() == at(root)

    def check_new(root: Path) -> None:
        st.verify(at(root))
        assert json.loads((at(root) / "config.json").read_text())["seed"] == 1

    with caplog.at_level(logging.WARNING, logger="saekit"):
        run_case(Case(old=old, new=new, check_old=check_old, check_new=check_new), disk, tmp_path / "scratch")
    assert "the default model" in caplog.text and "recomputing it" in caplog.text


def _figure(n: int) -> Any:
    import plotly.graph_objects as go

    return go.Figure(go.Scatter(x=list(range(n)), y=list(range(n))), layout_title_text=f"figure-{n}")


def test_figure_export_keeps_previous_file(disk: Disk, tmp_path: Path) -> None:
    from saekit import figures

    def check(root: Path, n: int) -> None:
        text = (root / "fig.html").read_text()
        assert text.rstrip().endswith("</html>") and f"figure-{n}" in text

    run_case(Case(
        old=lambda r: figures.export(_figure(10), r / "fig.html"),
        new=lambda r: figures.export(_figure(20), r / "fig.html"),
        check_old=lambda r: check(r, 10), check_new=lambda r: check(r, 20),
    ), disk, tmp_path / "scratch")


def test_explorer_export_keeps_previous_pages(disk: Disk, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from _figure_cases import feature_view

    from saekit import _demo_outputs, explore
    from saekit.widgets import FeatureCard

    label = ["old"]

    def card(*a: Any, **k: Any) -> FeatureCard:
        view = dataclasses.replace(feature_view("x"), label=label[0])
        card = FeatureCard.from_result(view)
        card.features = lambda: [("x", 1)]  # type: ignore[method-assign]  # stands in for a splitting view
        return card

    for name in ("umap", "splitting", "highlight", "feature_card"):
        monkeypatch.setattr(explore, name, card)  # the views' computations are tested elsewhere
    monkeypatch.setattr(_demo_outputs, "match_features", lambda saes: None)
    stats = _stats(0, 32)
    saes = {"x": _sae(0, 64)}

    def write(root: Path, text: str) -> None:
        label[0] = text
        _demo_outputs.write_explorer(root / "explorer", None, saes, stats, ["a text"], n_cards=2)  # type: ignore[arg-type]

    def check(root: Path, text: str) -> None:
        pages = sorted((root / "explorer").rglob("*.html"))
        assert len(pages) >= 5 and (root / "explorer" / "index.html") in pages
        for p in pages:
            body = p.read_text()
            assert body.rstrip().endswith("</html>")
            assert p.name == "index.html" or text in body

    run_case(Case(old=lambda r: write(r, "old-label"), new=lambda r: write(r, "new-label"),
                  check_old=lambda r: check(r, "old-label"), check_new=lambda r: check(r, "new-label")),
             disk, tmp_path / "scratch")


# ----- kill -9: temporaries of a dead writer go at the next run ----------------------------
_CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from saekit import _storage as st
    target, mode = Path(sys.argv[1]), sys.argv[2]
    def slow(p):
        p.write_bytes(b"half of the new version")
        print("writing", flush=True)
        time.sleep(60)
    if mode == "file":
        st.atomic_write(target, slow)
    elif mode == "folder":
        st.write_folder(target, {"a.txt": slow})
    else:  # killed between the two renames of a folder swap
        real = os.replace
        def replace(a, b):
            real(a, b)
            if str(a).endswith(target.name) and ".old" in str(b):
                print("writing", flush=True)
                time.sleep(60)
        os.replace = replace
        st.write_folder(target, {"a.txt": lambda p: p.write_text("new")})
""")


@pytest.mark.parametrize("mode", ["file", "folder", "between-renames"])
def test_kill_9_mid_write_keeps_previous_and_next_run_cleans_up(tmp_path: Path, mode: str) -> None:
    target = tmp_path / ("x.txt" if mode == "file" else "f")
    if mode == "file":
        st.write_text(target, "old")
    else:
        st.write_folder(target, {"a.txt": lambda p: p.write_text("old")})
    env = {**os.environ, "PYTHONPATH": str(Path(saekit.__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(target), mode], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert left, "the killed writer should have left its temporary (that is what is cleaned)"
    assert st.clean_stale(tmp_path)  # what the next write into this folder does first
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert (target if mode == "file" else target / "a.txt").read_text() == "old"
    if mode != "file":
        st.verify(target)


def test_temporaries_of_older_versions_are_cleaned_once_old(tmp_path: Path) -> None:
    for name in (".tmp-abc123", ".tmp-step-00000004-77", ".sae.x1y2.tmp"):
        p = tmp_path / name
        p.mkdir() if "step" in name else p.write_text("x")
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / ".tmp-fresh"
    fresh.write_text("maybe being written by an older saekit right now")
    st.write_text(tmp_path / "y.txt", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-fresh", "y.txt"]


# ----- the storage module's own promises ---------------------------------------------------
def test_build_folder_manifest_covers_subfolders_and_swaps_whole(tmp_path: Path) -> None:
    def build(d: Path) -> None:
        (d / "sub").mkdir()
        (d / "sub" / "w.bin").write_bytes(b"1234")
        (d / "c.json").write_text("{}")

    st.build_folder(tmp_path / "m", build)
    files = json.loads((tmp_path / "m" / st.MANIFEST).read_text())["files"]
    assert sorted(files) == ["c.json", "sub/w.bin"] and files["sub/w.bin"]["size"] == 4
    (tmp_path / "m" / "sub" / "w.bin").write_bytes(b"12")
    with pytest.raises(FormatError, match=r"w.bin has 2 bytes.*truncated"):
        st.verify(tmp_path / "m")
    with pytest.raises(RuntimeError):
        st.build_folder(tmp_path / "m", lambda d: (_ for _ in ()).throw(RuntimeError("bug")))
    assert (tmp_path / "m" / "sub" / "w.bin").read_bytes() == b"12"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_write_folder_keeps_other_files_but_drops_named_ones(tmp_path: Path) -> None:
    st.write_folder(tmp_path / "f", {"a": lambda p: p.write_text("1"), "b": lambda p: p.write_text("2")})
    (tmp_path / "f" / "notes.txt").write_text("mine")
    st.write_folder(tmp_path / "f", {"a": lambda p: p.write_text("3")}, drop=("b",))
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["a", st.MANIFEST, "notes.txt"]
    st.verify(tmp_path / "f")


def test_folder_write_never_replaces_the_working_folder(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "work" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "deeper")
    for target in (Path("."), tmp_path / "work"):
        with pytest.raises(saekit.SaekitError, match="current working folder.*subfolder"):
            save_sae(_sae(0, 8), target)
    save_sae(_sae(0, 8), "my_sae")
    assert (tmp_path / "work" / "deeper" / "my_sae" / "cfg.json").is_file()


def test_write_checked_and_verify_file(tmp_path: Path) -> None:
    f = st.write_checked(tmp_path / "h.csv", lambda p: p.write_text("a,b\n1,2\n"))
    st.verify_file(f)
    assert st.side_manifest(f).name == "h.csv.manifest.json"
    f.write_text("a,b\n1,")
    with pytest.raises(FormatError, match="truncated"):
        st.verify_file(f)
    st.side_manifest(f).unlink()
    with pytest.raises(FormatError, match="missing"):
        st.verify_file(f)


def test_hashes_are_remembered_only_while_the_file_is_unchanged(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    st.write_folder(tmp_path / "f", {"a": lambda p: p.write_bytes(b"x" * 1000)})
    a = tmp_path / "f" / "a"
    calls: list[Path] = []
    real = st.file_hash
    monkeypatch.setattr(st, "file_hash", lambda p: calls.append(p) or real(p))
    st.verify(tmp_path / "f")
    st.verify(tmp_path / "f")
    assert len(calls) == 2  # just written: a same-size change could keep its mtime, so not remembered
    old = time.time_ns() - 10 * 10**9
    os.utime(a, ns=(old, old))
    for _ in range(3):
        st.verify(tmp_path / "f")
    assert len(calls) == 3  # settled: hashed once, then remembered
    a.write_bytes(b"y" * 1000)  # same size, new content, new mtime
    with pytest.raises(FormatError, match="hash"):
        st.verify(tmp_path / "f")
    assert len(calls) == 4


@pytest.mark.parametrize("what", ["json", "safetensors", "parquet", "npy"])
def test_reading_turns_library_errors_into_format_errors(tmp_path: Path, what: str) -> None:
    from safetensors.torch import load_file, save_file

    p = tmp_path / f"x.{what}"
    cut = lambda n: p.write_bytes(p.read_bytes()[:n])  # noqa: E731
    write, read = {
        "json": (lambda: p.write_text('{"a": [1, 2'), lambda: json.loads(p.read_text())),
        "safetensors": (lambda: (save_file({"a": torch.ones(100)}, str(p)), cut(60)),
                        lambda: load_file(str(p))),
        "parquet": (lambda: (pd.DataFrame({"a": range(100)}).to_parquet(p), cut(80)),
                    lambda: pd.read_parquet(p)),
        "npy": (lambda: (np.save(p, np.ones(100)), cut(100)), lambda: np.load(p, allow_pickle=False)),
    }[what]
    write()
    pattern = r"(?s)The thing at .*x\.\w+ is unreadable \(\w+.*truncated or corrupt\. Do X\."
    with pytest.raises(FormatError, match=pattern) as e:
        with st.reading(p, "thing", "Do X."):
            read()
    assert e.value.__cause__ is not None  # the library's error is kept as the cause


def test_load_or_rebuild_turns_library_errors_into_a_note(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "e.json"
    p.write_text('{"v": ')
    with caplog.at_level(logging.WARNING, logger="saekit"):
        got = st.load_or_rebuild(p, lambda q: json.loads(q.read_text()), lambda q: st.write_json(q, {"v": 1}),
                                 "the entry")
    assert got == {"v": 1}
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()
    assert "e.json is broken" in caplog.text and "recomputing it" in caplog.text


def test_verify_if_saekit_leaves_foreign_manifests_alone(tmp_path: Path) -> None:
    (tmp_path / st.MANIFEST).write_text(json.dumps({"name": "another library's manifest"}))
    assert st.verify_if_saekit(tmp_path) is False
    (tmp_path / st.MANIFEST).write_text('{"version": 1, "fi')
    with pytest.raises(FormatError, match="unreadable"):
        st.verify_if_saekit(tmp_path)


def test_broken_saved_sae_and_checkpoint_are_format_errors(tmp_path: Path) -> None:
    from saekit.train._checkpoint import drop_broken, load_checkpoint, save_checkpoint

    path = save_sae(init_weights(TopKSAE(SAEConfig(d_in=8, d_sae=16, k=2))), tmp_path / "sae")
    w = path / "sae_weights.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[:-4] + bytes(x ^ 0xFF for x in data[-4:]))  # same size: only the hash sees it
    with pytest.raises(FormatError, match="hash"):
        load_sae(path)
    for step in (2, 4):
        save_checkpoint(tmp_path / "ck", step, {"a": torch.ones(step)}, {"step": step}, keep=3)
    meta = tmp_path / "ck" / "step-00000004" / "meta.json"
    meta.write_text(meta.read_text()[:-2])
    with pytest.raises(FormatError, match="step-00000004 is damaged.*truncated or corrupt"):
        load_checkpoint(tmp_path / "ck" / "step-00000004")
    assert drop_broken(tmp_path / "ck") == [tmp_path / "ck" / "step-00000004"]
    assert load_checkpoint(tmp_path / "ck" / "step-00000002")[0]["step"] == 2
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step-00000002"]


def test_corrupt_local_model_folder_is_a_format_error(tmp_path: Path) -> None:
    from saekit import _loading

    hf = _tiny.llama()
    hf.save_pretrained(tmp_path / "m")
    _tiny.tokenizer().save_pretrained(tmp_path / "m")
    w = tmp_path / "m" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:200])
    with pytest.raises(FormatError, match=r"model folder .*m \(.*truncated or corrupt"):
        _loading.load_hf(str(tmp_path / "m"), torch.float32)


# ----- the demo's cache entries: a broken one is recomputed with a note ---------------------
def test_demo_recomputes_broken_cached_statistics_and_evaluation(tmp_path: Path, monkeypatch,
                                                                 caplog) -> None:  # type: ignore[no-untyped-def]
    from saekit import demo

    monkeypatch.setenv("SAEKIT_CACHE", str(tmp_path / "cache"))
    s = demo.Settings.quick()
    computed = {"stats": 0, "eval": 0}

    def fake_stats(*a: Any, **k: Any) -> FeatureStats:
        computed["stats"] += 1
        return _stats(0, 16)

    def fake_evaluate(*a: Any, **k: Any) -> pd.DataFrame:
        computed["eval"] += 1
        table = pd.DataFrame({"sae": ["topk-576"], "l0": [32.0]})
        table.attrs["density"] = pd.DataFrame({"sae": ["topk-576"] * 3, "density": [0.1, 0.2, 0.0]})
        return table

    monkeypatch.setattr(saekit, "feature_stats", fake_stats)
    monkeypatch.setattr(saekit, "evaluate", fake_evaluate)
    out = tmp_path / "out"
    out.mkdir()
    for _ in range(2):  # computed once, then read from the cache
        demo._stats(None, {}, s)  # type: ignore[arg-type]
        table = demo._evaluate(None, [], [], s, out)  # type: ignore[arg-type]
    assert computed == {"stats": 1, "eval": 1}
    pq = demo._work(s) / f"stats-{s.stats_texts}" / "summary.parquet"
    pq.write_bytes(pq.read_bytes()[:50])
    csv = demo._work(s) / f"evaluation-{s.eval_texts}" / "evaluation.csv"
    csv.write_text("sae,l0\ntopk-5")  # truncated: pandas alone would read it without a word
    with caplog.at_level(logging.WARNING, logger="saekit"):
        stats = demo._stats(None, {}, s)  # type: ignore[arg-type]
        again = demo._evaluate(None, [], [], s, out)  # type: ignore[arg-type]
    assert computed == {"stats": 2, "eval": 2}
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 2 and all("broken" in n and "recomputing it" in n and "\n" not in n for n in notes)
    pd.testing.assert_frame_equal(stats.summary, _stats(0, 16).summary)
    pd.testing.assert_frame_equal(again, table)
    pd.testing.assert_frame_equal(pd.read_csv(out / "evaluation.csv"), table)
