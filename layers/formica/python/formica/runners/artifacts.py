"""Artifacts: the files a task leaves in its working directory, uploaded to the blob store.

- ``artifacts.paths`` entries are relative paths, directories (taken recursively) or globs (``**``
  included), always inside the working directory (the rule is ``formica.jobs.limits``, checked at
  upload too): an absolute entry, one with ``..``, or a symlink (file or directory) that resolves
  outside the directory is an ArtifactPathError, and the attempt fails with ERR_ARTIFACT_PATH.
  Symlinks that stay inside are uploaded as the file they name; symlinked directories inside are
  not followed.
- ``artifacts.when`` is formicary's ``onSuccess`` (default), ``onFailed`` or ``always``,
  case-insensitive; ``never`` is accepted too.
- Keys follow the S3 layout (docs/architecture.md): ``{org}/{request_id}/{task_type}/artifacts/{path}``;
  an instance of a task fan-out's ``{path}`` begins with its ``instance-{index}/``.
  Each upload records its size and sha256; the content type is guessed from the file name.
- ``dependencies`` of a task are its earlier tasks' artifacts, downloaded into the working directory at
  their relative paths before the script runs.
"""

from __future__ import annotations

import logging
import mimetypes
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Literal

from formica.jobs.limits import artifact_path_problem
from formica.jobs.models import TaskDefinition
from formica.runners.base import EXIT_CODE_NONE, ArtifactInfo, TaskContext, TaskOutcome
from formica.store.blobs import DEFAULT_CONTENT_TYPE, BlobStore, BlobStoreError
from formica.store.schema import artifact_key  # the S3 layout contract, kept in one place

logger = logging.getLogger(__name__)

ERR_ARTIFACTS_UPLOAD = "ERR_ARTIFACTS_UPLOAD"
ERR_ARTIFACTS_DOWNLOAD = "ERR_ARTIFACTS_DOWNLOAD"
ERR_ARTIFACT_PATH = "ERR_ARTIFACT_PATH"
"""An artifact path or symlink leaves the working directory: the attempt fails."""
ARTIFACTS_SEGMENT = "artifacts"

When = Literal["onSuccess", "onFailed", "always", "never"]
_WHEN_SPELLINGS: dict[str, When] = {
    "onsuccess": "onSuccess",
    "on_success": "onSuccess",
    "success": "onSuccess",
    "oncompleted": "onSuccess",
    "onfailed": "onFailed",
    "on_failed": "onFailed",
    "onfailure": "onFailed",
    "on_failure": "onFailed",
    "failed": "onFailed",
    "always": "always",
    "never": "never",
}


class ArtifactError(RuntimeError):
    """Artifacts could not be collected, uploaded or downloaded."""


class ArtifactPathError(ArtifactError, ValueError):
    """An artifact path would leave the working directory."""


def normalize_when(when: str) -> When:
    """formicary's ``artifacts.when`` value in its canonical spelling; ValueError when unknown.

    Definition validation should call this so an unknown value is refused at upload time, not later.
    """
    canonical = _WHEN_SPELLINGS.get(when.strip().lower())
    if canonical is None:
        raise ValueError(f"artifacts.when must be onSuccess, onFailed or always, not {when!r}")
    return canonical


def should_upload(when: str, succeeded: bool) -> bool:
    """Whether artifacts are uploaded for an attempt that ``succeeded`` (or not) under ``when``."""
    canonical = normalize_when(when)
    if canonical == "always":
        return True
    if canonical == "never":
        return False
    return succeeded if canonical == "onSuccess" else not succeeded


def _check_pattern(pattern: str) -> str:
    reason = artifact_path_problem(pattern)
    if reason:
        raise ArtifactPathError(reason)
    return str(PurePosixPath(pattern.strip().replace("\\", "/")))


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _escapes(path: Path, root: Path, workdir: Path) -> ArtifactPathError:
    try:
        shown = path.relative_to(workdir).as_posix()
    except ValueError:
        shown = str(path)
    return ArtifactPathError(f"artifact {shown!r} is a symlink that leaves the working directory")


def _walk(directory: Path, root: Path, workdir: Path) -> Iterable[Path]:
    # Symlinked directories are not followed; one that points outside is refused like a file would be.
    for current, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in dirs:
            path = Path(current) / name
            if path.is_symlink() and not _inside(path, root):
                raise _escapes(path, root, workdir)
        for name in sorted(files):
            yield Path(current) / name


def collect_artifacts(
    workdir: Path, patterns: Sequence[str], *, unmatched: list[str] | None = None
) -> list[Path]:
    """The files ``patterns`` select inside ``workdir``, each once, in a stable order.

    Parameters
    ----------
    workdir:
        The attempt's working directory.
    patterns:
        ``artifacts.paths``: files, directories (recursive) or globs, relative to ``workdir``.
    unmatched:
        When given, patterns that selected no file are appended to it.

    Returns
    -------
    list[Path]
        Paths under ``workdir`` (as found, not resolved); none resolves outside it.

    Raises
    ------
    ArtifactPathError
        A pattern is empty, absolute or contains ``..``; a match (or a file or directory under a
        matched directory) is a symlink that resolves outside ``workdir``; a file name is not UTF-8.
    """
    root = workdir.resolve()
    checked = [_check_pattern(pattern) for pattern in patterns]
    found: dict[Path, None] = {}
    for pattern in checked:
        matched = False
        for match in sorted(workdir.glob(pattern)):
            if not _inside(match, root):
                raise _escapes(match, root, workdir)
            candidates = _walk(match, root, workdir) if match.is_dir() and not match.is_symlink() else [match]
            for candidate in candidates:
                if not _inside(candidate, root):
                    raise _escapes(candidate, root, workdir)
                if candidate.is_file():
                    _check_name(candidate, workdir)
                    found.setdefault(candidate, None)
                    matched = True
        if not matched and unmatched is not None:
            unmatched.append(pattern)
    return list(found)


def _check_name(path: Path, workdir: Path) -> None:
    # The relative path becomes part of an S3 key and a DynamoDB attribute: it must be text.
    relative = path.relative_to(workdir).as_posix()
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise ArtifactPathError(f"artifact file name {relative!r} is not UTF-8 text") from None


def guess_content_type(path: Path) -> str:
    """The content type of a file, guessed from its name."""
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or DEFAULT_CONTENT_TYPE


def upload_artifacts(
    store: BlobStore, workdir: Path, files: Sequence[Path], ctx: TaskContext
) -> list[ArtifactInfo]:
    """Upload ``files`` (from ``collect_artifacts``) under the attempt's artifact prefix (a task
    fan-out instance's: its own ``ctx.artifact_dir`` below it, which its name begins with too).

    Raises
    ------
    ArtifactError
        The blob store refused a file (chained from BlobStoreError) or a file vanished.
    """
    uploaded: list[ArtifactInfo] = []
    for path in files:
        relative = ctx.artifact_dir + path.relative_to(workdir).as_posix()
        key = artifact_key(ctx.org, ctx.request_id, ctx.task_type, relative)
        content_type = guess_content_type(path)
        try:
            size, sha256 = store.put_file(key, path, content_type)
        except (BlobStoreError, OSError) as exc:
            raise ArtifactError(f"could not upload artifact {relative!r}: {exc}") from exc
        uploaded.append(
            ArtifactInfo(name=relative, key=key, size=size, sha256=sha256, content_type=content_type)
        )
        logger.info("artifact uploaded", extra={"key": key, "size": size})
    return uploaded


def _relative_from_key(key: str) -> str:
    marker = f"/{ARTIFACTS_SEGMENT}/"
    index = key.find(marker)
    return key[index + len(marker) :] if index >= 0 else PurePosixPath(key).name


def download_dependencies(store: BlobStore, keys: Sequence[str], workdir: Path) -> list[Path]:
    """Download earlier tasks' artifacts into ``workdir`` at their relative paths.

    Raises
    ------
    ArtifactError
        A key is missing from the store or would land outside ``workdir`` (ArtifactPathError).
    """
    root = workdir.resolve()
    written: list[Path] = []
    for key in keys:
        relative = _check_pattern(_relative_from_key(key))
        target = workdir / relative
        existing = target
        while not existing.exists() and not existing.is_symlink() and existing != workdir:
            existing = existing.parent
        if not _inside(existing, root):
            raise ArtifactPathError(f"artifact {key!r} would be written outside the working directory")
        try:
            store.download_file(key, target)
        except BlobStoreError as exc:
            raise ArtifactError(f"could not download dependency {key!r}: {exc}") from exc
        written.append(target)
    return written


def attach_artifacts(
    outcome: TaskOutcome,
    task: TaskDefinition,
    ctx: TaskContext,
    *,
    workdir: Path,
    store: BlobStore,
    succeeded: bool | None = None,
) -> TaskOutcome:
    """After a runner finished: upload the task's artifacts if ``when`` says so, and record them.

    ``succeeded`` defaults to exit code "0" with no error code (callers that route exit codes, where
    e.g. a code mapped to COMPLETED also succeeds, pass their own answer). Never raises for task
    problems: an unmatched path is a warning; a path or symlink leaving the working directory fails
    the attempt (no exit code, error_code ERR_ARTIFACT_PATH, nothing uploaded) unless it already
    failed with an error code; a failed upload sets error_code ERR_ARTIFACTS_UPLOAD (unless the
    outcome already has an error).
    """
    spec = task.artifacts
    if spec is None or not spec.paths:
        return outcome
    if outcome.error_code == "ERR_TASK_CANCELLED":
        return outcome  # formicary uploads nothing for a cancelled task
    ok = succeeded if succeeded is not None else (outcome.exit_code == "0" and outcome.error_code is None)
    if not should_upload(spec.when, ok):
        return outcome
    unmatched: list[str] = []
    try:
        files = collect_artifacts(workdir, spec.paths, unmatched=unmatched)
    except ArtifactPathError as exc:
        return _path_refused(outcome, exc)
    try:
        outcome.artifacts.extend(upload_artifacts(store, workdir, files, ctx))
    except ArtifactError as exc:
        outcome.log += f"[{ERR_ARTIFACTS_UPLOAD}: {exc}]\n"
        if outcome.error_code is None:
            outcome.error_code = ERR_ARTIFACTS_UPLOAD
            outcome.error_message = str(exc)
    for pattern in unmatched:
        warning = f"artifact path {pattern!r} matched no file"
        outcome.warnings.append(warning)
        outcome.log += f"[warning: {warning}]\n"
    for artifact in outcome.artifacts:
        outcome.log += f"[artifact {artifact.name}: {artifact.size} bytes, sha256 {artifact.sha256}]\n"
    return outcome


def _path_refused(outcome: TaskOutcome, exc: ArtifactPathError) -> TaskOutcome:
    """The attempt fails: a task whose artifacts would leave its directory never counts as done."""
    exited = f" (the script exited {outcome.exit_code})" if outcome.exit_code else ""
    outcome.log += f"[{ERR_ARTIFACT_PATH}: {exc}]\n"
    if outcome.error_code is None:
        outcome.exit_code = EXIT_CODE_NONE
        outcome.error_code = ERR_ARTIFACT_PATH
        outcome.error_message = f"{exc}{exited}"
    return outcome
