"""The Lambda packages fit Lambda's limits with room to spare, and the layer ships only the AWS SDK
it pins on purpose.

The layer is built as `cdk synth` builds it (cdk/layer_build.py: pip from PyPI, reused from
.layer-build/ when its inputs are unchanged), the functions asset is the functions/ folder every
function shares; both are measured as CDK zips them (cdk/package_sizes.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cdk.layer_build import LayerBuildError, read_lock
from cdk.package_sizes import (
    FUNCTIONS_DIR,
    MB,
    SDK_DISTRIBUTIONS,
    UNZIPPED_LIMIT_BYTES,
    ZIPPED_DIRECT_UPLOAD_LIMIT_BYTES,
    PackageSizes,
    asset_files,
    distributions,
    measure,
    measure_asset,
)

# A fifth of each limit is kept free: a dependency that grows (botocore gains about a megabyte a
# month) fails here, with time to act, rather than in a deploy.
MARGIN = 0.20
UNZIPPED_BUDGET = int(UNZIPPED_LIMIT_BYTES * (1 - MARGIN))  # 200 MB
ZIPPED_BUDGET = int(ZIPPED_DIRECT_UPLOAD_LIMIT_BYTES * (1 - MARGIN))  # 40 MB

# The layer ships the AWS SDK although the python3.12 runtime has one: pinned on purpose (D53).
SDK_PINNED_BECAUSE = (
    "the SDK that runs in Lambda is the one the suite ran: every adapter's contract test on moto, "
    "and the metering hook on botocore's before-call event (formica.store.usage), run against the "
    "locked botocore; the runtime's own SDK is another version, which AWS updates without notice, "
    "and AWS advises packaging the SDK a function depends on"
)
FUNCTION_FOLDERS = sorted(entry.name for entry in FUNCTIONS_DIR.iterdir() if (entry / "app.py").is_file())


@pytest.fixture(scope="module")
def sizes() -> Iterator[PackageSizes]:
    try:
        yield measure()
    except LayerBuildError as exc:
        pytest.fail(f"the layer could not be built (pip reaches PyPI; `make install` first): {exc}")


def test_the_layer_fits_with_the_margin(sizes: PackageSizes) -> None:
    layer = sizes.layer
    assert layer.files > 100 and (sizes.layer_dir / "python" / "formica" / "__init__.py").is_file()
    assert layer.unzipped < UNZIPPED_BUDGET, f"layer: {layer.unzipped / MB:.1f} MB unzipped"
    assert layer.zipped < ZIPPED_BUDGET, f"layer: {layer.zipped / MB:.1f} MB zipped"


def test_the_functions_asset_fits_with_the_margin(sizes: PackageSizes) -> None:
    functions = sizes.functions
    assert functions.unzipped < UNZIPPED_BUDGET and functions.zipped < ZIPPED_BUDGET
    # Only handlers: the library lives in the layer, so the shared asset stays small.
    assert functions.unzipped < 1 * MB, f"functions/: {functions.unzipped / 1024:.0f} KB"


@pytest.mark.parametrize("folder", FUNCTION_FOLDERS)
def test_each_function_with_its_layer_fits_with_the_margin(sizes: PackageSizes, folder: str) -> None:
    # Every function is deployed with the whole functions asset (its own folder in it) and the layer.
    own = sizes.function_folders[folder]
    assert 0 < own <= sizes.functions.unzipped
    total = sizes.per_function_unzipped
    assert total < UNZIPPED_BUDGET, f"{folder}: {total / MB:.1f} MB of code and layer, unzipped"


def test_the_layer_ships_the_aws_sdk_only_as_the_lock_pins_it(sizes: PackageSizes) -> None:
    shipped = {
        name: version
        for name, version in distributions(sizes.layer_dir / "python").items()
        if name in SDK_DISTRIBUTIONS
    }
    pinned = {name: version for name, version in read_lock().items() if name in SDK_DISTRIBUTIONS}
    # Whatever of the SDK the layer holds is exactly what the lock pins, never a stray copy that a
    # dependency dragged in; and a pinned SDK says why it is pinned.
    assert shipped == pinned
    if shipped:
        assert set(shipped) == {"boto3", "botocore", "s3transfer"}, SDK_PINNED_BECAUSE
        assert sum(sizes.sdk.values()) == sum(sizes.sdk[name] for name in shipped) > 0
    else:
        assert sum(sizes.sdk.values()) == 0


def test_an_asset_is_measured_without_what_cdk_excludes(tmp_path: Path) -> None:
    # Given an asset folder with caches and editable-install metadata beside the code
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "app.py").write_text("x = 1\n" * 1000)
    (tmp_path / "pkg" / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"\0" * 5000)
    (tmp_path / "pkg" / "stray.pyc").write_bytes(b"\0" * 5000)
    (tmp_path / "formica.egg-info").mkdir()
    (tmp_path / "formica.egg-info" / "PKG-INFO").write_text("Name: formica\n")

    # When it is measured
    files = [path.relative_to(tmp_path).as_posix() for path in asset_files(tmp_path)]
    size = measure_asset(tmp_path)

    # Then only the code counts, and the zip is the deflated code
    assert files == ["pkg/app.py"]
    assert (size.files, size.unzipped) == (1, 6000)
    assert 0 < size.zipped < size.unzipped
