"""On-disk activation cache: safetensors shards + a JSON manifest, atomic and resumable.

``meta.json`` lists the shards with each one's size, SHA-256, and where in the corpus it
ends; every file is written by :func:`saekit._storage.atomic_write`. A shard is checked
against its size and hash when it is read (hashed once per process). A broken shard or
``meta.json`` is repaired by calling :func:`cache_activations` again with the same
arguments: it keeps the intact shards before the first broken one and recomputes the
rest, with the same result as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from saekit import _storage
from saekit._tokens import CHUNK_CONTEXT, check_texts
from saekit.activations import Activations
from saekit.errors import FormatError, SaekitError

if TYPE_CHECKING:
    from saekit.model import Model

log = logging.getLogger("saekit")
_META = "meta.json"
_SHARD = re.compile(r"^shard_\d{5}\.safetensors$")
_REPAIR = ("Call saekit.cache_activations(model, texts, site, path) again with the same arguments: "
           "it keeps the intact shards and recomputes the broken ones.")


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    _storage.write_json(folder / _META, meta)


def _read_meta(folder: Path) -> dict[str, Any]:
    meta = _storage.read_json(folder / _META, "activation cache metadata", _REPAIR)
    ok = isinstance(meta, dict) and isinstance(meta.get("shards"), list) and all(
        isinstance(s, dict) and {"file", "n"} <= s.keys() for s in meta["shards"])
    if not ok or not {"site", "d_in", "complete", "model"} <= meta.keys():
        raise FormatError(f"{folder / _META} is not activation cache metadata. {_REPAIR}")
    return meta


def _check_shard(folder: Path, entry: dict[str, Any]) -> Path:
    """The shard's path after checking its size and hash against ``meta.json``."""
    file = folder / entry["file"]
    if not file.is_file():
        raise FormatError(f"Activation shard {file} is missing. {_REPAIR}")
    size = file.stat().st_size
    if "size" in entry and size != entry["size"]:
        raise FormatError(f"Activation shard {file} has {size} bytes; {_META} says {entry['size']} "
                          f"(truncated or corrupt). {_REPAIR}")
    if "sha256" in entry and _storage.known_hash(file) != entry["sha256"]:
        raise FormatError(f"Activation shard {file} does not match its hash in {_META} (corrupt). {_REPAIR}")
    if "size" not in entry:  # written by an older saekit: at least its header and length
        with _storage.reading(file, "activation shard", _REPAIR), safe_open(str(file), "pt"):
            pass
    return file


class ActivationCache:
    """A folder of activation shards for one site, read back in (shuffled) batches.

    Example:
        >>> cache = ActivationCache("acts/")
        >>> cache.n_tokens, cache.d_in
        (65536, 576)
        >>> x = next(cache.iter_batches(4096))   # [4096, 576]
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        meta_file = self.path / _META
        if not meta_file.exists():
            raise FormatError(
                f"No activation cache at {self.path} (missing {_META}). Create one with "
                "saekit.cache_activations(model, texts, site, path)."
            )
        self.meta: dict[str, Any] = _read_meta(self.path)

    site = property(lambda self: str(self.meta["site"]))
    model_name = property(lambda self: str(self.meta["model"]))
    d_in = property(lambda self: int(self.meta["d_in"]))
    complete = property(lambda self: bool(self.meta["complete"]))

    @property
    def n_tokens(self) -> int:
        return sum(int(s["n"]) for s in self.meta["shards"])

    @property
    def n_dropped(self) -> int:
        """Tokens left out for an outlier norm (see ``cache_activations(max_norm_ratio=)``)."""
        return int(self.meta.get("dropped", 0))

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete (resume with cache_activations)"
        dropped = f", dropped={self.n_dropped} outlier-norm tokens" if self.n_dropped else ""
        return (
            f"ActivationCache({str(self.path)!r}, site={self.site!r}, n_tokens={self.n_tokens}, "
            f"d_in={self.d_in}, shards={len(self.meta['shards'])}{dropped}, {state})"
        )

    def _shard(self, i: int) -> dict[str, Tensor]:
        entry = self.meta["shards"][i]
        file = _check_shard(self.path, entry)
        with _storage.reading(file, "activation shard", _REPAIR):
            return load_file(str(file))

    def iter_batches(
        self, batch_size: int, *, shuffle: bool = True, seed: int = 0, start: int = 0
    ) -> Iterator[Tensor]:
        """One epoch of ``[batch_size, d_in]`` float32 batches (last partial batch dropped).

        With ``shuffle``, shards are visited in a seeded random order and rows are
        permuted within each shard (memory: one shard). ``start`` skips that many
        batches, to resume training exactly where it stopped.
        """
        g = torch.Generator().manual_seed(seed)
        n = len(self.meta["shards"])
        order = torch.randperm(n, generator=g).tolist() if shuffle else list(range(n))
        carry = torch.empty(0, self.d_in)
        seen = 0  # rows of the (permuted) stream before this shard
        first_row = start * batch_size
        for i in order:
            n_i = int(self.meta["shards"][i]["n"])
            perm = torch.randperm(n_i, generator=g) if shuffle else torch.arange(n_i)
            seen += n_i
            if seen <= first_row:  # every row of this shard is in a skipped batch: don't read it
                carry = torch.zeros(seen % batch_size, self.d_in)
                continue
            x = torch.cat([carry, self._shard(i)["acts"].float()[perm]])
            take = (len(x) // batch_size) * batch_size
            batch0 = (seen - len(x)) // batch_size  # stream index of x's first batch
            for j in range(0, take, batch_size):
                if batch0 + j // batch_size >= start:
                    yield x[j : j + batch_size]
            carry = x[take:]

    def load(self) -> Tensor:
        """All activations, ``[n_tokens, d_in]`` float32, in corpus order."""
        return torch.cat([self._shard(i)["acts"].float() for i in range(len(self.meta["shards"]))])

    def tokens(self) -> pd.DataFrame:
        """``doc``, ``pos``, ``token_id`` of every cached row, in corpus order."""
        parts = [self._shard(i) for i in range(len(self.meta["shards"]))]
        return pd.DataFrame({k: torch.cat([p[k] for p in parts]).numpy() for k in ("doc", "pos", "token_id")})


def _fingerprint(model: Model, texts: Sequence[str], settings: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps([model.name, settings], sort_keys=True).encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()


def cache_activations(
    model: Model,
    texts: Sequence[str],
    site: str,
    path: str | os.PathLike[str],
    *,
    shard_tokens: int = 65536,
    docs_per_step: int = 64,
    dtype: torch.dtype = torch.float32,
    max_norm_ratio: float | None = 10.0,
    progress: bool = True,
    **kw: Any,
) -> ActivationCache:
    """Run ``model`` over ``texts`` once and store activations at ``site`` in ``path``.

    Shards and the manifest are written atomically; if the run is interrupted, calling
    again with the same arguments resumes after the last complete shard. A finished
    cache is returned at once.

    A few tokens carry "massive activations" (Sun et al., 2024): attention sinks such as
    a ``-`` right after BOS, with a residual norm ~70x the median in SmolLM2. One such
    vector in a batch swamps the SAE's reconstruction loss (explained variance of the
    batch drops below 0), so tokens whose norm exceeds ``max_norm_ratio`` times the
    median norm of their ``docs_per_step`` texts are left out of the cache and counted
    (``cache.n_dropped``; 6 of 272k tokens in the demo's corpus). ``None`` keeps all.

    Args:
        model: the :class:`~saekit.model.Model`.
        texts: the corpus (list of strings).
        site: e.g. ``"resid_post.15"``.
        path: the cache folder (created).
        shard_tokens: tokens per shard (a shard is one unit of resume and shuffling).
        docs_per_step: texts per model call between resume points.
        dtype: storage dtype (``torch.float16`` halves the disk).
        max_norm_ratio: drop tokens with a norm above this multiple of the median norm.
        **kw: passed to :meth:`Model.iter_activations` (``batch_size``, ``max_length``...).
    """
    texts = check_texts(texts)
    model.site(site)
    if max_norm_ratio is not None and not max_norm_ratio > 1:
        raise SaekitError(
            f"max_norm_ratio={max_norm_ratio} would drop ordinary tokens; pass a multiple of the "
            "median norm above 1 (10 is a good default), or None to keep every token."
        )
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"site": site, "dtype": str(dtype), "bos": model.bos_id if model.prepend_bos else None,
                "chunk_context": CHUNK_CONTEXT, "max_norm_ratio": max_norm_ratio,
                **{k: v for k, v in kw.items() if k != "progress"}}
    fp = _fingerprint(model, texts, settings)
    meta = _open_or_start(folder, fp, model, site, len(texts))
    if meta["complete"]:
        return ActivationCache(folder)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(texts), initial=meta["next_doc"], desc=f"caching {site}", unit="text",
               disable=not progress)
    buf: list[Activations] = []
    dropped = 0  # outlier tokens left out of ``buf``
    for lo in range(meta["next_doc"], len(texts), docs_per_step):
        hi = min(lo + docs_per_step, len(texts))
        part = model.activations(texts[lo:hi], [site], progress=False, sort_rows=True, **kw)
        part = _in_text_order(part)  # rows were batched by length
        keep = _typical_norm(part[site], max_norm_ratio)  # [n] bool
        dropped += int((~keep).sum())
        buf.append(Activations({site: part[site][keep]}, part.token_ids[keep], part.doc[keep] + lo,
                               part.pos[keep]))
        bar.update(hi - lo)
        if sum(len(b) for b in buf) >= shard_tokens or hi == len(texts):
            _flush(folder, meta, Activations.concat(buf), site, dtype, next_doc=hi, dropped=dropped)
            buf, dropped = [], 0
    bar.close()
    meta["complete"] = True
    _write_meta(folder, meta)
    return ActivationCache(folder)


def _in_text_order(a: Activations) -> Activations:
    """Tokens sorted by (doc, pos), undoing ``sort_rows``' length order."""
    order = torch.argsort(a.doc * (int(a.pos.max()) + 1 if len(a) else 1) + a.pos)
    acts = {s: x[order] for s, x in a.acts.items()}
    return Activations(acts, a.token_ids[order], a.doc[order], a.pos[order])


def _typical_norm(x: Tensor, ratio: float | None) -> Tensor:
    """``[n]`` mask of the vectors whose norm is at most ``ratio`` x the median norm."""
    if ratio is None or len(x) == 0:
        return torch.ones(len(x), dtype=torch.bool)
    norms = x.float().norm(dim=-1)
    return norms <= ratio * norms.median()


def _open_or_start(folder: Path, fp: str, model: Model, site: str, n_docs: int) -> dict[str, Any]:
    meta_file = folder / _META
    _storage.clean_stale(folder)
    if meta_file.exists():
        try:
            meta = _read_meta(folder)
        except FormatError as err:
            log.warning("saekit: the activation cache at %s is broken (%s); recomputing it.",
                        folder, _storage.one_line(err))
        else:
            if meta.get("fingerprint") != fp:
                raise SaekitError(
                    f"{folder} holds an activation cache made from other texts or settings. "
                    "Use another folder, or delete this one to rebuild it."
                )
            return _keep_intact(folder, meta)
    meta = {"version": 1, "model": model.name, "site": site, "d_in": model.site_width(site),
            "n_docs": n_docs, "next_doc": 0, "shards": [], "complete": False, "fingerprint": fp}
    _write_meta(folder, meta)
    _remove_unlisted_shards(folder, meta)
    return meta


def _keep_intact(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` cut back to its shards before the first broken one (a note says so)."""
    shards = meta["shards"]
    broken = _first_broken(folder, shards)
    if broken is None:
        return meta
    i, err = broken
    resumable = all("next_doc" in e and "dropped" in e for e in shards[:i])  # older caches: start over
    keep = shards[:i] if resumable else []
    start = keep[-1]["next_doc"] if keep else 0
    log.warning("saekit: activation shard %s in %s is broken (%s); recomputing from text %d.",
                shards[i]["file"], folder, _storage.one_line(err), start)
    meta.update(shards=keep, next_doc=start, complete=False, dropped=sum(e["dropped"] for e in keep))
    _write_meta(folder, meta)
    _remove_unlisted_shards(folder, meta)
    return meta


def _first_broken(folder: Path, shards: list[dict[str, Any]]) -> tuple[int, FormatError] | None:
    for i, entry in enumerate(shards):
        try:
            _check_shard(folder, entry)
        except FormatError as err:
            return i, err
    return None


def _remove_unlisted_shards(folder: Path, meta: dict[str, Any]) -> None:
    listed = {e["file"] for e in meta["shards"]}
    for f in folder.iterdir():
        if _SHARD.match(f.name) and f.name not in listed:
            _storage.remove(f)


def _flush(folder: Path, meta: dict[str, Any], acts: Activations, site: str, dtype: torch.dtype,
           next_doc: int, dropped: int) -> None:
    name = f"shard_{len(meta['shards']):05d}.safetensors"
    tensors = {"acts": acts[site].to(dtype).contiguous(), "token_id": acts.token_ids.contiguous(),
               "doc": acts.doc.contiguous(), "pos": acts.pos.contiguous()}
    file = _storage.atomic_write(folder / name, lambda p: save_file(tensors, str(p)))
    meta["shards"].append({"file": name, "n": len(acts), **_storage.describe(file),
                           "next_doc": next_doc, "dropped": dropped})
    meta["next_doc"] = next_doc
    meta["dropped"] = meta.get("dropped", 0) + dropped
    _write_meta(folder, meta)
