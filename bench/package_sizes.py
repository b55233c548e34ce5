"""Package sizes: the Lambda layer and the functions asset, unzipped and zipped, against Lambda's limits.

The layer is built as ``cdk synth`` builds it (cdk/layer_build.py: the lock installed by pip for
python3.12 on arm64, reused from .layer-build/ when unchanged) and both assets are zipped as CDK
zips them (cdk/package_sizes.py). Baselines are Lambda's quotas: 250 MB unzipped for a function's
code and layers together, 50 MB for a zip uploaded directly. The AWS SDK rows say how much of the
layer is the SDK it pins on purpose (docs/decisions.md D53). Sizes, not times: ``quick`` changes
nothing.
"""

from __future__ import annotations

from bench.common import Figure, standalone
from cdk.package_sizes import MB, UNZIPPED_LIMIT_BYTES, ZIPPED_DIRECT_UPLOAD_LIMIT_BYTES, measure

BENCHMARK = "package sizes"


def run(quick: bool = False) -> list[Figure]:
    sizes = measure()
    unzipped_limit = UNZIPPED_LIMIT_BYTES / MB
    zipped_limit = ZIPPED_DIRECT_UPLOAD_LIMIT_BYTES / MB
    sdk = sum(sizes.sdk.values())
    largest, largest_bytes = max(sizes.function_folders.items(), key=lambda item: item[1])
    return [
        Figure(
            BENCHMARK,
            "layer, unzipped",
            sizes.layer.unzipped / MB,
            "MB",
            baseline="Lambda limit, code + layers",
            baseline_value=unzipped_limit,
            note=f"{sizes.layer.files} files: formica and its locked dependencies",
        ),
        Figure(
            BENCHMARK,
            "layer, zipped",
            sizes.layer.zipped / MB,
            "MB",
            baseline="direct upload limit",
            baseline_value=zipped_limit,
            note="deflate level 9, as CDK zips an asset",
        ),
        Figure(
            BENCHMARK,
            "layer: the AWS SDK (boto3, botocore, s3transfer), unzipped",
            sdk / MB,
            "MB",
            baseline="the whole layer",
            baseline_value=sizes.layer.unzipped / MB,
            note="pinned on purpose (D53); botocore is nearly all of it",
        ),
        Figure(
            BENCHMARK,
            "functions asset, unzipped",
            sizes.functions.unzipped / MB,
            "MB",
            baseline="Lambda limit, code + layers",
            baseline_value=unzipped_limit,
            note=f"functions/, shared by all {len(sizes.function_folders)} functions; largest: {largest} "
            f"({largest_bytes / 1024:.1f} KB)",
        ),
        Figure(
            BENCHMARK,
            "functions asset, zipped",
            sizes.functions.zipped / MB,
            "MB",
            baseline="direct upload limit",
            baseline_value=zipped_limit,
        ),
        Figure(
            BENCHMARK,
            "each function: code + layer, unzipped",
            sizes.per_function_unzipped / MB,
            "MB",
            baseline="Lambda limit, code + layers",
            baseline_value=unzipped_limit,
            note="tests/infra/test_package_sizes.py holds it under 80% of the limit",
        ),
    ]


def main() -> None:
    standalone(run, __doc__ or BENCHMARK)


if __name__ == "__main__":
    main()
