"""Adapters for the field's SAE file formats, one module each.

Each module has ``NAME``, ``LOOKS_FOR`` (what files it recognises, for error
messages), ``find(path) -> weights file | None`` and
``load(weights, features=None, device=None) -> SAE``; :mod:`saekit.sae.formats.saelens`
also has ``save``. :func:`saekit.sae.load_sae` tries them in :data:`FORMATS` order.
Optional libraries (safetensors, numpy) are imported when a file is read.
"""

from __future__ import annotations

from saekit.sae.formats import dictionary_learning, gemma_scope, saelens, sparsify

FORMATS = (saelens, sparsify, dictionary_learning, gemma_scope)

__all__ = ["FORMATS", "dictionary_learning", "gemma_scope", "saelens", "sparsify"]
