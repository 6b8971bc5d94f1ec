"""SAE file formats: SAELens both ways (against SAELens itself), dictionary_learning,
sparsify and Gemma Scope fixtures written in each library's real layout, selective
feature loading, and bad files."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from saekit.errors import FormatError
from saekit.sae import (
    SAE,
    BatchTopKSAE,
    JumpReLUSAE,
    ReLUSAE,
    SAEConfig,
    TopKSAE,
    init_weights,
    load_sae,
    save_sae,
)
from saekit.sae.formats import saelens as saelens_format

D_IN, D_SAE, K = 8, 24, 3
HAVE_SAE_LENS = importlib.util.find_spec("sae_lens") is not None
needs_sae_lens = pytest.mark.skipif(
    not HAVE_SAE_LENS,
    reason="sae-lens is not installed; install saekit[compat] to run the SAELens round trips",
)


def x_batch(seed: int = 0, n: int = 16) -> torch.Tensor:
    return torch.randn(n, D_IN, generator=torch.Generator().manual_seed(seed))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed)) * scale


def random_saekit(cls: type[SAE], seed: int = 0, **cfg: Any) -> SAE:
    sae = init_weights(cls(SAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, **cfg)), seed=seed)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(D_SAE, 1, generator=gen(seed)) + 0.5)
        sae.b_enc.copy_(randn(D_SAE, seed=seed + 1, scale=0.3))
        sae.b_dec.copy_(randn(D_IN, seed=seed + 2, scale=0.5))
    if isinstance(sae, JumpReLUSAE):
        with torch.no_grad():
            sae.threshold.copy_(torch.rand(D_SAE, generator=gen(seed + 3)) * 0.6)
    if isinstance(sae, BatchTopKSAE):
        sae.threshold.fill_(0.25)
    return sae


def assert_same_outputs(a_enc: torch.Tensor, b_enc: torch.Tensor,
                        a_out: torch.Tensor, b_out: torch.Tensor) -> None:
    assert (a_enc > 0).sum() > 0, "test inputs should activate some features"
    torch.testing.assert_close(a_enc, b_enc, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a_out, b_out, atol=1e-5, rtol=1e-5)


# --- SAELens, against SAELens itself -----------------------------------------------------


@pytest.fixture(scope="module")
def sl() -> Any:
    if not HAVE_SAE_LENS:
        pytest.skip("sae-lens is not installed; install saekit[compat]")
    import sae_lens

    return sae_lens


@needs_sae_lens
@pytest.mark.parametrize(
    ("cls", "sl_class"),
    [(ReLUSAE, "StandardSAE"), (TopKSAE, "TopKSAE"), (JumpReLUSAE, "JumpReLUSAE"),
     (BatchTopKSAE, "JumpReLUSAE")],
)
def test_saekit_writes_what_saelens_loads(sl: Any, tmp_path: Path, cls: type[SAE],
                                          sl_class: str) -> None:
    ours = random_saekit(cls, site="mlp_out.3", model_name="HuggingFaceTB/SmolLM2-135M")
    path = save_sae(ours, tmp_path / "sae")
    theirs = sl.SAE.load_from_disk(str(path))
    assert type(theirs).__name__ == sl_class
    assert theirs.cfg.metadata.hook_name == "blocks.3.hook_mlp_out"
    assert theirs.cfg.metadata.model_name == "HuggingFaceTB/SmolLM2-135M"
    x = x_batch(1)
    with torch.no_grad():
        assert_same_outputs(ours.encode(x), theirs.encode(x), ours(x), theirs.decode(theirs.encode(x)))


def _randomise_saelens(sae: Any, seed: int) -> Any:
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(sae.named_parameters())):
            p.copy_(randn(*p.shape, seed=seed + i, scale=0.5))
            if name == "threshold":
                p.abs_()
    return sae


def _saelens_sae(sl: Any, kind: str) -> Any:
    from sae_lens.saes.sae import SAEMetadata

    md = SAEMetadata(model_name="gpt2", hook_name="blocks.5.hook_resid_pre")
    if kind == "standard":
        return sl.StandardSAE(sl.StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=md))
    if kind in ("topk", "topk_rescaled"):
        cfg = sl.TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, metadata=md,
                               rescale_acts_by_decoder_norm=kind == "topk_rescaled")
        return sl.TopKSAE(cfg)
    cfg = sl.JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=md,
                               apply_b_dec_to_input=kind == "jumprelu")
    return sl.JumpReLUSAE(cfg)


@needs_sae_lens
@pytest.mark.parametrize(
    ("kind", "cls"),
    [("standard", ReLUSAE), ("topk", TopKSAE), ("topk_rescaled", TopKSAE),
     ("jumprelu", JumpReLUSAE), ("jumprelu_no_input_bias", JumpReLUSAE)],
)
def test_saekit_loads_what_saelens_writes(sl: Any, tmp_path: Path, kind: str,
                                          cls: type[SAE]) -> None:
    theirs = _randomise_saelens(_saelens_sae(sl, kind), seed=10)
    theirs.save_model(str(tmp_path))
    ours = load_sae(tmp_path)
    assert type(ours) is cls
    assert ours.cfg.site == "resid_pre.5" and ours.cfg.model_name == "gpt2"
    assert ours.cfg.training["source_format"] == "saelens"
    x = x_batch(2)
    with torch.no_grad():
        assert_same_outputs(theirs.encode(x), ours.encode(x), theirs(x), ours(x))


@needs_sae_lens
def test_saelens_batchtopk_loads_as_batchtopk(sl: Any, tmp_path: Path) -> None:
    train = sl.BatchTopKTrainingSAE(sl.BatchTopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K))
    _randomise_saelens(train, seed=20)
    train.topk_threshold.fill_(0.3)
    train.save_inference_model(str(tmp_path / "inference"))
    train.save_model(str(tmp_path / "checkpoint"))
    theirs = sl.SAE.load_from_disk(str(tmp_path / "inference"))  # a JumpReLU SAE
    ours = load_sae(tmp_path / "inference")
    ckpt = load_sae(tmp_path / "checkpoint")  # training checkpoint: topk_threshold buffer
    assert type(ours) is BatchTopKSAE and ours.k == K
    assert type(ckpt) is BatchTopKSAE and float(ckpt.threshold) == pytest.approx(0.3)
    x = x_batch(3)
    with torch.no_grad():
        assert_same_outputs(theirs.encode(x), ours.encode(x), theirs(x), ours(x))
        assert_same_outputs(ours.encode(x), ckpt.encode(x), ours(x), ckpt(x))


@pytest.mark.parametrize("cls", [ReLUSAE, TopKSAE, BatchTopKSAE, JumpReLUSAE])
def test_saelens_layout_round_trip_keeps_metadata(tmp_path: Path, cls: type[SAE]) -> None:
    ours = random_saekit(cls, site="resid_post.15", model_name="m",
                         training={"lr": 4e-4, "tokens": 1000, "seed": 3})
    back = load_sae(save_sae(ours, tmp_path / "s"))
    assert type(back) is cls and back.cfg.site == "resid_post.15" and back.cfg.model_name == "m"
    assert {k: back.cfg.training[k] for k in ("lr", "tokens", "seed")} == ours.cfg.training
    assert ours.cfg.k == K
    # k round-trips where it means something; ReLU / JumpReLU drop the meaningless k they were given
    assert back.cfg.k == (K if cls in (TopKSAE, BatchTopKSAE) else None)
    x = x_batch(4)
    assert torch.equal(back.encode(x), ours.encode(x)) and torch.equal(back(x), ours(x))
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    want = {"relu": "standard", "topk": "topk", "batchtopk": "jumprelu", "jumprelu": "jumprelu"}
    assert cfg["architecture"] == want[ours.architecture]
    assert cfg["metadata"]["hook_name"] == "blocks.15.hook_resid_post"


def test_saelens_untranslatable_hook_is_kept(tmp_path: Path) -> None:
    sae = random_saekit(ReLUSAE)
    save_sae(sae, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    cfg["metadata"].update(hook_name="blocks.2.attn.hook_z", saekit_site="")
    cfg["reshape_activations"] = "hook_z"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    back = load_sae(tmp_path)
    assert back.cfg.site == ""
    assert back.cfg.training["hook_name"] == "blocks.2.attn.hook_z"
    assert back.cfg.training["reshape_activations"] == "hook_z"
    again = load_sae(save_sae(back, tmp_path / "again"))
    assert again.cfg.training["hook_name"] == "blocks.2.attn.hook_z"
    assert json.loads((tmp_path / "again" / "cfg.json").read_text())["metadata"][
        "hook_name"] == "blocks.2.attn.hook_z"


def test_saelens_pre_6_config(tmp_path: Path) -> None:
    W_enc, W_dec = randn(D_IN, D_SAE, seed=1), randn(D_SAE, D_IN, seed=2)
    b_enc, b_dec = randn(D_SAE, seed=3), randn(D_IN, seed=4)
    save_file({"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec},
              str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps({
        "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "model_name": "gpt2-small",
        "hook_point": "blocks.8.hook_resid_pre", "hook_point_layer": 8,
        "activation_fn_str": "topk", "activation_fn_kwargs": {"k": K},
        "apply_b_dec_to_input": True, "normalize_activations": False,
        "sae_lens_training_version": "3.12.0",
    }))
    sae = load_sae(tmp_path)
    assert type(sae) is TopKSAE and sae.k == K and sae.cfg.site == "resid_pre.8"
    x = x_batch(5)
    pre = torch.relu((x - b_dec) @ W_enc + b_enc)
    vals, idx = pre.topk(K)
    ref = torch.zeros_like(pre).scatter(-1, idx, vals)
    torch.testing.assert_close(sae.encode(x), ref)
    torch.testing.assert_close(sae(x), ref @ W_dec + b_dec)


def _edit_cfg(folder: Path, **changes: Any) -> None:
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg.update(changes)
    (folder / "cfg.json").write_text(json.dumps(cfg))


def test_saelens_run_time_normalisation_refused(tmp_path: Path) -> None:
    save_sae(random_saekit(ReLUSAE), tmp_path)
    _edit_cfg(tmp_path, normalize_activations="layer_norm")
    with pytest.raises(FormatError, match="normalize_activations='layer_norm'"):
        load_sae(tmp_path)
    _edit_cfg(tmp_path, normalize_activations="expected_average_only_in")
    with pytest.warns(UserWarning, match="sqrt\\(d_in\\)"):
        sae = load_sae(tmp_path)
    assert sae.cfg.training["normalize_activations"] == "expected_average_only_in"


def test_saelens_unsupported_architecture(tmp_path: Path) -> None:
    save_sae(random_saekit(ReLUSAE), tmp_path)
    _edit_cfg(tmp_path, architecture="gated")
    with pytest.raises(FormatError, match="'gated'.*saekit reads"):
        load_sae(tmp_path)


def test_saelens_log_sparsity(tmp_path: Path) -> None:
    sae = random_saekit(ReLUSAE)
    density = torch.linspace(-6, 0, D_SAE)
    save_sae(sae, tmp_path, log_sparsity=density)
    assert torch.equal(saelens_format.load_log_sparsity(tmp_path), density)
    assert torch.equal(saelens_format.load_log_sparsity(tmp_path, [4, 2]), density[[4, 2]])
    assert saelens_format.load_log_sparsity(tmp_path / "nowhere") is None
    save_sae(sae, tmp_path)  # replacing the SAE without a density drops the stale one
    assert saelens_format.load_log_sparsity(tmp_path) is None


# --- dictionary_learning -------------------------------------------------------------


def _dl_state(cls: str) -> dict[str, torch.Tensor]:
    enc_w, enc_b = randn(D_SAE, D_IN, seed=1, scale=0.5), randn(D_SAE, seed=2, scale=0.3)
    dec_w, bias = randn(D_IN, D_SAE, seed=3, scale=0.5), randn(D_IN, seed=4, scale=0.5)
    linear = {"encoder.weight": enc_w, "encoder.bias": enc_b, "decoder.weight": dec_w}
    params = {"W_enc": enc_w.T.contiguous(), "b_enc": enc_b, "W_dec": dec_w.T.contiguous(),
              "b_dec": bias}
    k, thr = torch.tensor(K, dtype=torch.int), torch.tensor(0.2)
    return {
        "AutoEncoder": {**linear, "bias": bias},
        "AutoEncoderNew": {**linear, "decoder.bias": bias},
        "AutoEncoderTopK": {**linear, "b_dec": bias, "k": k, "threshold": thr},
        "BatchTopKSAE": {**linear, "b_dec": bias, "k": k, "threshold": thr},
        "MatryoshkaBatchTopKSAE": {**params, "k": k, "threshold": thr,
                                   "group_sizes": torch.tensor([8, 16])},
        "JumpReluAutoEncoder": {**params, "threshold": torch.rand(D_SAE, generator=gen(5))},
    }[cls]


def _dl_reference(cls: str, s: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[Any, Any]:
    """The forward pass as dictionary_learning's classes compute it."""
    if cls in ("MatryoshkaBatchTopKSAE", "JumpReluAutoEncoder"):
        if cls == "JumpReluAutoEncoder":  # apply_b_dec_to_input = False
            pre = x @ s["W_enc"] + s["b_enc"]
            f = torch.relu(pre * (pre > s["threshold"]))
        else:
            post = torch.relu((x - s["b_dec"]) @ s["W_enc"] + s["b_enc"])
            f = post * (post > s["threshold"])
        return f, f @ s["W_dec"] + s["b_dec"]
    in_bias = {"AutoEncoder": s.get("bias"), "AutoEncoderNew": None}.get(cls, s.get("b_dec"))
    x_in = x if in_bias is None else x - in_bias
    post = torch.relu(x_in @ s["encoder.weight"].T + s["encoder.bias"])
    if cls == "AutoEncoderTopK":
        vals, idx = post.topk(K)
        f = torch.zeros_like(post).scatter(-1, idx, vals)
    elif cls == "BatchTopKSAE":  # encode(use_threshold=True), the inference default
        f = post * (post > s["threshold"])
    else:
        f = post
    out_bias = s.get("bias", s.get("b_dec", s.get("decoder.bias")))
    return f, f @ s["decoder.weight"].T + out_bias


def _write_dl(root: Path, cls: str, with_config: bool = True) -> Path:
    folder = root / "resid_post_layer_3" / "trainer_0"
    folder.mkdir(parents=True)
    torch.save(_dl_state(cls), folder / "ae.pt")
    if with_config:
        trainer = {"trainer_class": "TopKTrainer", "dict_class": cls, "lr": 1e-4,
                   "activation_dim": D_IN, "dict_size": D_SAE, "k": K, "device": "cpu",
                   "layer": 3, "lm_name": "EleutherAI/pythia-70m-deduped",
                   "submodule_name": "resid_post_layer_3", "seed": 0}
        buffer = {"d_submodule": D_IN, "io": "out", "n_ctxs": 3000, "ctx_len": 128}
        (folder / "config.json").write_text(json.dumps({"trainer": trainer, "buffer": buffer}))
    return folder


DL_CLASSES = {"AutoEncoder": ReLUSAE, "AutoEncoderNew": ReLUSAE, "AutoEncoderTopK": TopKSAE,
              "BatchTopKSAE": BatchTopKSAE, "MatryoshkaBatchTopKSAE": BatchTopKSAE,
              "JumpReluAutoEncoder": JumpReLUSAE}


@pytest.mark.parametrize("cls", sorted(DL_CLASSES))
def test_dictionary_learning(tmp_path: Path, cls: str) -> None:
    folder = _write_dl(tmp_path, cls)
    sae = load_sae(folder)
    assert type(sae) is DL_CLASSES[cls]
    assert sae.cfg.site == "resid_post.3"
    assert sae.cfg.model_name == "EleutherAI/pythia-70m-deduped"
    assert sae.cfg.training["dict_class"] == cls
    x = x_batch(6)
    f, out = _dl_reference(cls, _dl_state(cls), x)
    assert_same_outputs(f, sae.encode(x), out, sae(x))
    assert load_sae(folder / "ae.pt").d_sae == D_SAE  # the file itself works too


def test_dictionary_learning_keys_identify_class_without_config(tmp_path: Path) -> None:
    folder = _write_dl(tmp_path, "JumpReluAutoEncoder", with_config=False)
    assert type(load_sae(folder)) is JumpReLUSAE


def test_dictionary_learning_topk_ambiguous_without_config(tmp_path: Path) -> None:
    folder = _write_dl(tmp_path, "BatchTopKSAE", with_config=False)
    with pytest.raises(FormatError, match="AutoEncoderTopK and BatchTopKSAE.*dict_class"):
        load_sae(folder)


def test_dictionary_learning_checkpoint_finds_config_one_level_up(tmp_path: Path) -> None:
    folder = _write_dl(tmp_path, "AutoEncoderTopK")
    (folder / "checkpoints").mkdir()
    (folder / "ae.pt").rename(folder / "checkpoints" / "ae_100.pt")
    sae = load_sae(folder / "checkpoints" / "ae_100.pt")
    assert type(sae) is TopKSAE and sae.cfg.site == "resid_post.3"


class NotATensor:
    """Any Python object: torch.load(weights_only=True) must refuse to build it."""

    def __init__(self) -> None:
        self.payload = "would run code on unpickling"


def test_pickle_payload_refused(tmp_path: Path) -> None:
    folder = _write_dl(tmp_path, "AutoEncoder")
    state = _dl_state("AutoEncoder")
    torch.save({**state, "extra": NotATensor()}, folder / "ae.pt")  # type: ignore[dict-item]
    with pytest.raises(FormatError, match="Refused to load.*arbitrary code"):
        load_sae(folder)


def test_pt_that_is_not_a_state_dict(tmp_path: Path) -> None:
    folder = _write_dl(tmp_path, "AutoEncoder")
    torch.save(torch.zeros(3), folder / "ae.pt")
    with pytest.raises(FormatError, match="does not hold a state dict"):
        load_sae(folder)


def test_truncated_pt(tmp_path: Path) -> None:
    folder = _write_dl(tmp_path, "AutoEncoder")
    data = (folder / "ae.pt").read_bytes()
    (folder / "ae.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated or corrupt"):
        load_sae(folder)


# --- sparsify ------------------------------------------------------------------------


def _sparsify_tensors() -> dict[str, torch.Tensor]:
    return {"encoder.weight": randn(D_SAE, D_IN, seed=11, scale=0.5),
            "encoder.bias": randn(D_SAE, seed=12, scale=0.3),
            "W_dec": randn(D_SAE, D_IN, seed=13, scale=0.5), "b_dec": randn(D_IN, seed=14)}


def _write_sparsify(root: Path, hookpoint: str = "layers.6", **cfg: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({
        "sae": {"expansion_factor": 3, "k": K}, "batch_size": 32, "lr": None,
        "model": "HuggingFaceTB/SmolLM2-135M", "dataset": "EleutherAI/SmolLM2-135M-10B",
        "ctx_len": 2048, "hookpoints": [hookpoint], "init_seeds": [0],
    }))
    folder = root / hookpoint
    folder.mkdir()
    sae_cfg = {"activation": "topk", "expansion_factor": 3, "normalize_decoder": True,
               "num_latents": 0, "k": K, "multi_topk": False, "skip_connection": False,
               "transcode": False, "d_in": D_IN, **cfg}
    (folder / "cfg.json").write_text(json.dumps(sae_cfg))
    save_file(_sparsify_tensors(), str(folder / "sae.safetensors"))
    return folder


def test_sparsify(tmp_path: Path) -> None:
    folder = _write_sparsify(tmp_path / "run")
    sae = load_sae(folder)
    assert type(sae) is TopKSAE and sae.k == K and sae.d_sae == D_SAE  # 3 * d_in
    assert sae.cfg.site == "resid_post.6" and sae.cfg.model_name == "HuggingFaceTB/SmolLM2-135M"
    assert sae.cfg.training["hookpoint"] == "layers.6"
    t, x = _sparsify_tensors(), x_batch(7)
    pre = torch.relu((x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"])
    vals, idx = pre.topk(K, sorted=False)  # sparsify's fused_encoder + decoder_impl
    out = (vals[..., None] * t["W_dec"][idx]).sum(-2) + t["b_dec"]
    assert_same_outputs(torch.zeros_like(pre).scatter(-1, idx, vals), sae.encode(x), out, sae(x))


def test_sparsify_run_folder_lists_hookpoints(tmp_path: Path) -> None:
    _write_sparsify(tmp_path / "run", "layers.6")
    _write_sparsify(tmp_path / "run", "layers.7.mlp")
    assert load_sae(tmp_path / "run" / "layers.7.mlp").cfg.site == "mlp_out.7"
    with pytest.raises(FormatError, match=r"holds 2 SAEs in subfolders: layers\.6, layers\.7\.mlp"):
        load_sae(tmp_path / "run")


def test_sparsify_variants_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="transcode=true"):
        load_sae(_write_sparsify(tmp_path / "a", transcode=True))
    with pytest.raises(FormatError, match="activation='groupmax'"):
        load_sae(_write_sparsify(tmp_path / "b", activation="groupmax"))


# --- Gemma Scope ---------------------------------------------------------------------


def _gemma_params() -> dict[str, np.ndarray]:
    return {"W_enc": randn(D_IN, D_SAE, seed=21, scale=0.5).numpy(),
            "W_dec": randn(D_SAE, D_IN, seed=22, scale=0.5).numpy(),
            "b_enc": randn(D_SAE, seed=23, scale=0.3).numpy(),
            "b_dec": randn(D_IN, seed=24).numpy(),
            "threshold": (torch.rand(D_SAE, generator=gen(25)) * 0.5).numpy()}


def _gemma_reference(p: dict[str, np.ndarray], x: torch.Tensor) -> tuple[Any, Any]:
    """Gemma Scope's JumpReLU (the tutorial's JumpReLUSAE): the encoder sees x itself."""
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    pre = x @ t["W_enc"] + t["b_enc"]
    acts = (pre > t["threshold"]) * torch.relu(pre)
    return acts, acts @ t["W_dec"] + t["b_dec"]


def _write_gemma_npz(root: Path) -> Path:
    folder = root / "gemma-scope-2b-pt-res" / "layer_20" / "width_16k" / "average_l0_71"
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **_gemma_params())
    return folder


def _write_gemma_safetensors(root: Path) -> Path:
    folder = root / "resid_post" / "layer_12_width_16k_l0_medium"
    folder.mkdir(parents=True)
    names = {"W_enc": "w_enc", "W_dec": "w_dec"}  # Gemma Scope 2 spelling
    save_file({names.get(k, k): torch.from_numpy(v) for k, v in _gemma_params().items()},
              str(folder / "params.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architecture": "jump_relu", "model_name": "gemma-v3-270m-pt",
        "hf_hook_point_in": "model.layers.12.output", "width": D_SAE, "l0": 60,
    }))
    return folder


@pytest.mark.parametrize("writer", [_write_gemma_npz, _write_gemma_safetensors])
def test_gemma_scope(tmp_path: Path, writer: Any) -> None:
    sae = load_sae(writer(tmp_path))
    assert type(sae) is JumpReLUSAE
    x = x_batch(8)
    f, out = _gemma_reference(_gemma_params(), x)
    assert_same_outputs(f, sae.encode(x), out, sae(x))


def test_gemma_scope_metadata_from_folders_and_config(tmp_path: Path) -> None:
    v1 = load_sae(_write_gemma_npz(tmp_path / "a"))
    assert v1.cfg.site == "resid_post.20" and v1.cfg.model_name == "google/gemma-2-2b"
    v2 = load_sae(_write_gemma_safetensors(tmp_path / "b"))
    assert v2.cfg.site == "resid_post.12" and v2.cfg.model_name == "gemma-v3-270m-pt"


def test_gemma_scope_object_npz_refused(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    folder.mkdir()
    params = dict(_gemma_params())
    params["threshold"] = np.array([NotATensor()], dtype=object)
    np.savez(folder / "params.npz", **params)
    with pytest.raises(FormatError, match="Refused to load.*arbitrary code"):
        load_sae(folder)


def test_gemma_scope_truncated_npz(tmp_path: Path) -> None:
    folder = _write_gemma_npz(tmp_path)
    data = (folder / "params.npz").read_bytes()
    (folder / "params.npz").write_bytes(data[: len(data) // 3])
    with pytest.raises(FormatError, match="truncated or corrupt"):
        load_sae(folder)


def test_gemma_scope_transcoder_refused(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    np.savez(folder / "params.npz", **_gemma_params(),
             affine_skip_connection=np.zeros((D_IN, D_IN), dtype=np.float32))
    with pytest.raises(FormatError, match="transcoder"):
        load_sae(folder)


# --- selective feature loading -------------------------------------------------------

FEATURES = [17, 0, 5, 6, 23]


def _all_formats(tmp_path: Path) -> dict[str, Path]:
    return {
        "saelens_jumprelu": save_sae(random_saekit(JumpReLUSAE), tmp_path / "saelens"),
        "saelens_batchtopk": save_sae(random_saekit(BatchTopKSAE), tmp_path / "sl_btk"),
        "dl_relu": _write_dl(tmp_path / "dl", "AutoEncoder"),
        "dl_jumprelu": _write_dl(tmp_path / "dl2", "JumpReluAutoEncoder"),
        "sparsify": _write_sparsify(tmp_path / "sp"),
        "gemma_npz": _write_gemma_npz(tmp_path / "g1"),
        "gemma_safetensors": _write_gemma_safetensors(tmp_path / "g2"),
    }


def test_selected_features_equal_slices_of_full_load(tmp_path: Path) -> None:
    x = x_batch(9)
    for name, path in _all_formats(tmp_path).items():
        full, part = load_sae(path), load_sae(path, features=FEATURES)
        assert type(part) is type(full) and part.d_sae == len(FEATURES), name
        assert part.cfg.training["feature_indices"] == FEATURES, name
        assert part.cfg.training["full_d_sae"] == D_SAE, name
        torch.testing.assert_close(part.W_dec, full.W_dec[FEATURES], msg=name)
        torch.testing.assert_close(part.W_enc, full.W_enc[:, FEATURES], msg=name)
        torch.testing.assert_close(part.b_dec, full.b_dec, msg=name)
        if name != "sparsify":  # not TopK: each feature's code is independent of the rest
            torch.testing.assert_close(part.encode(x), full.encode(x)[:, FEATURES], msg=name)


def test_selected_topk_features_warn(tmp_path: Path) -> None:
    path = _write_sparsify(tmp_path / "sp")
    with pytest.warns(UserWarning, match="top-k now runs among the loaded features"):
        part = load_sae(path, features=[3, 1])
    assert part.k == 2 and part.d_sae == 2


def test_selected_features_slice_the_file(tmp_path: Path, monkeypatch: Any) -> None:
    """Big tensors are read with get_slice, never whole (get_tensor)."""
    import safetensors

    real = safetensors.safe_open
    read_whole: list[str] = []

    class Spy:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._cm = real(*args, **kwargs)

        def __enter__(self) -> Any:
            handle = self._cm.__enter__()
            outer = self

            class Handle:
                def __getattr__(self, attr: str) -> Any:
                    return getattr(handle, attr)

                def get_tensor(self, name: str) -> torch.Tensor:
                    read_whole.append(name)
                    return handle.get_tensor(name)

            outer._h = Handle()
            return outer._h

        def __exit__(self, *exc: Any) -> None:
            self._cm.__exit__(*exc)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    for path in (save_sae(random_saekit(ReLUSAE), tmp_path / "a"),
                 _write_sparsify(tmp_path / "b"), _write_gemma_safetensors(tmp_path / "c")):
        read_whole.clear()
        load_sae(path, features=[2, 9])
        assert read_whole == ["b_dec"], (path, read_whole)
        read_whole.clear()
        load_sae(path)
        assert len(read_whole) >= 4  # sanity: the spy sees whole reads


@pytest.mark.parametrize("bad", [[24], [-1], [], [3, 3]])
def test_bad_feature_indices(tmp_path: Path, bad: list[int]) -> None:
    path = save_sae(random_saekit(ReLUSAE), tmp_path / "s")
    with pytest.raises(FormatError, match="out of range|selects nothing|duplicates"):
        load_sae(path, features=bad)


# --- bad files, unknown formats, atomic saving ---------------------------------------


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = save_sae(random_saekit(ReLUSAE), tmp_path / "s")
    weights = path / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-50])
    with pytest.raises(FormatError, match="truncated or corrupt.*again"):
        load_sae(path)
    weights.write_bytes(b"\x00" * 7)
    with pytest.raises(FormatError, match="not a readable safetensors file"):
        load_sae(path)


def test_corrupt_or_incomplete_config(tmp_path: Path) -> None:
    path = save_sae(random_saekit(ReLUSAE), tmp_path / "s")
    text = (path / "cfg.json").read_text()
    (path / "cfg.json").write_text(text[: len(text) // 2])
    with pytest.raises(FormatError, match="not valid JSON"):
        load_sae(path)
    cfg = json.loads(text)
    del cfg["d_sae"]
    (path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(FormatError, match=r"lacks \['d_sae'\]"):
        load_sae(path)


def test_shape_mismatch(tmp_path: Path) -> None:
    path = save_sae(random_saekit(ReLUSAE), tmp_path / "s")
    _edit_cfg(path, d_sae=D_SAE * 2)
    with pytest.raises(FormatError, match=r"'W_enc'.*shape \(8, 24\).*\(8, 48\)"):
        load_sae(path)


def test_missing_tensor(tmp_path: Path) -> None:
    folder = _write_sparsify(tmp_path / "run")
    t = _sparsify_tensors()
    del t["W_dec"]
    save_file(t, str(folder / "sae.safetensors"))
    with pytest.raises(FormatError, match=r"lacks tensor\(s\) \['W_dec'\]"):
        load_sae(folder)


def test_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"abc")
    with pytest.raises(FormatError, match=r"Looked for: cfg\.json \+ sae_weights.*Found: \['weights\.bin'\]"):
        load_sae(tmp_path)
    with pytest.raises(FormatError, match="Could not tell the SAE format of file"):
        load_sae(tmp_path / "weights.bin")
    with pytest.raises(FormatError, match="does not exist"):
        load_sae(tmp_path / "missing")


def test_save_into_existing_folder_replaces_files(tmp_path: Path) -> None:
    a, b = random_saekit(TopKSAE, seed=1), random_saekit(TopKSAE, seed=2)
    save_sae(a, tmp_path / "s")
    save_sae(b, tmp_path / "s")
    assert torch.equal(load_sae(tmp_path / "s").W_dec, b.W_dec)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["cfg.json", "manifest.json",
                                                                  "sae_weights.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary leftovers


def test_failed_save_leaves_no_half_written_sae(tmp_path: Path, monkeypatch: Any) -> None:
    import safetensors.torch

    a = random_saekit(ReLUSAE, seed=1)
    save_sae(a, tmp_path / "old")

    def boom(*args: Any, **kwargs: Any) -> None:
        Path(args[1]).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_sae(random_saekit(ReLUSAE, seed=2), tmp_path / "new")
    with pytest.raises(OSError, match="disk full"):
        save_sae(random_saekit(ReLUSAE, seed=2), tmp_path / "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["cfg.json", "manifest.json",
                                                                    "sae_weights.safetensors"]
    assert torch.equal(load_sae(tmp_path / "old").W_dec, a.W_dec)


def test_training_settings_must_be_json(tmp_path: Path) -> None:
    sae = random_saekit(ReLUSAE, training={"lr": 1e-3, "schedule": object()})
    from saekit.errors import SaekitError

    with pytest.raises(SaekitError, match=r"JSON-serialisable.*\['schedule'\]"):
        save_sae(sae, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_device_argument(tmp_path: Path) -> None:
    path = save_sae(random_saekit(ReLUSAE), tmp_path / "s")
    sae = load_sae(path, device="cpu")
    assert sae.device == torch.device("cpu") and not sae.training
    assert pickle.loads(pickle.dumps(sae.cfg)) == sae.cfg


def test_subset_of_a_saved_subset_maps_to_original_indices(tmp_path: Path) -> None:
    path = save_sae(random_saekit(ReLUSAE), tmp_path / "full")
    part = load_sae(path, features=[20, 3, 11])
    again = load_sae(save_sae(part, tmp_path / "part"), features=[2, 0])
    assert again.cfg.training["feature_indices"] == [11, 20]
    assert again.cfg.training["full_d_sae"] == D_SAE
    torch.testing.assert_close(again.W_dec, load_sae(path).W_dec[[11, 20]])


@pytest.mark.parametrize(
    ("site", "hook"),
    [("resid_pre.3", "blocks.3.hook_resid_pre"), ("resid_post.15", "blocks.15.hook_resid_post"),
     ("mlp_out.0", "blocks.0.hook_mlp_out"), ("attn_out.7", "blocks.7.hook_attn_out"),
     ("mlp_neurons.2", "blocks.2.mlp.hook_post")],
)
def test_site_hook_translation(site: str, hook: str) -> None:
    from saekit.sae.formats._hooks import hook_to_site, site_to_hook

    assert site_to_hook(site) == hook and hook_to_site(hook) == site


def test_untranslatable_names() -> None:
    from saekit.sae.formats._hooks import hook_to_site, module_to_site, site_to_hook

    assert hook_to_site("blocks.2.attn.hook_z") == "" and hook_to_site("hook_embed") == ""
    assert site_to_hook("embed") == "" and site_to_hook("resid_mid.3") == ""
    assert module_to_site("model.layers.4") == "resid_post.4"
    assert module_to_site("layers.4.self_attn") == "attn_out.4"
    assert module_to_site("model.layers.4.self_attn.o_proj.input") == ""
    assert module_to_site("embed_tokens") == ""
