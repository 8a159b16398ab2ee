"""Every use of another library's private API lives in counteroffer.compat, behind a version check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from counteroffer import compat

SOURCE = Path(compat.__file__).parent
PRIVATE = re.compile(
    r"vllm_generation|_iter_named_params|sync_weights|scheduler_config|quant_method|DynamicLayer|\.layers\s*=|"
    r"hf_quantizer|is_quantized\s*=|\._attn_implementation\b"
)


def test_no_private_api_outside_the_compatibility_module() -> None:
    uses = [
        f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
        for path in SOURCE.rglob("*.py")
        if path.name != "compat.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if PRIVATE.search(line) and not line.lstrip().startswith("#")
    ]
    assert uses == []


@pytest.fixture
def fresh_checks():  # noqa: ANN201
    compat.require.cache_clear()
    yield
    compat.require.cache_clear()


def test_the_installed_versions_are_the_tested_ones(fresh_checks) -> None:  # noqa: ANN001
    assert compat.require("transformers").startswith("5.")
    assert compat.require("trl").startswith("1.16")


def test_an_untested_version_fails_with_both_versions_named(fresh_checks, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(compat.TESTED, "transformers", ">=4.0,<5")
    monkeypatch.delenv("COUNTEROFFER_SKIP_VERSION_CHECK", raising=False)
    with pytest.raises(compat.IncompatibleVersionError, match=r"transformers 5\.\S+ is installed.*<5,>=4\.0|>=4\.0,<5"):
        compat.cache_layer_base()
    compat.require.cache_clear()
    monkeypatch.setenv("COUNTEROFFER_SKIP_VERSION_CHECK", "1")
    assert compat.cache_layer_base().__name__ == "DynamicLayer"  # the user's own risk


def test_a_missing_library_is_named(fresh_checks, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(compat.TESTED, "no-such-library", ">=1")
    with pytest.raises(compat.IncompatibleVersionError, match="no-such-library is not installed"):
        compat.require("no-such-library")
