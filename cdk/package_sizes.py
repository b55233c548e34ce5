"""How big the stack's Lambda packages are, measured the way the stack packages them.

The stack ships two assets (cdk/constructs/lambdas.py): the layer (``cdk/layer_build.py``'s build:
``formica`` and its locked dependencies) and one code asset, the ``functions/`` folder, shared by
every function (each function's handler is ``<folder>.app.handler``). Both are zipped from their
directory minus ``ASSET_EXCLUDES``. Lambda's limits apply to what one function gets: its code and
its layers together at most 250 MB unzipped, and a zip uploaded directly at most 50 MB
(docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). tests/infra/test_package_sizes.py
holds the packages under those limits with a margin; bench/package_sizes.py writes the figures.

    python -m cdk.package_sizes     # build (or reuse) the layer and print the sizes
"""

from __future__ import annotations

import fnmatch
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cdk.assets import ASSET_EXCLUDES
from cdk.layer_build import REPO_ROOT, build_layer

MB = 1024 * 1024
# Lambda's quotas, as AWS states them (250 MB = 262,144,000 bytes; 50 MB = 52,428,800 bytes).
UNZIPPED_LIMIT_BYTES = 250 * MB
ZIPPED_DIRECT_UPLOAD_LIMIT_BYTES = 50 * MB
FUNCTIONS_DIR = REPO_ROOT / "functions"
# The AWS SDK for Python: in the Lambda runtime already, and in the layer when the lock pins it.
SDK_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer")


@dataclass(frozen=True)
class AssetSize:
    """One asset directory as CDK would zip it: its files, their bytes, and the zip's bytes."""

    files: int
    unzipped: int
    zipped: int


def _excluded(relative: str, excludes: Sequence[str]) -> bool:
    """Whether CDK's glob excludes drop ``relative`` (a posix path inside the asset).

    ``**/name`` drops any file or directory so named at any depth (and a directory's contents with
    it); any other pattern is matched against the whole relative path.
    """
    parts = relative.split("/")
    for pattern in excludes:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts):
                return True
        elif fnmatch.fnmatchcase(relative, pattern):
            return True
    return False


def asset_files(directory: Path, excludes: Sequence[str] = ASSET_EXCLUDES) -> Iterator[Path]:
    """Every file of the asset ``directory``, sorted, minus the excluded ones."""
    for root, dirs, files in os.walk(directory):
        base = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not _excluded((base / d).relative_to(directory).as_posix(), excludes)
        )
        for name in sorted(files):
            path = base / name
            if not _excluded(path.relative_to(directory).as_posix(), excludes):
                yield path


def measure_asset(directory: Path, excludes: Sequence[str] = ASSET_EXCLUDES) -> AssetSize:
    """Zip ``directory`` (deflate, level 9, as CDK zips an asset) into a scratch file and measure it."""
    files = list(asset_files(directory, excludes))
    unzipped = sum(path.stat().st_size for path in files)
    with tempfile.TemporaryDirectory(prefix="formica-asset-") as scratch:
        archive = Path(scratch) / "asset.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
            for path in files:
                zipped.write(path, path.relative_to(directory).as_posix())
        return AssetSize(files=len(files), unzipped=unzipped, zipped=archive.stat().st_size)


def distributions(site: Path) -> dict[str, str]:
    """``{name: version}`` of the distributions installed in ``site`` (their ``.dist-info``)."""
    found: dict[str, str] = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        found[name.lower().replace("_", "-")] = version
    return found


def directory_bytes(directory: Path, excludes: Sequence[str] = ASSET_EXCLUDES) -> int:
    """The unzipped bytes of ``directory`` as an asset would hold them (0 when it is absent)."""
    if not directory.is_dir():
        return 0
    return sum(path.stat().st_size for path in asset_files(directory, excludes))


def sdk_bytes(site: Path) -> dict[str, int]:
    """The unzipped bytes of each AWS SDK package the layer's ``site`` holds (absent ones: 0)."""
    return {name: directory_bytes(site / name) for name in SDK_DISTRIBUTIONS}


@dataclass(frozen=True)
class PackageSizes:
    """The layer, the shared functions asset and each function's own folder."""

    layer_dir: Path
    layer: AssetSize
    functions: AssetSize
    function_folders: dict[str, int]
    sdk: dict[str, int]

    @property
    def per_function_unzipped(self) -> int:
        """What each function is deployed with: the shared code asset and the layer, unzipped."""
        return self.functions.unzipped + self.layer.unzipped


def measure(*, layer_dir: Path | None = None, functions_dir: Path = FUNCTIONS_DIR) -> PackageSizes:
    """Build (or reuse) the layer as ``cdk synth`` does and measure it with the functions asset."""
    layer = layer_dir or build_layer()
    folders = {
        entry.name: directory_bytes(entry)
        for entry in sorted(functions_dir.iterdir())
        if (entry / "app.py").is_file()
    }
    return PackageSizes(
        layer_dir=layer,
        layer=measure_asset(layer),
        functions=measure_asset(functions_dir),
        function_folders=folders,
        sdk=sdk_bytes(layer / "python"),
    )


def main() -> int:
    sizes = measure()
    layer, functions, sdk = sizes.layer, sizes.functions, sum(sizes.sdk.values())
    print(
        f"layer {sizes.layer_dir}: {layer.unzipped / MB:.1f} MB unzipped, {layer.zipped / MB:.1f} MB zipped"
    )
    print(f"  of which the AWS SDK: {sdk / MB:.1f} MB unzipped")
    print(
        f"functions asset: {functions.unzipped / 1024:.0f} KB unzipped, {functions.zipped / 1024:.0f} KB zip"
    )
    for name, size in sizes.function_folders.items():
        print(f"  {name}: {size / 1024:.1f} KB")
    total, limit = sizes.per_function_unzipped / MB, UNZIPPED_LIMIT_BYTES / MB
    print(f"each function, code + layer: {total:.1f} MB of {limit:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
