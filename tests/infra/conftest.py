"""Synthesize the Formica stack once per session, and a second, fully configured variant once.

See tests/infra/synthesis.py: the layer asset is the library alone, bundling is skipped, and the
ASL is the real file or, until it exists, a stand-in written to a temporary directory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.infra.synthesis import (
    DEFAULT_CONTEXT,
    VARIANT_CONTEXT,
    VARIANT_ENV,
    Synth,
    definition_file,
    synthesize,
)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    root = tmp_path_factory.mktemp("cdk-default")
    yield synthesize(root / "cdk.out", definition_file(root), DEFAULT_CONTEXT)


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    root = tmp_path_factory.mktemp("cdk-variant")
    yield synthesize(root / "cdk.out", definition_file(root), VARIANT_CONTEXT, VARIANT_ENV)
