"""The registry of rejection codes, and docs/rejections.md that lists it."""

import importlib
import pkgutil
import re

import pytest

import tally.model
from tally.model import DecodeError, Rejection, all_rejection_classes
from tally.rules import SpentInputError

from .make_rejections_doc import DOC, MODULES, import_all, meaning, render

assert import_all() == [], "every package that declares rejections must import"
PACKAGES = ["tally.model", *MODULES]
GROUPING_CLASSES = {DecodeError}
CODE_PATTERN = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)*")
ROW = re.compile(r"^\| `(?P<code>[^`]+)` \| `(?P<path>[^`]+)` \| (?P<status>\d+) \|", re.MULTILINE)


def exported_rejections() -> dict[str, type[Rejection]]:
    """Every Rejection subclass in the `__all__` of a package that declares rejections."""
    found = {}
    names = list(PACKAGES)
    for package in PACKAGES:
        path = getattr(importlib.import_module(package), "__path__", [])
        names += [m.name for m in pkgutil.walk_packages(path, package + ".")]
    for name in names:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for attribute in getattr(module, "__all__", ()):
            value = getattr(module, attribute)
            if isinstance(value, type) and issubclass(value, Rejection) and value is not Rejection:
                found[f"{name}.{attribute}"] = value
    return found


def test_registry_maps_each_code_to_one_class():
    registry = all_rejection_classes()
    assert len(set(registry.values())) == len(registry)
    for code, cls in registry.items():
        assert cls.code == code


def test_declaring_a_code_twice_is_an_error_at_definition():
    with pytest.raises(TypeError, match=r"input\.spent"):

        class AnotherSpentError(Rejection):
            code = "input.spent"

    assert all_rejection_classes()["input.spent"] is SpentInputError


def test_registered_codes_are_dotted_lower_case():
    for code in all_rejection_classes():
        assert CODE_PATTERN.fullmatch(code), code


def test_every_exported_rejection_has_its_own_registered_code():
    exported = exported_rejections()
    assert len(exported) >= 50
    for path, cls in exported.items():
        if cls in GROUPING_CLASSES or "code" not in vars(cls):
            # A grouping class has no code of its own, and groups at least one that has.
            assert "code" not in vars(cls), path
            assert any(
                issubclass(other, cls) and other is not cls
                for other in all_rejection_classes().values()
            ), f"{path} has no code and groups nothing"
            continue
        assert "code" in vars(cls), f"{path} inherits its code"
        assert all_rejection_classes()[cls.code] is cls, path


def test_every_registered_rejection_is_exported():
    exported = set(exported_rejections().values())
    for code, cls in all_rejection_classes().items():
        if cls.__module__.startswith("tests."):
            continue
        assert cls in exported, f"{code} ({cls.__module__}.{cls.__name__}) is not in any __all__"


def test_every_rejection_documents_its_meaning():
    for code, cls in all_rejection_classes().items():
        assert meaning(cls), code
        assert cls.__doc__ is not Rejection.__doc__, code


@pytest.mark.parametrize("package", ["tally.model", "tally.rules"])
def test_ledger_rejections_answer_with_a_client_error_status(package):
    for code, cls in all_rejection_classes().items():
        if cls.__module__.startswith(package):
            assert 400 <= cls.http_status < 500, code


def test_rejection_carries_code_message_and_detail():
    error = SpentInputError("coin ab was already spent", coin_id="ab", spent_by="cd")
    assert error.to_dict() == {
        "code": "input.spent",
        "message": "coin ab was already spent",
        "detail": {"coin_id": "ab", "spent_by": "cd"},
    }
    assert str(error) == "coin ab was already spent"
    assert repr(error) == "SpentInputError(input.spent: coin ab was already spent)"


def test_decode_errors_share_a_grouping_class():
    decode_codes = {c for c, cls in all_rejection_classes().items() if issubclass(cls, DecodeError)}
    assert decode_codes == {
        "decode.malformed",
        "decode.truncated",
        "decode.trailing",
        "decode.type",
        "decode.noncanonical",
        "decode.too_large",
    }


def test_model_exports_every_model_rejection():
    for cls in all_rejection_classes().values():
        if cls.__module__.startswith("tally.model."):
            assert getattr(tally.model, cls.__name__) is cls


# docs/rejections.md


def documented_rows() -> dict[str, tuple[str, int]]:
    text = DOC.read_text(encoding="utf-8")
    rows = {}
    for match in ROW.finditer(text):
        assert match["code"] not in rows, f"{match['code']} is listed twice"
        rows[match["code"]] = (match["path"], int(match["status"]))
    return rows


def test_every_registered_code_is_documented_with_its_class_and_status():
    rows = documented_rows()
    for code, cls in all_rejection_classes().items():
        if cls.__module__.startswith("tests."):
            continue
        assert code in rows, f"{code} is missing from docs/rejections.md"
        assert rows[code] == (f"{cls.__module__}.{cls.__name__}", cls.http_status), code


def test_every_documented_code_is_registered():
    registry = all_rejection_classes()
    for code in documented_rows():
        assert code in registry, f"docs/rejections.md lists {code}, which no class declares"


def test_rejections_doc_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "regenerate with: PYTHONPATH=src python tests/model/make_rejections_doc.py"
    )
