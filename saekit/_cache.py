"""On-disk activation cache: safetensors shards + a JSON manifest, atomic and resumable."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from saekit._tokens import CHUNK_CONTEXT, check_texts
from saekit.activations import Activations
from saekit.errors import FormatError, SaekitError

if TYPE_CHECKING:
    from saekit.model import Model

_META = "meta.json"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_save_tensors(tensors: dict[str, Tensor], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)


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
        self.meta: dict[str, Any] = json.loads(meta_file.read_text())

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
        file = self.path / self.meta["shards"][i]["file"]
        try:
            return load_file(str(file))
        except Exception as e:  # safetensors raises several types for truncation
            raise FormatError(
                f"Activation shard {file} is missing or corrupt ({e}). Delete the cache folder "
                "and run cache_activations again."
            ) from e

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
    _atomic_write_bytes(folder / _META, json.dumps(meta, indent=1).encode())
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
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("fingerprint") != fp:
            raise SaekitError(
                f"{folder} holds an activation cache made from other texts or settings. "
                "Use another folder, or delete this one to rebuild it."
            )
        return meta
    meta = {"version": 1, "model": model.name, "site": site, "d_in": model.site_width(site),
            "n_docs": n_docs, "next_doc": 0, "shards": [], "complete": False, "fingerprint": fp}
    _atomic_write_bytes(meta_file, json.dumps(meta, indent=1).encode())
    return meta


def _flush(folder: Path, meta: dict[str, Any], acts: Activations, site: str, dtype: torch.dtype,
           next_doc: int, dropped: int) -> None:
    name = f"shard_{len(meta['shards']):05d}.safetensors"
    _atomic_save_tensors(
        {"acts": acts[site].to(dtype), "token_id": acts.token_ids, "doc": acts.doc, "pos": acts.pos},
        folder / name,
    )
    meta["shards"].append({"file": name, "n": len(acts)})
    meta["next_doc"] = next_doc
    meta["dropped"] = meta.get("dropped", 0) + dropped
    _atomic_write_bytes(folder / _META, json.dumps(meta, indent=1).encode())
