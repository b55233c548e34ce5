"""Secret masking: every occurrence of a secret config's value in text Formica writes becomes ``****``.

Pure: the runtime builds a ``SecretMasker`` from the values of an attempt's secret configs and runs
what it stores or reports through it (task logs, HTTP bodies written to logs, error messages,
outputs). Besides the value itself, the forms a script or an HTTP client most often turns it into
are masked too: base64 (standard and URL-safe, with or without padding, and the part of a longer
base64 text, such as ``user:secret``, that only the secret's bytes decide), URL encoding
(``quote``, ``quote_plus``) and a JSON string's escaping. A secret shorter than
``SECRET_MIN_LENGTH`` is refused when it is written: masking three letters would mangle every log.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "****"
SECRET_MIN_LENGTH = 8
"""The shortest secret value accepted: shorter ones could not be masked without mangling logs."""
_BASE64_FRAGMENT_MIN = 6
"""A base64 fragment (a secret encoded inside a longer text) shorter than this is not masked."""


def _base64_fragments(data: bytes) -> set[str]:
    """The base64 text that ``data`` alone decides, at each of the three alignments it can have
    inside a longer encoded text (standard and URL-safe alphabets)."""
    fragments: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii").rstrip("=")
        # The first characters mix the prefix's bits (offset 1: 2 characters, offset 2: 3); the
        # last one mixes the next byte's unless the text ends on a 3-byte boundary.
        start = {0: 0, 1: 2, 2: 3}[offset]
        end = len(encoded) if (offset + len(data)) % 3 == 0 else len(encoded) - 1
        fragment = encoded[start:end]
        if len(fragment) >= _BASE64_FRAGMENT_MIN:
            fragments.add(fragment)
            fragments.add(fragment.replace("+", "-").replace("/", "_"))
    return fragments


def secret_forms(secret: str) -> set[str]:
    """Every text form of ``secret`` that is masked: itself, base64, URL-encoded, JSON-escaped.

    Parameters
    ----------
    secret
        A secret config's value.

    Returns
    -------
    set[str]
        The non-empty forms (the empty secret has none).
    """
    if not secret:
        return set()
    data = secret.encode("utf-8")
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}
    padded = base64.b64encode(data).decode("ascii")
    forms.update({padded, padded.rstrip("="), base64.urlsafe_b64encode(data).decode("ascii")})
    forms.update(_base64_fragments(data))
    forms.update(form.lower() for form in list(forms) if "%" in form)
    return {form for form in forms if form}


class SecretMasker:
    """Replaces every form of a set of secrets with ``MASK`` (longest forms first).

    Parameters
    ----------
    secrets
        The secret values to mask; empty values are ignored.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            forms.update(secret_forms(secret))
        self._pattern = (
            re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))
            if forms
            else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``MASK``."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def mask_optional(self, text: str | None) -> str | None:
        """``mask`` for a text that may be absent."""
        return None if text is None else self.mask(text)


NO_SECRETS = SecretMasker()
"""A masker with nothing to mask."""
