"""The model layer on tiny random Llama, GPT-2 and GPT-NeoX models: values equal HF's."""

from __future__ import annotations

import _tiny
import pytest
import torch

import saekit
from saekit._tokens import split_rows
from saekit.errors import ModelLoadError, SaekitError, SiteError

KINDS = ["resid_pre", "attn_out", "mlp_neurons", "mlp_out", "resid_post"]


def _hf_reference(model: saekit.Model, text: str) -> dict[str, torch.Tensor]:
    """Every site's value for one unpadded text, from plain HF forward hooks."""
    hf, s = model.hf, model.structure
    store: dict[str, torch.Tensor] = {}
    hooks = []
    for i in range(s.n_layers):
        layer = hf.get_submodule(s.layer_path(i))
        attn, mlp = getattr(layer, s.attn), getattr(layer, s.mlp)
        hooks += [
            attn.register_forward_hook(lambda m, a, o, i=i: store.__setitem__(f"attn_out.{i}", o[0])),
            mlp.register_forward_hook(lambda m, a, o, i=i: store.__setitem__(f"mlp_out.{i}", o)),
            mlp.get_submodule(s.down).register_forward_hook(
                lambda m, a, o, i=i: store.__setitem__(f"mlp_neurons.{i}", a[0])
            ),
            layer.register_forward_hook(lambda m, a, o, i=i: store.__setitem__(f"resid_post.{i}", o)),
        ]
    ids = torch.tensor([model.to_tokens(text)])
    with torch.no_grad():
        out = hf(ids, output_hidden_states=True)
    for h in hooks:
        h.remove()
    for i in range(s.n_layers):
        store[f"resid_pre.{i}"] = out.hidden_states[i]
    store["logits"] = out.logits
    return {k: v[0] for k, v in store.items()}


def test_every_site_equals_hf_on_padded_chunked_batches(tiny_model: saekit.Model) -> None:
    sites = tiny_model.sites()
    acts = tiny_model.activations(_tiny.CORPUS, sites, batch_size=3, keep_special=True, progress=False)
    for d, text in enumerate(_tiny.CORPUS):
        ref = _hf_reference(tiny_model, text)
        sel = acts.doc == d
        assert acts.pos[sel].tolist() == list(range(len(ref["resid_pre.0"])))
        for site in sites:
            torch.testing.assert_close(acts[site][sel], ref[site], atol=1e-5, rtol=1e-5)


def test_site_names_and_widths(tiny_model: saekit.Model) -> None:
    assert tiny_model.sites()[:5] == [f"{k}.0" for k in KINDS]
    assert len(tiny_model.sites()) == 5 * 3
    assert tiny_model.site_width("resid_post.1") == 32
    assert tiny_model.site_width("mlp_neurons.1") == tiny_model.structure.d_mlp > 32


def test_special_tokens_dropped_by_default(tiny_llama: saekit.Model) -> None:
    acts = tiny_llama.activations(_tiny.CORPUS[:2], "resid_post.0", progress=False)
    assert 0 not in acts.token_ids.tolist()  # <bos> id
    full = tiny_llama.activations(_tiny.CORPUS[:2], "resid_post.0", keep_special=True, progress=False)
    assert len(full) == len(acts) + 2
    assert acts.pos.min() == 1


def test_long_text_is_chunked_with_positions_kept(tiny_llama: saekit.Model) -> None:
    text = " ".join(_tiny.CORPUS)
    n = len(tiny_llama.to_tokens(text))
    acts = tiny_llama.activations(text, "resid_pre.0", max_length=16, keep_special=True, progress=False)
    body = acts.pos[acts.token_ids != 0]
    assert sorted(body.tolist()) == list(range(1, n))
    # chunks are separate contexts: the first chunk matches an unchunked run exactly
    ref = _hf_reference(tiny_llama, text)["resid_pre.0"]
    torch.testing.assert_close(acts["resid_pre.0"][:16], ref[:16])


def test_follow_on_rows_see_context_and_emit_each_token_once(tiny_llama: saekit.Model) -> None:
    text = " ".join(_tiny.CORPUS)
    ids = tiny_llama.to_tokens(text)
    rows = list(split_rows(ids, 1, 16))
    assert [(off, ctx) for _, off, ctx in rows[:3]] == [(0, 0), (8, 7), (16, 7)]  # ctx = min(16, 15 // 2)
    fresh = [i for row, off, ctx in rows for i in range(1 + off + ctx, 1 + off + len(row) - 1)]
    assert fresh == list(range(1, len(ids)))  # every content token fresh in exactly one row
    acts = tiny_llama.activations(text, "resid_post.1", max_length=16, progress=False)
    assert acts.pos.tolist() == list(range(1, len(ids)))
    # the second row's first fresh token is computed with its 7 tokens of context before it
    row, off, ctx = rows[1]
    out = tiny_llama.run(torch.tensor([row]), read=["resid_post.1"]).acts["resid_post.1"][0]
    torch.testing.assert_close(acts["resid_post.1"][acts.pos == 1 + off + ctx][0], out[1 + ctx])


def test_sorted_rows_give_the_same_tokens_with_less_padding(tiny_llama: saekit.Model) -> None:
    texts = [" ".join(_tiny.CORPUS[: 1 + i % 4]) for i in range(12)]  # four lengths, mixed
    plain = list(tiny_llama.batches(texts, batch_size=4, max_length=24))
    srt = list(tiny_llama.batches(texts, batch_size=4, max_length=24, sort_rows=True))
    assert sum(b.attention_mask.numel() for b in srt) < sum(b.attention_mask.numel() for b in plain)
    rows = lambda bs: sorted((int(d), int(o)) for b in bs for d, o in zip(b.doc, b.offset))  # noqa: E731
    assert rows(srt) == rows(plain)
    kw = dict(max_length=24, batch_size=4, progress=False)
    a = tiny_llama.activations(texts, "resid_post.1", **kw)
    b = tiny_llama.activations(texts, "resid_post.1", sort_rows=True, **kw)
    order = torch.argsort(b.doc * 1000 + b.pos)
    assert b.doc[order].tolist() == a.doc.tolist() and b.pos[order].tolist() == a.pos.tolist()
    torch.testing.assert_close(b["resid_post.1"][order], a["resid_post.1"], atol=1e-5, rtol=1e-5)


def test_fresh_mask_drops_padding_and_repeated_context(tiny_llama: saekit.Model) -> None:
    text = " ".join(_tiny.CORPUS)
    (batch,) = list(tiny_llama.batches([text, "The cat"], batch_size=64, max_length=16))
    fresh = batch.fresh()
    assert fresh[0].all() and not fresh[1, :8].any() and fresh[1, 8:].all()  # BOS + 7 context
    short = batch.doc == 1
    assert fresh[short].sum() == batch.attention_mask[short].sum()  # unchunked: all real tokens


def test_edits_change_downstream_and_logits_match_hf(tiny_model: saekit.Model) -> None:
    ids = torch.tensor([tiny_model.to_tokens(_tiny.CORPUS[0])])
    ref = _hf_reference(tiny_model, _tiny.CORPUS[0])
    clean = tiny_model.logits(ids)
    torch.testing.assert_close(clean[0], ref["logits"], atol=1e-5, rtol=1e-5)
    out = tiny_model.run(ids, read=["resid_post.1"], edits={"mlp_out.1": lambda x: x * 0})
    expected = ref["resid_post.1"] - ref["mlp_out.1"]
    torch.testing.assert_close(out.acts["resid_post.1"][0], expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out.logits, clean)


def test_edit_of_mlp_neurons_and_read_before_edit(tiny_llama: saekit.Model) -> None:
    ids = torch.tensor([tiny_llama.to_tokens(_tiny.CORPUS[1])])
    out = tiny_llama.run(ids, read=["mlp_neurons.0", "mlp_out.0"], edits={"mlp_neurons.0": torch.zeros_like})
    ref = _hf_reference(tiny_llama, _tiny.CORPUS[1])
    torch.testing.assert_close(out.acts["mlp_neurons.0"][0], ref["mlp_neurons.0"])  # value before edit
    torch.testing.assert_close(out.acts["mlp_out.0"][0], torch.zeros_like(ref["mlp_out.0"]))


def test_grad_mode_gives_gradients(tiny_llama: saekit.Model) -> None:
    ids = torch.tensor([tiny_llama.to_tokens("The cat sat")])
    box = {}

    def edit(x: torch.Tensor) -> torch.Tensor:
        box["scale"] = torch.ones((), requires_grad=True)
        return x * box["scale"]

    out = tiny_llama.run(ids, edits={"resid_post.1": edit}, grad=True)
    out.logits[0, -1].max().backward()
    assert box["scale"].grad is not None and box["scale"].grad.abs() > 0


def test_generate_with_edits_equals_hf_hook(tiny_llama: saekit.Model) -> None:
    prompts = ["The cat", "Hello world, this"]
    hook_fn = lambda m, a, o: o * 0 + 3  # noqa: E731
    steered = tiny_llama.generate(prompts, max_new_tokens=5, edits={"resid_post.1": lambda x: x * 0 + 3})
    baseline = tiny_llama.generate(prompts, max_new_tokens=5)
    enc = tiny_llama._left_padded(prompts)
    h = tiny_llama.hf.model.layers[1].register_forward_hook(hook_fn)
    try:
        with torch.no_grad():
            o = tiny_llama.hf.generate(enc["input_ids"], attention_mask=enc["attention_mask"],
                                       max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=2)
    finally:
        h.remove()
    width = enc["input_ids"].shape[1]
    assert steered == [tiny_llama._decode_until_eos(r) for r in o[:, width:]]
    assert steered != baseline


def test_seeded_sampling_is_reproducible(tiny_llama: saekit.Model) -> None:
    a = tiny_llama.generate("The cat", max_new_tokens=6, do_sample=True, seed=3)
    b = tiny_llama.generate("The cat", max_new_tokens=6, do_sample=True, seed=3)
    assert a == b


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ("resid_post.7", "out of range: this model has 3 layers"),
        ("resid_post.-1", "out of range"),
        ("residual.1", "Unknown site 'residual.1'"),
        ("resid_post", "Unknown site"),
    ],
)
def test_bad_sites(tiny_llama: saekit.Model, site: str, message: str) -> None:
    with pytest.raises(SiteError, match=message):
        tiny_llama.activations("The cat", site, progress=False)


def test_unknown_site_lists_valid_kinds(tiny_llama: saekit.Model) -> None:
    with pytest.raises(SiteError, match="resid_pre.*attn_out.*mlp_neurons.*mlp_out.*resid_post"):
        tiny_llama.site("hidden.0")


@pytest.mark.parametrize("texts", [[], "", ["ok text", "   "], [None]])
def test_empty_texts_refused(tiny_llama: saekit.Model, texts: object) -> None:
    with pytest.raises(SaekitError, match="empty|non-empty"):
        tiny_llama.activations(texts, "resid_post.0", progress=False)  # type: ignore[arg-type]


def test_max_length_over_context_refused(tiny_llama: saekit.Model) -> None:
    with pytest.raises(SaekitError, match="exceeds the model's context of 128"):
        tiny_llama.activations("The cat", "resid_post.0", max_length=4096, progress=False)


def test_model_without_decoder_layers_refused() -> None:
    with pytest.raises(SiteError, match="no stack of decoder layers"):
        saekit.load_model(torch.nn.Sequential(torch.nn.Linear(3, 3)), tokenizer=_tiny.tokenizer())


def test_unavailable_device_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="CUDA is not available.*device='cpu'"):
        saekit.load_model(_tiny.llama(), tokenizer=_tiny.tokenizer(), device="cuda")


def test_missing_tokenizer_and_bad_arguments_refused() -> None:
    with pytest.raises(ModelLoadError, match="without a tokenizer"):
        saekit.load_model(_tiny.llama())
    with pytest.raises(ModelLoadError, match="Expected None"):
        saekit.load_model(42)
    with pytest.raises(ModelLoadError, match="No folder at"):
        saekit.load_model("./no/such/folder")


def test_offline_hub_id_gives_clear_error() -> None:
    with pytest.raises(ModelLoadError, match="offline|not reachable"):
        saekit.load_model("saekit-test/definitely-not-a-model")


def test_local_folder_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hf = _tiny.gpt2()
    hf.save_pretrained(tmp_path)
    _tiny.tokenizer().save_pretrained(tmp_path)
    m = saekit.load_model(str(tmp_path), device="cpu")
    ids = torch.tensor([m.to_tokens("The cat sat")])
    with torch.no_grad():
        torch.testing.assert_close(m.logits(ids), hf(ids).logits)


def test_wraps_an_nnsight_model() -> None:
    import nnsight

    lm = nnsight.TransformersModel(_tiny.neox(), tokenizer=_tiny.tokenizer(), task="text-generation")
    m = saekit.load_model(lm)
    assert m.nn is lm and m.n_layers == 3


def test_remote_needs_hub_id_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import nnsight

    with pytest.raises(ModelLoadError, match="repo id"):
        saekit.load_model(_tiny.llama(), remote=True)
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    with pytest.raises(ModelLoadError, match="NDIF_API_KEY"):
        saekit.load_model("meta-llama/Llama-3.1-8B", remote=True)


def test_remote_code_path_simulated_locally(tiny_llama: saekit.Model) -> None:
    """remote='local' serialises the trace as NDIF would and runs it in-process."""
    remote = saekit.Model(tiny_llama.nn, name="tiny", remote="local")
    got = remote.activations(_tiny.CORPUS[:2], ["resid_post.1", "mlp_neurons.2"], progress=False)
    ref = tiny_llama.activations(_tiny.CORPUS[:2], ["resid_post.1", "mlp_neurons.2"], progress=False)
    for s in ref.sites:
        torch.testing.assert_close(got[s], ref[s])


def test_bos_prepended_when_the_tokenizer_adds_none() -> None:
    from transformers import PreTrainedTokenizerFast

    raw = _tiny.tokenizer().backend_tokenizer
    bare = type(raw).from_str(raw.to_str())
    bare.post_processor = None
    tok = PreTrainedTokenizerFast(tokenizer_object=bare, bos_token="<bos>", eos_token="<eos>",
                                  pad_token="<pad>")
    assert tok("The cat")["input_ids"][0] != 0
    m = saekit.load_model(_tiny.gpt2(), tokenizer=tok, device="cpu")
    assert m.to_tokens("The cat") == [0, *tok("The cat")["input_ids"]]
    acts = m.activations("The cat", "resid_post.0", progress=False)
    assert acts.pos.tolist() == list(range(1, len(tok("The cat")["input_ids"]) + 1))
    m.prepend_bos = False
    assert m.to_tokens("The cat") == tok("The cat")["input_ids"]
