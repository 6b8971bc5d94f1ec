"""Load an SAE from any supported format; save in SAELens's layout.

Example:
    >>> import torch, tempfile, os
    >>> from saekit.sae import JumpReLUSAE, SAEConfig, init_weights, load_sae, save_sae
    >>> sae = init_weights(JumpReLUSAE(SAEConfig(d_in=8, d_sae=32, site="resid_post.3")))
    >>> path = save_sae(sae, os.path.join(tempfile.mkdtemp(), "sae"))
    >>> sorted(os.listdir(path))  # manifest.json: size and SHA-256 of each file, checked on load
    ['cfg.json', 'manifest.json', 'sae_weights.safetensors']
    >>> again = load_sae(path, features=[5, 1])
    >>> again.d_sae, again.cfg.training["feature_indices"]
    (2, [5, 1])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from saekit._boundary import finite_weights
from saekit._storage import verify_if_saekit
from saekit.errors import FormatError
from saekit.sae.base import SAE
from saekit.sae.formats import FORMATS, saelens

PathLike = str | os.PathLike[str]


def load_sae(
    path: PathLike,
    features: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    *,
    allow_nonfinite: bool = False,
) -> SAE:
    """Load an SAE, detecting its format from the files present.

    Reads SAELens (``cfg.json`` + ``sae_weights.safetensors``), sparsify (``cfg.json`` +
    ``sae.safetensors``), dictionary_learning (``ae.pt`` + ``config.json``) and Gemma
    Scope (``params.npz`` / ``params.safetensors``). Never unpickles arbitrary objects.

    Args:
        path: the SAE's folder, or its weights file.
        features: load only these feature indices (in this order). Safetensors files
            are sliced, so the rest of the dictionary is not read. The SAE gets
            ``d_sae == len(features)``; ``cfg.training["feature_indices"]`` maps its
            features back to the original ones.
        device: where to put the SAE (default: CPU).
        allow_nonfinite: load weights holding NaN or inf (refused by default: every
            output of such an SAE would be NaN).

    Returns:
        The SAE in eval mode; ``cfg.training["source_format"]`` names the format.

    Raises:
        FormatError: unknown format, missing or corrupt files, shapes that disagree
            with the config, or a pickle payload.

    Example:
        >>> sae = load_sae("checkpoints/topk_4608", features=[12, 7])  # doctest: +SKIP
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FormatError(f"No SAE at {p}: the path does not exist. Check the path.")
    for fmt in FORMATS:
        weights = fmt.find(p)
        if weights is not None:
            sae = fmt.load(weights, features=features, device=device)
            # saved by saekit: the tensors are also checked against the manifest (a change
            # that still parses); cfg.json, which users edit by hand, is checked by parsing
            verify_if_saekit(weights.parent, skip=(saelens.CFG,))
            if not allow_nonfinite:
                finite_weights(sae, str(p))
            return sae
    raise FormatError(_unknown_message(p))


def save_sae(sae: SAE, path: PathLike, log_sparsity: Tensor | None = None) -> Path:
    """Save ``sae`` in SAELens's layout (``cfg.json`` + ``sae_weights.safetensors``).

    Written atomically (:func:`saekit._storage.write_folder`): the new version is built
    beside the old one and swapped in, so a failed save (disk full) leaves the previous
    SAE loadable; other files in an existing folder are kept. A ``manifest.json`` records
    each file's size and hash, and :func:`load_sae` checks it. SAELens's ``SAE.load_from_disk``
    reads the result; BatchTopK SAEs are written as JumpReLU with one shared threshold,
    as SAELens does.

    Args:
        sae: the SAE.
        path: target folder.
        log_sparsity: optional ``[d_sae]`` log10 feature density (``sparsity.safetensors``).

    Returns:
        The folder written.
    """
    return saelens.save(sae, Path(path).expanduser(), log_sparsity=log_sparsity)


def _unknown_message(p: Path) -> str:
    looks = "; ".join(fmt.LOOKS_FOR for fmt in FORMATS)
    if p.is_dir():
        nested = _nested_saes(p)
        if nested:
            shown = ", ".join(str(n.relative_to(p)) for n in nested[:12])
            more = f" (and {len(nested) - 12} more)" if len(nested) > 12 else ""
            return (f"{p} holds {len(nested)} SAEs in subfolders: {shown}{more}. Pass one of "
                    f"them, e.g. load_sae({str(nested[0])!r}).")
        found = sorted(x.name for x in p.iterdir())[:20]
        return (f"Could not tell the SAE format of folder {p}. Looked for: {looks}. "
                f"Found: {found or 'nothing'}. Point load_sae at the folder holding those files.")
    return (f"Could not tell the SAE format of file {p}. Looked for: {looks}. Pass the SAE's "
            "folder, or one of those files.")


def _nested_saes(root: Path, depth: int = 2) -> list[Path]:
    """Subfolders (up to ``depth`` levels down) that hold an SAE in a known format."""
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        level = sorted(c for d in level for c in d.iterdir() if c.is_dir())
        found += [c for c in level if any(fmt.find(c) is not None for fmt in FORMATS)]
    return found
