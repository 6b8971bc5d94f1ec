"""The three joints: identity (FeatureRef, SAE names), the boundary validators, storage."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from saekit import _boundary as b
from saekit import _storage as st
from saekit.errors import CompatibilityError, FormatError, SaekitError
from saekit.ids import FeatureRef, name_saes, sae_name
from saekit.sae import SAEConfig, TopKSAE


def _sae(d_sae: int = 16, site: str = "resid_post.1", name: str = "") -> TopKSAE:
    return TopKSAE(SAEConfig(d_in=4, d_sae=d_sae, k=2, site=site, name=name))


# ----- identity ------------------------------------------------------------------------
def test_feature_ref_is_frozen_hashable_ordered_and_round_trips() -> None:
    a, b2 = FeatureRef("x", 3), FeatureRef("x", np.int64(3))
    assert a == b2 and hash(a) == hash(b2) and type(b2.feature) is int
    assert sorted([FeatureRef("y", 0), FeatureRef("x", 9), FeatureRef("x", 1)]) == [
        FeatureRef("x", 1), FeatureRef("x", 9), FeatureRef("y", 0)]
    assert FeatureRef.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    with pytest.raises(AttributeError):
        a.feature = 4  # type: ignore[misc]
    for bad in ("3", 3.0, True, -1):
        with pytest.raises(SaekitError):
            FeatureRef("x", bad)  # type: ignore[arg-type]
    with pytest.raises(SaekitError, match="non-empty SAE name"):
        FeatureRef("", 1)
    with pytest.raises(SaekitError, match="feature reference"):
        FeatureRef.from_dict({"sae": "x"})


def test_one_naming_rule() -> None:
    assert sae_name(_sae(16)) == "topk-16@resid_post.1"
    assert sae_name(_sae(16, site="")) == "topk-16"
    assert sae_name(_sae(16, name="mine")) == "mine"
    a, b2, c = _sae(16), _sae(16), _sae(32)
    assert list(name_saes([a, b2, c])) == ["topk-16@resid_post.1", "topk-16@resid_post.1-2",
                                          "topk-32@resid_post.1"]
    assert list(name_saes(c)) == ["topk-32@resid_post.1"]
    assert name_saes({"l1": a})["l1"] is a
    with pytest.raises(SaekitError, match="not saekit SAEs"):
        name_saes({"l1": "nope"})  # type: ignore[dict-item]
    with pytest.raises(SaekitError, match="No SAEs"):
        name_saes([])


def test_name_survives_save_and_load(tmp_path) -> None:
    from saekit import load_sae, save_sae

    sae = _sae(8, name="l1-mine")
    torch.nn.init.normal_(sae.W_dec)
    assert load_sae(save_sae(sae, tmp_path / "s")).cfg.name == "l1-mine"


# ----- boundary ------------------------------------------------------------------------
@pytest.mark.parametrize("good, want", [(3, 3), (np.int64(3), 3), (np.uint8(3), 3),
                                        (torch.tensor(3), 3), (FeatureRef("s", 3), 3)])
def test_feature_id_accepts_integers_and_refs(good, want) -> None:
    assert b.feature_id(good, d_sae=8, sae="s") == want


@pytest.mark.parametrize("bad, words", [("12", "string"), (1.0, "float"), (np.float32(2.5), "float"),
                                        (True, "bool"), (float("nan"), "float"), (None, "not an integer"),
                                        (torch.tensor(1.0), "not an integer")])
def test_feature_id_refuses_non_integers(bad, words) -> None:
    with pytest.raises(SaekitError, match=words) as e:
        b.feature_id(bad, d_sae=8)
    assert "FeatureRef" in str(e.value)  # says how to fix it


def test_feature_id_range_and_sae_mismatch() -> None:
    with pytest.raises(CompatibilityError, match=r"valid: 0\.\.7"):
        b.feature_id(8, d_sae=8)
    with pytest.raises(SaekitError, match="refers to SAE 'a'"):
        b.feature_id(FeatureRef("a", 1), d_sae=8, sae="b")


def test_feature_ids_lists_and_refuses_strings() -> None:
    assert b.feature_ids(np.array([1, 2]), 8) == [1, 2]
    assert b.feature_ids(range(3), 8) == [0, 1, 2]
    assert b.feature_ids(np.int32(5), 8) == [5]
    with pytest.raises(SaekitError, match="string"):
        b.feature_ids("12", 8)
    with pytest.raises(SaekitError, match="No features"):
        b.feature_ids([], 8)
    with pytest.raises(SaekitError, match="float"):
        b.feature_ids([1, 2.0], 8)


def test_feature_values_refuse_non_finite() -> None:
    assert b.feature_values({np.int64(1): np.float32(2.0)}, "clamp", 4) == {1: 2.0}
    for v in (math.nan, math.inf, -math.inf, "3", True, None):
        with pytest.raises(SaekitError, match="finite number"):
            b.feature_values({1: v}, "clamp", 4)
    with pytest.raises(SaekitError, match="dict"):
        b.feature_values([1, 2], "clamp", 4)  # type: ignore[arg-type]


def test_texts_and_context() -> None:
    assert b.texts("a") == ["a"] and b.texts(("a", "b")) == ["a", "b"]
    for bad in ([], [""], ["a", 3], 5, b"x"):
        with pytest.raises(SaekitError):
            b.texts(bad)
    ids = torch.arange(10)
    assert b.within_context(ids, 10, truncate=False) is ids
    with pytest.raises(SaekitError, match="context is 4.*truncate=True"):
        b.within_context(ids, 4, truncate=False)
    assert b.within_context(ids, 4, truncate=True).tolist() == [6, 7, 8, 9]


def test_non_finite_weights_refused() -> None:
    sae = _sae(8)
    b.finite_weights(sae)
    with torch.no_grad():
        sae.W_dec[0, 0] = float("nan")
    with pytest.raises(CompatibilityError, match="W_dec.*allow_nonfinite"):
        b.finite_weights(sae, "x/")


# ----- storage -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "/abs", "a/b", ".hidden", "..", "a\\b",
                                  "x\x00y", "é", "CON", "a" * 300])
def test_safe_name_never_escapes(tmp_path, name) -> None:
    s = st.safe_name(name)
    assert "/" not in s and "\\" not in s and not s.startswith(".") and len(s) <= 90
    assert (tmp_path / s).resolve().parent == tmp_path.resolve()
    assert st.safe_name("topk-16@resid_post.1") == "topk-16@resid_post.1"
    assert st.safe_name("a/b") != st.safe_name("a_b")  # no collisions through cleaning


def test_write_folder_manifest_and_verify(tmp_path) -> None:
    d = tmp_path / "f"
    st.write_folder(d, {"a.txt": lambda p: p.write_text("one"), "b.bin": lambda p: p.write_bytes(b"12")})
    st.verify(d)
    man = json.loads((d / st.MANIFEST).read_text())["files"]
    assert man["a.txt"]["size"] == 3
    (d / "a.txt").write_text("on")
    with pytest.raises(FormatError, match="truncated"):
        st.verify(d)
    (d / "a.txt").write_text("two")
    with pytest.raises(FormatError, match="hash"):
        st.verify(d)


def test_failed_folder_write_keeps_previous_version(tmp_path) -> None:
    d = tmp_path / "f"
    st.write_folder(d, {"a.txt": lambda p: p.write_text("old")})

    def boom(p):
        p.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        st.write_folder(d, {"a.txt": boom})
    assert (d / "a.txt").read_text() == "old"
    st.verify(d)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temporaries left behind


def test_failed_file_write_keeps_previous_file(tmp_path) -> None:
    f = tmp_path / "x.json"
    st.write_json(f, {"a": 1})
    with pytest.raises(ValueError):
        st.write_json(f, {"a": math.nan})
    assert json.loads(f.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_stale_temporaries_cleaned_and_moved_aside_folder_restored(tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os;print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / f".x.json.{dead}-0123abcd.tmp").write_text("half")
    live = tmp_path / f".y.json.{os.getppid()}-0123abcd.tmp"  # another process, alive
    live.write_text("being written")
    mine = tmp_path / f".w.json.{os.getpid()}-0123abcd.tmp"  # our PID, but not ours: a restart
    mine.write_text("left by a crashed run that had this PID")
    aside = tmp_path / f".f.{dead}-89abcdef.old"
    aside.mkdir()
    (aside / "a.txt").write_text("kept")
    legacy = tmp_path / ".tmp-abc"
    legacy.write_text("x")
    os.utime(legacy, (0, 0))
    st.write_text(tmp_path / "z.txt", "new")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["z.txt", live.name, "f"])
    assert (tmp_path / "f" / "a.txt").read_text() == "kept"


def test_load_or_rebuild_recomputes_broken_entry(tmp_path, caplog) -> None:
    f = tmp_path / "e.json"
    built = []

    def load(p):
        try:
            return json.loads(p.read_text())
        except ValueError as err:
            raise FormatError(str(err)) from None

    def build(p):
        built.append(1)
        st.write_json(p, {"v": 2})

    assert st.load_or_rebuild(f, load, build, "entry") == {"v": 2}
    f.write_text('{"v": ')
    with caplog.at_level("WARNING", logger="saekit"):
        assert st.load_or_rebuild(f, load, build, "entry") == {"v": 2}
    assert len(built) == 2 and "broken" in caplog.text and "recomputing" in caplog.text


def test_load_sae_refuses_non_finite_weights(tmp_path) -> None:
    from saekit import load_sae, save_sae

    sae = _sae(8)
    with torch.no_grad():
        sae.b_enc[2] = float("inf")
    path = save_sae(sae, tmp_path / "s")
    with pytest.raises(CompatibilityError, match="NaN or infinite values in \\['b_enc'\\]"):
        load_sae(path)
    assert not bool(torch.isfinite(load_sae(path, allow_nonfinite=True).b_enc).all())


def test_text_form_shows_bidi_and_invisible_characters() -> None:
    from saekit._html import visible_token

    assert visible_token("a\u202eb\u2066c") == "a⟨U+202E⟩b⟨U+2066⟩c"
    assert visible_token("\u200b") == "⟨U+200B⟩" and visible_token("é\u200d") == "é\u200d"
    assert visible_token(" x\n\t") == " x↵⇥"
