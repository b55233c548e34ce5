"""Container cpu/memory (Kubernetes quantities) -> valid Fargate task sizes."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from formica.jobs.models import ContainerDefinition
from formica.runners.ecs import (
    DEFAULT_CPU_UNITS,
    DEFAULT_MEMORY_MIB,
    FARGATE_SIZES,
    ContainerSizeError,
    FargateSize,
    ephemeral_storage_gib,
    fargate_size,
    fargate_size_for,
    parse_cpu,
    parse_memory_bytes,
    parse_memory_mib,
)

# Every valid Fargate Linux pair, written out from the AWS table (not derived from the code's table).
AWS_TABLE = {
    256: [512, 1024, 2048],
    512: [1024, 2048, 3072, 4096],
    1024: [2048, 3072, 4096, 5120, 6144, 7168, 8192],
    2048: [m * 1024 for m in range(4, 17)],
    4096: [m * 1024 for m in range(8, 31)],
    8192: [m * 1024 for m in range(16, 61, 4)],
    16384: [m * 1024 for m in range(32, 121, 8)],
}
ALL_PAIRS = sorted((cpu, memory) for cpu, memories in AWS_TABLE.items() for memory in memories)


def test_the_size_table_is_the_aws_table() -> None:
    assert {cpu: list(memories) for cpu, memories in FARGATE_SIZES.items()} == AWS_TABLE


@pytest.mark.parametrize(
    ("text", "vcpu"),
    [
        ("500m", "0.5"),
        ("250m", "0.25"),
        ("1", "1"),
        ("0.25", "0.25"),
        ("2.5", "2.5"),
        ("1000m", "1"),
        ("1e1", "10"),
    ],
)
def test_parse_cpu(text: str, vcpu: str) -> None:
    assert parse_cpu(text) == Decimal(vcpu)


@pytest.mark.parametrize("text", ["", "abc", "1Gi", "-1", "1 cores", "5x"])
def test_parse_cpu_rejects_what_is_not_a_cpu_quantity(text: str) -> None:
    with pytest.raises(ContainerSizeError):
        parse_cpu(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512Mi", 512 * 2**20),
        ("2Gi", 2 * 2**30),
        ("1Ki", 1024),
        ("1G", 10**9),
        ("1k", 1000),
        ("128974848", 128974848),
        ("129e6", 129 * 10**6),
        ("1.5Gi", 3 * 2**29),
        ("500m", 500 * 10**6),  # formicary's spelling of 500 MB
        ("0.5Mi", 2**19),
        ("1Ti", 2**40),
    ],
)
def test_parse_memory_bytes(text: str, expected: int) -> None:
    assert parse_memory_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "Mi", "1Zi", "1 GB", "-5Mi", "one"])
def test_parse_memory_rejects_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ContainerSizeError):
        parse_memory_bytes(text)


def test_memory_mib_rounds_up() -> None:
    assert parse_memory_mib("1G") == 954  # 953.67 MiB
    assert parse_memory_mib("1") == 1


@pytest.mark.parametrize(("cpu", "memory"), ALL_PAIRS)
def test_every_valid_pair_asked_for_exactly_is_given_back(cpu: int, memory: int) -> None:
    cores = str(Decimal(cpu) / 1024)
    assert fargate_size(cores, f"{memory}Mi") == FargateSize(cpu, memory)
    assert fargate_size(f"{cpu * 1000 // 1024}m", f"{memory // 1024}Gi") == FargateSize(cpu, memory)


def _reference(cpu_units: int, memory_mib: int) -> FargateSize | None:
    for cpu, memory in ALL_PAIRS:  # sorted by cpu then memory: the first fit is the smallest
        if cpu >= cpu_units and memory >= memory_mib:
            return FargateSize(cpu, memory)
    return None


CPU_GRID = [None, *(f"{m}m" for m in range(125, 16001, 125)), "16", "17"]
MEMORY_GRID = [None, *(f"{m}Mi" for m in range(256, 123 * 1024, 256))]


def test_the_smallest_fitting_size_is_chosen_across_a_full_grid() -> None:
    checked = 0
    for cpu in CPU_GRID:
        for memory in MEMORY_GRID:
            if cpu is None and memory is None:
                continue
            units = math.ceil(parse_cpu(cpu) * 1024) if cpu else 0
            mib = parse_memory_mib(memory) if memory else 0
            expected = _reference(units, mib)
            if expected is None:
                with pytest.raises(ContainerSizeError):
                    fargate_size(cpu, memory)
            else:
                got = fargate_size(cpu, memory)
                assert got == expected, (cpu, memory)
                assert got.memory in AWS_TABLE[got.cpu]
            checked += 1
    assert checked > 60_000


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("500m", "512Mi", FargateSize(512, 1024)),
        ("1", "2Gi", FargateSize(1024, 2048)),
        ("1", "512Mi", FargateSize(1024, 2048)),
        (None, "3Gi", FargateSize(512, 3072)),
        ("250m", None, FargateSize(256, 512)),
        ("2", "20Gi", FargateSize(4096, 20480)),
        ("4", "100Gi", FargateSize(16384, 106496)),
        ("16", "120Gi", FargateSize(16384, 122880)),
        ("100m", "500m", FargateSize(256, 512)),
        (None, "1G", FargateSize(256, 1024)),
        ("1.5", None, FargateSize(2048, 4096)),
    ],
)
def test_examples(cpu: str | None, memory: str | None, expected: FargateSize) -> None:
    assert fargate_size(cpu, memory) == expected


@pytest.mark.parametrize(("cpu", "memory"), [("17", None), (None, "121Gi"), ("16", "121Gi"), ("32", "1Gi")])
def test_beyond_fargate_is_an_error_that_names_the_values(cpu: str | None, memory: str | None) -> None:
    with pytest.raises(ContainerSizeError, match="no Fargate size"):
        fargate_size(cpu, memory)


def test_defaults_when_nothing_is_asked() -> None:
    assert fargate_size() == FargateSize(DEFAULT_CPU_UNITS, DEFAULT_MEMORY_MIB)
    assert fargate_size_for(None) == FargateSize(DEFAULT_CPU_UNITS, DEFAULT_MEMORY_MIB)
    assert DEFAULT_MEMORY_MIB in AWS_TABLE[DEFAULT_CPU_UNITS]


def test_limits_win_over_requests() -> None:
    container = ContainerDefinition(
        image="alpine", cpu_request="250m", cpu_limit="1", memory_request="512Mi", memory_limit="2Gi"
    )
    assert fargate_size_for(container) == FargateSize(1024, 2048)


def test_requests_are_used_without_limits() -> None:
    container = ContainerDefinition(image="alpine", cpu_request="500m", memory_request="1Gi")
    assert fargate_size_for(container) == FargateSize(512, 1024)


def test_formicary_kube_example_sizes() -> None:
    # kube-example2: cpu_limit "1", cpu_request 500m, memory_limit 2Gi, memory_request 1Gi.
    container = ContainerDefinition(
        image="ubuntu:16.04", cpu_limit="1", cpu_request="500m", memory_limit="2Gi", memory_request="1Gi"
    )
    assert fargate_size_for(container) == FargateSize(1024, 2048)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(None, None), ("2Gi", None), ("20Gi", None), ("21Gi", 21), ("50G", 47), ("200Gi", 200)],
)
def test_ephemeral_storage(limit: str | None, expected: int | None) -> None:
    assert ephemeral_storage_gib(ContainerDefinition(image="a", ephemeral_storage_limit=limit)) == expected


def test_ephemeral_storage_beyond_fargate_is_an_error() -> None:
    with pytest.raises(ContainerSizeError):
        ephemeral_storage_gib(ContainerDefinition(image="a", ephemeral_storage_limit="201Gi"))
