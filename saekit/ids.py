"""Identity: which SAE, which feature.

A feature is a :class:`FeatureRef` ``(sae, feature)``: the SAE's name and the latent's
index. SAEs are named by one rule, :func:`sae_name` (one SAE) and :func:`name_saes` (a
collection), used by training, evaluation, the statistics pass, every analysis and every
view, so the same SAE has the same name everywhere and a ref found in one result can be
looked up in another.

Example:
    >>> from saekit.ids import FeatureRef
    >>> ref = FeatureRef("topk-2304@resid_post.15", 12)
    >>> ref, str(ref)
    (FeatureRef(sae='topk-2304@resid_post.15', feature=12), 'topk-2304@resid_post.15 #12')
    >>> FeatureRef.from_dict(ref.to_dict()) == ref
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saekit.errors import SaekitError

if TYPE_CHECKING:
    from saekit.sae.base import SAE


@dataclass(frozen=True, order=True)
class FeatureRef:
    """One feature of one SAE: frozen, hashable, ordered (by SAE name, then index).

    Attributes:
        sae: the SAE's name (see :func:`sae_name`).
        feature: the latent's index, ``0 <= feature < d_sae``.
    """

    sae: str
    feature: int

    def __post_init__(self) -> None:
        if not isinstance(self.sae, str) or not self.sae:
            raise SaekitError(
                f"FeatureRef.sae must be a non-empty SAE name (str); got {self.sae!r}. "
                "Use saekit.ids.sae_name(sae) to name an SAE."
            )
        f = self.feature
        if isinstance(f, bool) or not hasattr(f, "__index__"):
            raise SaekitError(
                f"FeatureRef.feature must be an integer index; got {f!r} ({type(f).__name__}). "
                "Pass e.g. FeatureRef('topk-2304', 12)."
            )
        object.__setattr__(self, "feature", int(f.__index__()))
        if self.feature < 0:
            raise SaekitError(f"FeatureRef.feature must be >= 0; got {self.feature}.")

    def __str__(self) -> str:
        return f"{self.sae} #{self.feature}"

    def to_dict(self) -> dict[str, Any]:
        """``{"sae": name, "feature": index}`` (JSON, and what views send on a click)."""
        return {"sae": self.sae, "feature": self.feature}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureRef:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(d["sae"], d["feature"])
        except (KeyError, TypeError):
            raise SaekitError(
                f"Expected a feature reference {{'sae': name, 'feature': index}}; got {d!r}."
            ) from None


def sae_name(sae: SAE) -> str:
    """The name of one SAE: ``cfg.name`` when set, else ``"<architecture>-<d_sae>@<site>"``.

    The site part is left out when the SAE does not know its site.

    Example:
        >>> from saekit.sae import SAEConfig, TopKSAE
        >>> sae_name(TopKSAE(SAEConfig(d_in=8, d_sae=32, k=4, site="resid_post.3")))
        'topk-32@resid_post.3'
    """
    cfg = sae.cfg
    if cfg.name:
        return cfg.name
    base = f"{cfg.architecture}-{cfg.d_sae}"
    return f"{base}@{cfg.site}" if cfg.site else base


def name_saes(saes: SAE | Sequence[SAE] | Mapping[str, SAE]) -> dict[str, SAE]:
    """``{name: sae}`` for an SAE, a list of SAEs, or a dict (whose keys are the names).

    Unnamed SAEs get :func:`sae_name`; repeats get ``"-2"``, ``"-3"``... in order. The
    SAEs themselves are not changed: the names live in the returned dict (and in the
    refs of the results computed from it).

    Raises:
        SaekitError: nothing given, or an entry that is not an SAE, or a name that is
            not a non-empty string.
    """
    from saekit.sae.base import SAE

    if isinstance(saes, SAE):
        saes = [saes]
    if isinstance(saes, Mapping):
        pairs = list(saes.items())
        bad_names = [k for k, _ in pairs if not isinstance(k, str) or not k]
        if bad_names:
            raise SaekitError(
                f"SAE names must be non-empty strings; got {bad_names}. Use e.g. {{'l15-4k': sae}}."
            )
        named = dict(pairs)
    else:
        items = list(saes)
        named = {}
        for sae in items:
            base = sae_name(sae) if isinstance(sae, SAE) else repr(type(sae).__name__)
            name, n = base, 1
            while name in named:
                n += 1
                name = f"{base}-{n}"
            named[name] = sae
    if not named:
        raise SaekitError("No SAEs given. Pass an SAE, a list of SAEs, or {name: sae}.")
    bad = [k for k, v in named.items() if not isinstance(v, SAE)]
    if bad:
        raise SaekitError(
            f"Expected an SAE, a list of SAEs or {{name: sae}}; entries {bad} are not saekit SAEs. "
            "Load foreign files with saekit.load_sae(path)."
        )
    return named
