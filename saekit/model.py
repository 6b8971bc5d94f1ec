"""The model layer: the only place that touches nnsight.

:func:`load_model` gives a :class:`Model`, which reads activations at named sites,
runs the model with edits at sites, and generates with edits, hiding nnsight's
tracing rules (``.save()``, ``tracer.stop()``, ``tracer.iter``, inference mode).

Example:
    >>> import saekit
    >>> model = saekit.load_model()                      # SmolLM2-135M, offline
    >>> acts = model.activations(["The cat sat."], ["resid_post.15"])
    >>> acts["resid_post.15"].shape                      # [n_tokens, d_model]
    torch.Size([4, 576])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from saekit import _boundary
from saekit._sites import Site, Structure, find_structure
from saekit._tokens import TokenBatch, check_texts, pad_rows, split_rows
from saekit.activations import Activations
from saekit.errors import ModelLoadError, SaekitError

#: An edit replaces a site's value: ``[batch, pos, d] -> [batch, pos, d]``.
Edit = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class RunResult:
    """Values read in one forward pass: ``acts[site]`` is ``[batch, pos, d]``."""

    acts: dict[str, Tensor]
    logits: Tensor | None


class Model:
    """A causal LM traced through nnsight, with sites named ``"<kind>.<layer>"``.

    Build it with :func:`load_model`. ``model.nn`` is the nnsight model, ``model.hf``
    the underlying transformers module, ``model.tokenizer`` its tokenizer.

    One run at a time: every trace and generation holds the model's lock, so two
    notebook cells (or a view's worker thread and a cell) can share a model; the second
    caller waits. :attr:`busy` says whether another thread holds it now, and
    :meth:`exclusive` holds it for several runs (telling the caller if it must wait).
    """

    def __init__(self, lm: Any, name: str, remote: bool | str = False, prepend_bos: bool = True) -> None:
        self.nn = lm
        self.hf: nn.Module = lm._module
        self.tokenizer = lm.tokenizer
        self.name = name
        self.remote = remote
        self.structure: Structure = find_structure(self.hf)
        self.context_length = _context_length(self.hf)
        self.prepend_bos = prepend_bos
        self.bos_id = _bos_id(self.tokenizer)
        self._lock = threading.RLock()
        self._owner: int | None = None

    # ----- description -------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.structure.n_layers

    @property
    def d_model(self) -> int:
        return self.structure.d_model

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    def sites(self) -> list[str]:
        """All site names, in forward-pass order, e.g. ``["resid_pre.0", "attn_out.0", ...]``."""
        return self.structure.site_names()

    def site(self, name: str) -> Site:
        """Parse a site name; unknown names raise :class:`~saekit.errors.SiteError`."""
        return self.structure.parse(name)

    def site_width(self, name: str) -> int:
        """Width of the activations at a site (d_model, or d_mlp for ``mlp_neurons``)."""
        return self.structure.width(self.site(name))

    def __repr__(self) -> str:
        s = self.structure
        return (
            f"Model({self.name!r}, layers={s.n_layers}, d_model={s.d_model}, d_mlp={s.d_mlp}, "
            f"device={self.device}, dtype={self.dtype}{', remote' if self.remote else ''})"
        )

    def __getstate__(self) -> dict[str, Any]:  # remote traces pickle the model: not its lock
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_owner"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ----- one run at a time ------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while another thread runs the model (a call now would wait)."""
        owner = self._owner
        return owner is not None and owner != threading.get_ident()

    @contextmanager
    def exclusive(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the model for a block of runs; other threads' runs wait until it ends.

        Args:
            on_wait: called once, before waiting, when another thread holds the model
                (a view shows "waiting for the model" with it).

        Example:
            >>> with model.exclusive(on_wait=lambda: print("waiting")):
            ...     base = model.generate("Hi")
            ...     steered = model.generate("Hi", edits=edits)
        """
        if not self._lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
            self._lock.acquire()
        outer = self._owner
        self._owner = threading.get_ident()
        try:
            yield
        finally:
            self._owner = outer
            self._lock.release()

    # ----- unembedding -------------------------------------------------------------
    @property
    def W_U(self) -> Tensor:
        """Unembedding matrix ``[d_model, vocab]``."""
        weight = self._head().weight
        assert isinstance(weight, Tensor)
        return weight.T

    def _head(self) -> nn.Module:
        """The unembedding module (transformers' ``get_output_embeddings()``)."""
        return cast(Callable[[], nn.Module], self.hf.get_output_embeddings)()

    def unembed(self, x: Tensor, *, norm: bool = True) -> Tensor:
        """Logits of residual vectors ``[..., d_model] -> [..., vocab]`` (final norm, then unembed).

        Example:
            >>> logits = model.unembed(sae.W_dec[7])    # a feature's direct logit effect
        """
        x = x.to(self.device, self.dtype)
        path = self.structure.final_norm
        with torch.no_grad():
            if norm and path:
                x = self.hf.get_submodule(path)(x)
            return self._head()(x)

    # ----- tokens ------------------------------------------------------------------
    @property
    def special_ids(self) -> set[int]:
        return set(self.tokenizer.all_special_ids)

    def special_mask(self, ids: Tensor) -> Tensor:
        """Bool mask, same shape and device as ``ids``, True at special tokens (BOS...)."""
        special = torch.tensor(sorted(self.special_ids), dtype=torch.long, device=ids.device)
        return torch.isin(ids, special)

    def to_tokens(self, text: str) -> list[int]:
        """Token ids of one text, starting with a BOS token.

        The tokenizer's own special prefix is kept; when it adds none (GPT-2, SmolLM2)
        and ``prepend_bos`` is on, ``bos_id`` is prepended, as TransformerLens and
        SAELens do. Without it the first token becomes the model's attention sink with
        a residual norm ~100x the others, which swamps SAE training and splicing.
        """
        ids = list(self.tokenizer(text)["input_ids"])
        if self.prepend_bos and self.bos_id is not None and (not ids or ids[0] not in self.special_ids):
            ids = [self.bos_id, *ids]
        return ids

    def to_strings(self, ids: Sequence[int] | Tensor) -> list[str]:
        """Each token id as the text it stands for (``" cat"``, ``"\\n"``)."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return [self.tokenizer.decode([i]) for i in ids]

    def batches(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 16,
        max_length: int | None = None,
        sort_rows: bool = False,
    ) -> Iterator[TokenBatch]:
        """Right-padded batches of rows; texts longer than ``max_length`` are chunked.

        Follow-on rows of a chunked text repeat a little context from the row before;
        use :meth:`TokenBatch.fresh` to count each token once (see ``saekit._tokens``).
        With ``sort_rows``, all rows of ``texts`` are tokenised first and batched by
        length, so little compute goes to padding (default corpus, 64 texts at a time:
        a batch holds 1.10x its real tokens instead of 1.41x); rows come in length order.
        """
        texts = check_texts(texts)
        max_length = self._check_length(max_length)
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else self.tokenizer.eos_token_id
        rows: list[tuple[list[int], int, int, int]] = []
        prefix = 0
        for doc, text in enumerate(texts):
            ids = self.to_tokens(text)
            prefix = _special_prefix(ids, self.special_ids)
            rows.extend((r, doc, off, ctx) for r, off, ctx in split_rows(ids, prefix, max_length))
            while len(rows) >= batch_size and not sort_rows:
                yield pad_rows(rows[:batch_size], pad or 0, prefix)
                rows = rows[batch_size:]
        if sort_rows:
            rows.sort(key=lambda r: len(r[0]))  # a text's rows may part: doc/offset say where each is from
        for lo in range(0, len(rows), batch_size):
            yield pad_rows(rows[lo : lo + batch_size], pad or 0, prefix)

    def _check_length(self, max_length: int | None) -> int:
        if max_length is None:
            return min(256, self.context_length)
        if max_length > self.context_length:
            raise SaekitError(
                f"max_length={max_length} exceeds the model's context of "
                f"{self.context_length} tokens. Use max_length <= {self.context_length}; "
                "longer texts are split into windows of max_length tokens."
            )
        if max_length < 2:
            raise SaekitError(f"max_length must be at least 2, got {max_length}.")
        return max_length

    # ----- running -----------------------------------------------------------------
    def run(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        read: Sequence[str] = (),
        edits: Mapping[str, Edit] | None = None,
        logits: bool = True,
        grad: bool = False,
    ) -> RunResult:
        """One forward pass reading and editing sites.

        Args:
            input_ids: ``[batch, pos]`` token ids (right padding recommended).
            attention_mask: ``[batch, pos]``; defaults to all ones.
            read: sites whose values to return (values before any edit at that site).
            edits: site -> function replacing the site's value ``[batch, pos, d]``.
            logits: return the logits; if False the pass stops after the last site.
            grad: keep autograd on (for attributions); otherwise inference mode.

        Returns:
            :class:`RunResult` with ``acts[site]`` ``[batch, pos, d]`` and ``logits``.

        Example:
            >>> ids = torch.tensor([model.to_tokens("Hello world")])
            >>> out = model.run(ids, edits={"mlp_out.3": lambda x: 0 * x})
        """
        edits = dict(edits or {})
        order = sorted({self.site(s) for s in [*read, *edits]})
        if not order and not logits:
            raise SaekitError("run() with no sites to read, no edits and logits=False does nothing.")
        _boundary.within_context(input_ids, self.context_length, truncate=False, what="input",
                                 fix="Split it into windows: model.batches(texts, max_length=...) "
                                     "chunks long texts.")
        input_ids = input_ids.to(self.device)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(self.device)
        ctx = torch.enable_grad() if grad else torch.inference_mode()
        with self.exclusive(), ctx:
            saved, out = self._trace(input_ids, mask, order, set(read), edits, logits)
        return RunResult({s.name: saved[s.name] for s in order if s.name in read}, out)

    def _trace(self, ids, mask, order, read, edits, want_logits):  # type: ignore[no-untyped-def]
        envoys = [(s, self.nn.get(self.structure.module_path(s))) for s in order]
        kw = {"remote": self.remote} if self.remote else {}
        saved: dict[str, Any] = {}
        logits = None
        with self.nn.trace(ids, attention_mask=mask, **kw) as tracer:
            for site, env in envoys:
                value = _read(env, site.kind)
                if site.name in read:
                    saved[site.name] = value.save() if site.name not in edits else value.clone().save()
                if site.name in edits:
                    _write(env, site.kind, edits[site.name](value))
            if want_logits:
                logits = self.nn.output.logits.save()
            else:
                tracer.stop()
        return saved, logits

    def logits(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kw: Any) -> Tensor:
        """``[batch, pos, vocab]`` logits, optionally with ``edits=``."""
        out = self.run(input_ids, attention_mask, logits=True, **kw).logits
        assert out is not None
        return out

    # ----- generation --------------------------------------------------------------
    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        edits: Mapping[str, Edit] | None = None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        seed: int | None = 0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        truncate: bool = False,
    ) -> list[str]:
        """Continue each prompt, applying ``edits`` at every step (prompt and new tokens).

        Exactly ``max_new_tokens`` tokens are generated (the text is cut at the first
        end-of-sequence token), so a batch of prompts stays aligned. With the KV cache,
        each step after the first runs only the newest token, so an edit sees
        ``[batch, 1, d]`` then. Sampling is seeded: baseline and edited runs with the
        same ``seed`` draw the same random numbers.

        A prompt whose tokens plus ``max_new_tokens`` do not fit the model's context is
        refused (:class:`~saekit.errors.SaekitError`); with ``truncate=True`` its last
        tokens are kept instead, with a :class:`~saekit.errors.SaekitWarning`.

        Example:
            >>> model.generate("The capital of France is", max_new_tokens=5)
            [' Paris.']
        """
        prompts = check_texts(prompts)
        if max_new_tokens < 1:
            raise SaekitError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
        enc = self._left_padded(prompts, max_new_tokens, truncate)
        order = sorted((self.site(s), f) for s, f in (edits or {}).items())
        envoys = [(s, self.nn.get(self.structure.module_path(s)), f) for s, f in order]
        kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "min_new_tokens": max_new_tokens,
                              "do_sample": do_sample, "pad_token_id": enc["pad"]}
        if do_sample:
            kw.update(temperature=temperature, top_p=top_p)
        if seed is not None:
            torch.manual_seed(seed)
        with self.exclusive(), torch.inference_mode():
            with self.nn.generate(enc["input_ids"], attention_mask=enc["attention_mask"], **kw) as tracer:
                for _ in tracer.iter[:max_new_tokens]:
                    for site, env, fn in envoys:
                        _write(env, site.kind, fn(_read(env, site.kind)))
                out = tracer.result.save()
        new = out[:, enc["input_ids"].shape[1] :].cpu()
        return [self._decode_until_eos(row) for row in new]

    def _left_padded(self, prompts: list[str], new_tokens: int = 0, truncate: bool = False) -> dict[str, Any]:
        rows = [self._prompt_tokens(p, i, len(prompts), new_tokens, truncate) for i, p in enumerate(prompts)]
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device), "pad": pad}

    def _prompt_tokens(self, prompt: str, i: int, n: int, new_tokens: int, truncate: bool) -> list[int]:
        ids = torch.tensor(self.to_tokens(prompt), dtype=torch.long)
        what = "prompt" if n == 1 else f"prompt {i}"
        kept = _boundary.within_context(ids, self.context_length, truncate=truncate, what=what,
                                        new_tokens=new_tokens)
        prefix = _special_prefix(ids.tolist(), self.special_ids)
        if kept.numel() < ids.numel() and prefix:  # a cut prompt keeps its BOS
            kept = torch.cat([ids[:prefix], kept[prefix:]])
        return kept.tolist()

    def _decode_until_eos(self, row: Tensor) -> str:
        ids = row.tolist()
        eos = self.tokenizer.eos_token_id
        if eos in ids:
            ids = ids[: ids.index(eos)]
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    # ----- activations -------------------------------------------------------------
    def iter_activations(
        self,
        texts: str | Sequence[str],
        sites: str | Sequence[str],
        *,
        batch_size: int = 16,
        max_length: int | None = None,
        keep_special: bool = False,
        sort_rows: bool = False,
        progress: bool = True,
    ) -> Iterator[Activations]:
        """Stream :class:`Activations` one batch of texts at a time (bounded memory).

        With ``sort_rows`` (see :meth:`batches`) all of ``texts`` is tokenised up front
        and tokens come in row-length order, not text order: ``doc`` and ``pos`` say
        where each is from. ``cache_activations`` uses it and restores text order.

        Padding is always dropped, and so is the context repeated at the start of the
        follow-on rows of a chunked text (each token is yielded once); BOS and other
        special tokens are dropped unless ``keep_special``.
        """
        sites = [sites] if isinstance(sites, str) else list(sites)
        if not sites:
            raise SaekitError("No sites given. Pass e.g. sites=['resid_post.15']; see model.sites().")
        for s in sites:
            self.site(s)
        texts = check_texts(texts)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(texts), desc="activations", unit="text", disable=not progress)
        for batch in self.batches(texts, batch_size=batch_size, max_length=max_length, sort_rows=sort_rows):
            res = self.run(batch.input_ids, batch.attention_mask, read=sites, logits=False)
            keep = batch.fresh()
            if not keep_special:
                keep &= ~self.special_mask(batch.input_ids)
            keep_dev = keep.to(self.device)
            yield Activations(
                acts={s: res.acts[s][keep_dev].float().cpu() for s in sites},
                token_ids=batch.input_ids[keep],
                doc=batch.doc[:, None].expand_as(keep)[keep],
                pos=batch.positions()[keep],
            )
            bar.update(int((batch.offset == 0).sum()))
        bar.close()

    def activations(self, texts: str | Sequence[str], sites: str | Sequence[str], **kw: Any) -> Activations:
        """Activations at ``sites`` for every (non-padding, non-special) token of ``texts``.

        Args:
            texts: one text or a list.
            sites: site names, e.g. ``["resid_post.15", "mlp_neurons.15"]``.
            **kw: ``batch_size``, ``max_length`` (longer texts are chunked),
                ``keep_special`` (keep BOS etc.), ``progress``.

        Returns:
            :class:`~saekit.activations.Activations`: ``acts[site]`` ``[n_tokens, d]``
            (float32, CPU) with ``token_ids``, ``doc`` and ``pos`` per token.
        """
        return Activations.concat(list(self.iter_activations(texts, sites, **kw)))


def _read(env: Any, kind: str) -> Any:  # an nnsight proxy of a tensor
    if kind == "mlp_neurons":
        return env.input
    out = env.input if kind == "resid_pre" else env.output
    return out[0] if isinstance(out, tuple) else out


def _write(env: Any, kind: str, value: Tensor) -> None:
    if kind in ("mlp_neurons", "resid_pre"):
        env.input = value
        return
    out = env.output
    env.output = (value, *out[1:]) if isinstance(out, tuple) else value


def _bos_id(tokenizer: Any) -> int | None:
    """The document separator pretraining used (``<|endoftext|>``), else BOS, else EOS."""
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if isinstance(eot, int) and tokenizer.convert_ids_to_tokens(eot) == "<|endoftext|>":
        return eot
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return None


def _special_prefix(ids: list[int], special: set[int]) -> int:
    n = 0
    while n < len(ids) - 1 and ids[n] in special:
        n += 1
    return n


def _context_length(hf: nn.Module) -> int:
    cfg = hf.config
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        if isinstance(getattr(cfg, attr, None), int):
            return int(getattr(cfg, attr))
    return 2048


def load_model(
    model: Any = None,
    *,
    tokenizer: Any = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | str | None = None,
    remote: bool | str = False,
) -> Model:
    """Load a causal LM as a saekit :class:`Model`.

    Args:
        model: ``None`` for the offline default (SmolLM2-135M-Instruct, converted
            once from the packaged GGUF into ``$SAEKIT_CACHE``); a hub id
            (``"org/name"``); a local HF folder; a transformers model (pass
            ``tokenizer=``); or an nnsight model.
        tokenizer: the tokenizer, for an already-built transformers model.
        device: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``...
        dtype: e.g. ``torch.bfloat16``; default float32 for the default model.
        remote: ``True`` runs traces on NDIF (needs a hub id and ``NDIF_API_KEY``);
            ``"local"`` simulates the remote path in-process (offline tests).

    Example:
        >>> model = saekit.load_model()
        >>> model.sites()[:3]
        ['resid_pre.0', 'attn_out.0', 'mlp_neurons.0']
    """
    from saekit._wrap import wrap

    return wrap(model, tokenizer=tokenizer, device=device, dtype=dtype, remote=remote)


__all__ = ["Model", "RunResult", "load_model", "Edit", "ModelLoadError"]
