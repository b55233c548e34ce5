"""Shell programs for container tasks (ECS and EKS): the main script, the dependency download and the
artifact upload, and the helpers' grant files. Pure text builders: nothing here runs anything.

The main script has the shell runner's semantics exactly, because it is built from the shell runner's
own program builder (``formica.runners.shell.build_script``): ``before_script`` + ``script`` under
``set -e`` (the first failing line's status is the exit code), ``env NAME=VALUE`` lines as ``export``,
then ``after_script`` whatever happened, every line run, its failures noted and never changing the
exit code. The two programs run as subshells of the one ``sh -c`` the container starts with, and the
exit code is also written to ``{workspace}/.formica/exit-code`` so the artifact uploader, which runs
after the main container in the same workspace, can honour ``artifacts.when``.

The helper containers (``dependencies``, ``artifacts``) hold no AWS credentials: each exchanges the
capability it is given for a curl config file of freshly signed URLs, at the moment it needs them
(see "the helper containers' grants" below).
Their programs are fixed text (``DEPENDENCIES_PROGRAM``, ``UPLOAD_PROGRAM``, part of the task
definition), the per-run values come as arguments (the artifact patterns, ``upload_arguments``) and
in the grant files (S3 keys and URLs, inside quoted curl config strings): no user value is ever
shell text. They use POSIX sh, printf, curl, grep, mktemp, sha256sum, cut and readlink only, all in the helper
image (``public.ecr.aws/aws-cli/aws-cli``, built on Amazon Linux 2, whose base image has curl).
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Iterable, Mapping

from formica.engine.masking import MASK, secret_forms
from formica.jobs.models import TaskDefinition
from formica.runners.artifacts import normalize_when
from formica.runners.base import LIVE_LOG_HOLD_BYTES, LOG_CAP_BYTES, TaskContext
from formica.runners.shell import build_script as build_shell_program
from formica.runners.shell import task_environment
from formica.store.blobs import DEFAULT_CONTENT_TYPE, PresignedPost

DEFAULT_WORKSPACE = "/workspace"
STATUS_DIR_NAME = ".formica"
EXIT_CODE_FILE_NAME = "exit-code"
OUTPUT_FILE_NAME = "output.log"
"""The main script's output, copied by ``tee`` for the ``logs`` helper (in the status directory)."""
OUTPUT_FIFO_NAME = "output.fifo"
TEE_GRACE_SECONDS = 5
"""How long ``tee`` may go on copying once the script ended (a background process keeps it open)."""
LOG_FLUSH_ENV = "FORMICA_LOG_FLUSH_SECONDS"
"""The ``logs`` helper's flush interval (seconds)."""
LOG_MASK_ENV = "FORMICA_LOG_MASK"
"""The ``logs`` helper's sed script masking the job's secrets, base64-encoded (``build_mask_script``)."""
LOGS_PROGRAM_NAME = "formica-logs"
LIVE_LOG_CAP_BYTES = LOG_CAP_BYTES
"""The ``logs`` helper sends at most this much (the capability refuses a chunk ending past it)."""
GRANTS_URL_ENV = "FORMICA_GRANTS_URL"
"""A helper container's grants endpoint: the API's ``POST /api/grants`` (never in main's environment)."""
CAPABILITY_ENV = "FORMICA_CAPABILITY"
"""A helper container's capability, exchanged at that endpoint (never in main's environment)."""
WAIT_FOR_MAIN_ENV = "FORMICA_WAIT_FOR_MAIN"
"""Set on EKS's uploader, which runs beside the main container: wait for its exit-code file first."""
DEPENDENCIES_PROGRAM_NAME = "formica-dependencies"
ARTIFACTS_PROGRAM_NAME = "formica-artifacts"
SHA256_METADATA = "sha256"
"""The uploader's checksum travels as ``x-amz-meta-sha256`` (what the reconciler reads back)."""
# Content types the uploader guesses from a file name (anything else: application/octet-stream).
_CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    "text/plain": ("txt", "log", "text"),
    "text/csv": ("csv",),
    "text/html": ("html", "htm"),
    "text/markdown": ("md",),
    "application/json": ("json",),
    "application/xml": ("xml",),
    "application/yaml": ("yaml", "yml"),
    "application/pdf": ("pdf",),
    "application/zip": ("zip",),
    "application/gzip": ("gz", "tgz"),
    "application/x-tar": ("tar",),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/gif": ("gif",),
    "image/svg+xml": ("svg",),
}


def workspace_of(task: TaskDefinition) -> str:
    """Where the task's files live in the container: its ``working_dir``, else /workspace."""
    working_dir = (task.working_dir or "").strip()
    if not working_dir:
        return DEFAULT_WORKSPACE
    return working_dir if working_dir.startswith("/") else f"{DEFAULT_WORKSPACE}/{working_dir}"


def exit_code_file(workspace: str) -> str:
    return f"{workspace.rstrip('/')}/{STATUS_DIR_NAME}/{EXIT_CODE_FILE_NAME}"


def output_file(workspace: str) -> str:
    """Where the main script also writes its output, for the ``logs`` helper to stream."""
    return f"{workspace.rstrip('/')}/{STATUS_DIR_NAME}/{OUTPUT_FILE_NAME}"


def build_script(task: TaskDefinition, workspace: str | None = None) -> str:
    """The main container's script (run as ``sh -c <script>``) for a rendered task.

    Its output (stdout and stderr, merged as the container's log shows them) goes to the
    container's stdout as before and, through ``tee``, to ``{workspace}/.formica/output.log``,
    which the ``logs`` helper streams while the task runs (``LOG_PROGRAM``). ``tee`` reads a FIFO
    rather than a pipe so that a process the script leaves running in the background, which keeps
    the FIFO open, cannot hold the container up: after the script, ``tee`` gets
    ``TEE_GRACE_SECONDS`` to copy what is left. An image without ``tee`` or ``mkfifo`` runs the
    script as before, and its log arrives when the run ends.

    Parameters
    ----------
    task:
        The rendered task: ``before_script``, ``script`` and ``after_script`` are used.
    workspace:
        The working directory (default: ``workspace_of(task)``).

    Returns
    -------
    str
        A POSIX sh script whose exit status is the task's exit code.
    """
    workspace = workspace or workspace_of(task)
    status_dir = f"{workspace.rstrip('/')}/{STATUS_DIR_NAME}"
    fifo = shlex.quote(f"{status_dir}/{OUTPUT_FIFO_NAME}")
    lines = [
        f"mkdir -p {shlex.quote(status_dir)}",
        f"cd {shlex.quote(workspace)} || exit 1",
        "formica_tee=",
        "if command -v tee >/dev/null 2>&1 && command -v mkfifo >/dev/null 2>&1"
        f" && rm -f {fifo} && mkfifo {fifo}; then",
        f"  tee -a {shlex.quote(output_file(workspace))} < {fifo} &",
        "  formica_tee=$!",
        f"  exec 3>&1 4>&2 > {fifo} 2>&1",
        "fi",
        "(",
        build_shell_program([*task.before_script, *task.script]).rstrip("\n"),
        ") 3>&- 4>&-",
        "formica_rc=$?",
    ]
    if any(line.strip() for line in task.after_script):
        lines += [
            "echo '$ # after_script'",
            "(",
            build_shell_program(task.after_script, stop_on_error=False).rstrip("\n"),
            ") 3>&- 4>&-",
            "after_rc=$?",
            '[ "$after_rc" -eq 0 ] || echo "[after_script failed with exit code $after_rc;'
            ' the result is unchanged]"',
        ]
    lines += [
        'if [ -n "$formica_tee" ]; then',
        "  exec 1>&3 2>&4 3>&- 4>&-",
        f'  ( sleep {TEE_GRACE_SECONDS}; kill "$formica_tee" 2>/dev/null ) > /dev/null 2>&1 &',
        '  wait "$formica_tee" 2>/dev/null',
        f"  rm -f {fifo}",
        "fi",
        f'echo "$formica_rc" > {shlex.quote(exit_code_file(workspace))}',
        'exit "$formica_rc"',
    ]
    return "\n".join(lines) + "\n"


def artifacts_prefix(org: str, request_id: str, task_type: str) -> str:
    """The S3 key prefix of a task's artifacts (docs/architecture.md, the S3 layout)."""
    return f"{org}/{request_id}/{task_type}/artifacts/"


# --- the helper containers' grants -----------------------------------------------------------
#
# The helper containers hold no AWS credentials. Each gets a capability in ``CAPABILITY_ENV`` and
# the API's grants route in ``GRANTS_URL_ENV`` (never in the main container's environment;
# ``formica.runners.container_grants``). When it is about to move files it POSTs the capability
# there and gets a curl config file of URLs signed at that moment (``formica.runners.grants``): for
# ``dependencies`` one ``url``/``output`` pair per artifact to download (presigned GETs), for
# ``artifacts`` the upload grant (a presigned POST: its URL and policy fields as ``form-string``
# lines). curl reads those files itself (``--config``), so no value from them is ever parsed by the
# shell. The capability reaches curl through a pipe from ``printf`` (a shell builtin), never argv.


def curl_config_value(value: str) -> str:
    """``value`` as a double-quoted string of curl's config file syntax (``--config``).

    Inside double quotes curl unescapes ``\\``, ``\\"``, ``\\t``, ``\\n``, ``\\r`` and ``\\v``; every other
    character stands for itself, so a quoted value can never end early or start another option.
    """
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\v", "\\v")
    )
    return f'"{escaped}"'


def build_downloads_config(downloads: Iterable[tuple[str, str]]) -> str:
    """The dependencies container's curl config: one ``url``/``output`` pair per ``(path, url)``.

    ``path`` is relative to the workspace (the container runs curl there) and must already be safe
    (``dependency_path``); it is written as ``./path`` so that a file named ``-`` is not stdout.
    """
    lines = ["# Formica: this attempt's dependencies, one presigned GET each (curl --config)"]
    for path, url in downloads:
        lines += [f"url = {curl_config_value(url)}", f"output = {curl_config_value('./' + path)}"]
    return "\n".join(lines) + "\n"


def build_upload_config(post: PresignedPost) -> str:
    """The artifacts container's curl config: the presigned POST's URL and its policy fields.

    The uploader adds ``key``, ``Content-Type``, ``x-amz-meta-sha256`` and the file for each upload.
    ``form-string`` (never ``form``) so that no value starting with ``@`` or ``<`` reads a file.
    """
    lines = [
        "# Formica: this attempt's upload grant, keys under "
        + post.prefix.replace("\n", " ")
        + " only (curl --config)",
        f"url = {curl_config_value(post.url)}",
    ]
    lines += [f"form-string = {curl_config_value(f'{name}={value}')}" for name, value in post.fields.items()]
    return "\n".join(lines) + "\n"


def dependency_path(key: str, prefix: str) -> str | None:
    """Where a dependency's artifact goes, relative to the workspace: ``key`` without ``prefix``.

    None when the rest could leave the workspace or is not a plain relative path (empty, absolute,
    a ``.`` or ``..`` segment, an empty segment or a control character): an uploader
    may name its keys freely under its prefix, and such a key is skipped rather than written.
    """
    if not key.startswith(prefix):
        return None
    relative = key[len(prefix) :]
    if not relative or relative.startswith("/"):
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in relative):
        return None
    if any(part in ("", ".", "..") for part in relative.split("/")):
        return None
    return relative


def _program(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


_FETCH_GRANT = [
    "grants=$(mktemp -d) || exit 1",
    f'printf \'{{"capability":"%s","format":"curl"}}\' "${CAPABILITY_ENV}" |'
    f' curl -fsS --retry 3 -H "Content-Type: application/json" --data-binary @- -o "$grants/grant.curl"'
    f' "${GRANTS_URL_ENV}"',
]

DEPENDENCIES_PROGRAM = _program(
    [
        "# formica: download this attempt's dependencies into the working directory (the workspace)",
        "set -e",
        f'[ -n "${{{GRANTS_URL_ENV}:-}}" ] || {{ echo "formica: no dependencies to download"; exit 0; }}',
        *_FETCH_GRANT,
        # The dependencies are listed at this moment: a grant may have no file to fetch.
        'grep -q "^url = " "$grants/grant.curl" || { echo "formica: no dependency artifacts"; exit 0; }',
        'curl -fsS --retry 3 --fail-early --create-dirs --config "$grants/grant.curl"',
        'rm -rf "$grants"',
    ]
)
"""The dependencies container's program, the same for every task (it is part of the task definition):
``sh -c DEPENDENCIES_PROGRAM formica-dependencies``, run in the workspace. The files to fetch
(presigned GETs and the relative paths they go to) are in the curl config its capability is
exchanged for; without a grants endpoint there is nothing to download. A failed download exits
non-zero, so the main container (which waits for this one's SUCCESS) never starts and the task
reports ERR_CONTAINER_START.
"""


def _content_type_function() -> list[str]:
    """A sh function printing a content type guessed from the name's extension (any case)."""
    lines = ["content_type() {", '  case "$1" in']
    for content_type, extensions in _CONTENT_TYPES.items():
        patterns = "|".join(
            "*." + "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)
            for ext in extensions
        )
        lines.append(f"    {patterns}) echo {shlex.quote(content_type)} ;;")
    lines += [f"    *) echo {shlex.quote(DEFAULT_CONTENT_TYPE)} ;;", "  esac", "}"]
    return lines


UPLOAD_PROGRAM = _program(
    [
        "# formica: upload this attempt's artifacts. Arguments: when, key prefix, path patterns",
        "when=$1; prefix=$2; shift 2",
        "ws=$(pwd -P)",
        f'status="$ws/{STATUS_DIR_NAME}/{EXIT_CODE_FILE_NAME}"',
        # EKS runs this beside the main container: wait for its exit code (ECS starts it after).
        f'if [ -n "${{{WAIT_FOR_MAIN_ENV}:-}}" ]; then',
        '  while [ ! -f "$status" ]; do sleep 1; done',
        "fi",
        'rc=$(cat "$status" 2>/dev/null || echo none)',
        'case "$when" in',
        '  onSuccess) [ "$rc" = 0 ] || { echo "formica: main exit $rc, artifacts on success only"; exit 0; }',
        "    ;;",
        '  onFailed) [ "$rc" != 0 ] || { echo "formica: main exit 0, artifacts on failure only"; exit 0; }',
        "    ;;",
        "  always) ;;",
        '  *) echo "formica: no artifacts (when: $when)"; exit 0 ;;',
        "esac",
        '[ "$#" -gt 0 ] || exit 0',
        f'[ -n "${{{GRANTS_URL_ENV}:-}}" ] || {{ echo "formica: no upload grant"; exit 0; }}',
        _FETCH_GRANT[0],
        _FETCH_GRANT[1] + ' || { echo "formica: the upload grant could not be fetched"; exit 0; }',
        *_content_type_function(),
        "upload_file() {",
        "  f=${1#./}",
        '  case "/$f/" in',
        '    */../*|*/./*|*//*) echo "formica: not uploaded (. or .. or an empty segment): $f"; return 0 ;;',
        "  esac",
        '  real=$(readlink -f -- "$1") || { echo "formica: not uploaded (unreadable): $f"; return 0; }',
        '  case "$real" in',
        '    "$ws"/*) ;;',
        '    *) echo "formica: not uploaded (resolves outside the workspace): $f"; return 0 ;;',
        "  esac",
        '  [ -f "$real" ] || return 0',
        "  sum=$(sha256sum < \"$real\" | cut -d' ' -f1)",
        # curl opens the file through a fixed name: a file name is never parsed by curl's -F syntax.
        '  ln -sf -- "$real" "$grants/artifact" || return 0',
        '  curl -fsS --retry 3 -o /dev/null --config "$grants/grant.curl" \\',
        '    --form-string "key=$prefix$f" \\',
        '    --form-string "Content-Type=$(content_type "$f")" \\',
        f'    --form-string "x-amz-meta-{SHA256_METADATA}=$sum" \\',
        '    -F "file=@$grants/artifact" || echo "formica: upload failed: $f"',
        "}",
        "upload_tree() {",
        '  [ "$1" = / ] || set -- "${1%/}"',
        '  if [ -d "$1" ] && [ ! -L "$1" ]; then',
        '    for child in "$1"/* "$1"/.[!.]* "$1"/..?*; do',
        '      [ -e "$child" ] || [ -L "$child" ] || continue',
        '      upload_tree "$child"',
        "    done",
        "  else",
        '    upload_file "$1"',
        "  fi",
        "}",
        # Each pattern is expanded as a glob only: no word splitting, never evaluated as shell.
        "IFS=",
        'for pattern in "$@"; do',
        "  matched=",
        "  for f in $pattern; do",
        '    [ -e "$f" ] || [ -L "$f" ] || continue',
        "    matched=1",
        '    upload_tree "$f"',
        "  done",
        '  [ -n "$matched" ] || echo "formica: no artifact matches $pattern"',
        "done",
        'rm -rf "$grants"',
        "exit 0",
    ]
)
"""The artifacts container's program, the same for every task (it is part of the task definition):
``sh -c UPLOAD_PROGRAM formica-artifacts <when> <key prefix> <pattern>...`` (``upload_arguments``),
run in the workspace. The user's patterns arrive as arguments, never as shell text.

It runs once the main container exited (on EKS, where both run at once, it waits for the exit-code
file while ``FORMICA_WAIT_FOR_MAIN`` is set), reads that exit code to honour ``when`` (onSuccess,
onFailed, always; anything else uploads nothing), exchanges its capability for its upload grant
(a curl config holding a presigned POST signed at that moment) and POSTs each regular file the
patterns match (directories taken recursively) once, with its key under the prefix, a content type
guessed from its name and its sha256 as ``x-amz-meta-sha256``. A file that resolves outside the
workspace (a symlink) is skipped, and so is a path with a ``.``, ``..`` or empty segment. It always
exits 0: the sidecar never decides the task's exit code (failures are in its log).
"""


def build_live_chunk_config(url: str, content_type: str) -> str:
    """The ``logs`` helper's curl config for one live chunk: its presigned PUT and content type.

    The helper adds the chunk's file (``-T``), whose length the URL's signature names.
    """
    lines = [
        "# Formica: one chunk of this attempt's live log, a presigned PUT (curl --config)",
        f"url = {curl_config_value(url)}",
        f"header = {curl_config_value('Content-Type: ' + content_type)}",
    ]
    return "\n".join(lines) + "\n"


_SED_SPECIAL = frozenset("\\/.[]*^$")


def _sed_literal(text: str) -> str:
    """``text`` as a POSIX basic regular expression matching exactly it (``/`` as the delimiter)."""
    return "".join("\\" + char if char in _SED_SPECIAL else char for char in text)


def build_mask_script(secrets: Iterable[str]) -> str:
    """A sed script replacing every form of every secret with ``****`` (``engine.masking``), longest
    forms first, as the trusted side masks the whole log. A form that spans lines (a secret with a
    line break) is left to the whole log: the helper's chunks hold whole lines and sed reads one
    at a time. Run with ``LC_ALL=C``, so that matching is byte for byte."""
    forms: set[str] = set()
    for secret in secrets:
        forms.update(form for form in secret_forms(secret) if "\n" not in form and "\r" not in form)
    ordered = sorted(forms, key=lambda form: (-len(form), form))
    return "".join(f"s/{_sed_literal(form)}/{MASK}/g\n" for form in ordered)


def encoded_mask_script(secrets: Iterable[str]) -> str:
    """``build_mask_script`` base64-encoded, the value of ``FORMICA_LOG_MASK`` ("" without secrets)."""
    script = build_mask_script(secrets)
    return base64.b64encode(script.encode("utf-8")).decode("ascii") if script else ""


LOG_PROGRAM = _program(
    [
        "# formica: stream the main container's output (.formica/output.log) to this attempt's live log",
        f'[ -n "${{{GRANTS_URL_ENV}:-}}" ] || {{ echo "formica: no live log grant"; exit 0; }}',
        "ws=$(pwd -P)",
        f'out="$ws/{STATUS_DIR_NAME}/{OUTPUT_FILE_NAME}"',
        f'status="$ws/{STATUS_DIR_NAME}/{EXIT_CODE_FILE_NAME}"',
        "t=$(mktemp -d) || exit 0",
        f'printf \'%s\' "${{{LOG_MASK_ENV}:-}}" | base64 -d > "$t/mask.sed" 2>/dev/null || : > "$t/mask.sed"',
        f"interval=${{{LOG_FLUSH_ENV}:-3}}",
        f"cap={LIVE_LOG_CAP_BYTES}; hold={LIVE_LOG_HOLD_BYTES}",
        # sent: bytes of output.log taken; written: bytes of the live log (masked) sent so far.
        "sent=0; written=0; stopped=",
        "flush() {",
        '  [ -z "$stopped" ] && [ -f "$out" ] || return 0',
        '  size=$(wc -c < "$out") || return 0',
        '  [ "$size" -gt "$sent" ] || return 0',
        "  take=$((size - sent))",
        '  tail -c +"$((sent + 1))" "$out" | head -c "$take" > "$t/new"',
        # Whole lines only until the end (a chunk never splits a character or a secret), unless
        # one line has grown past the hold.
        '  if [ "$1" != all ] && [ -n "$(tail -c 1 "$t/new")" ]; then',
        '    part=$(tail -n 1 "$t/new" | wc -c)',
        '    if [ "$take" -gt "$part" ]; then take=$((take - part))',
        '    elif [ "$take" -lt "$hold" ]; then return 0; fi',
        "  fi",
        '  head -c "$take" "$t/new" | LC_ALL=C sed -f "$t/mask.sed" > "$t/chunk"',
        "  sent=$((sent + take))",
        '  n=$(wc -c < "$t/chunk")',
        '  if [ $((written + n)) -gt "$cap" ]; then',
        "    n=$((cap - written)); stopped=1",
        '    [ "$n" -gt 0 ] || return 0',
        '    head -c "$n" "$t/chunk" > "$t/cut" && mv "$t/cut" "$t/chunk"',
        "  fi",
        '  [ "$n" -gt 0 ] || return 0',
        '  printf \'{"capability":"%s","format":"curl","live_chunk":{"start":%s,"end":%s}}\' \\',
        f'    "${CAPABILITY_ENV}" "$written" "$((written + n))" |',
        '    curl -fsS -m 10 -H "Content-Type: application/json" --data-binary @- -o "$t/put.curl"'
        f' "${GRANTS_URL_ENV}" &&',
        '    curl -fsS -m 30 -o /dev/null --config "$t/put.curl" -T "$t/chunk" ||',
        '    { echo "formica: live log stopped at byte $written (a chunk was refused or not sent)";',
        "      stopped=1; return 0; }",
        "  written=$((written + n))",
        "}",
        # ECS stops this container when the task ends, EKS when the pod's main containers have.
        "term=",
        "trap 'term=1' TERM INT",
        'while [ ! -f "$status" ] && [ -z "$term" ]; do',
        '  sleep "$interval" & wait $!',
        "  flush",
        "done",
        "flush all",
        'rm -rf "$t"',
        "exit 0",
    ]
)
"""The ``logs`` helper's program, the same for every task (part of the task definition):
``sh -c LOG_PROGRAM formica-logs``, run in the workspace beside the main container. Every
``FORMICA_LOG_FLUSH_SECONDS`` (3) it takes the whole lines the main script added to
``.formica/output.log`` since the last flush, masks them with the sed script of
``FORMICA_LOG_MASK`` (the job's secrets in every form, ``build_mask_script``), exchanges its
capability (right ``live_log``) for a presigned PUT of exactly that chunk under the attempt's live
prefix, and PUTs it; offsets count the masked bytes, as the whole log's do. When the main script's
exit-code file appears (or the container is told to stop) it sends the rest, a last partial line
included, and exits 0. It stops at the log cap, and a chunk refused or not sent stops the
streaming (readers then wait for the whole log rather than skip bytes); it never decides the
task's exit code. It uses sh, printf, base64, wc, tail, head, sed, mv, mktemp and curl.
"""


def upload_arguments(
    *, org: str, request_id: str, task_type: str, paths: Iterable[str], when: str
) -> list[str]:
    """``UPLOAD_PROGRAM``'s arguments: ``when`` (canonical), the task's artifacts prefix, the patterns."""
    try:
        canonical = normalize_when(when)
    except ValueError:
        canonical = "onSuccess"  # validation refuses unknown values at upload; the default otherwise
    patterns = [pattern.strip() for pattern in paths if pattern.strip()]
    return [canonical, artifacts_prefix(org, request_id, task_type), *patterns]


def container_environment(
    task: TaskDefinition, ctx: TaskContext, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The main container's environment: the shell runner's (params, then the task's environment, then
    its variables, names sanitised, reserved names such as PATH never taken from params) without a
    base environment (the image keeps its own PATH), then ``extra`` (Formica's FORMICA_* values).
    """
    environment = task_environment(task, ctx, base={})
    environment.update(extra or {})
    return environment
