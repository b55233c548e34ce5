"""The local outbox: each message written as an ``.eml`` file instead of being sent.

`formica dev` has no mail server, and moto's SES keeps what it is given out of sight, so locally
notifications go to a folder the server prints at start (``FORMICA_EMAIL_OUTBOX``). Each file is a
complete RFC 5322 message (open it in a mail client, or read it as text), named after the delivery,
written under a temporary name and renamed, so a reader never sees half a message.
"""

from __future__ import annotations

import os
import re
import tempfile
from email import policy
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from formica.store.mail import EmailMessage, EmailSendError

LOCAL_SENDER = "formica@localhost"
"""The From: of outbox messages when no sender is configured."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Headers unfolded up to RFC 5322's hard limit: Python folds a subject longer than 78 characters
# onto a continuation line, which some readers then show with a leading space.
_POLICY = policy.default.clone(max_line_length=998)


def outbox_file_name(key: str) -> str:
    """The file name of the message whose key is ``key`` (only letters, digits, '.', '_' and '-')."""
    return _UNSAFE.sub("-", key).strip(".-")[:200] + ".eml"


class OutboxEmailSender:
    """Adapter: writes each message as ``<folder>/<key>.eml``; answers the file's name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage) -> str:
        """Write ``message``; raises EmailSendError (retryable) when the folder cannot be written."""
        mime = MimeMessage(policy=_POLICY)
        mime["From"] = message.sender
        mime["To"] = ", ".join(message.recipients)
        mime["Subject"] = message.subject
        mime["Date"] = formatdate(localtime=False, usegmt=True)
        mime["Message-ID"] = make_msgid(domain="formica.local")
        mime.set_content(message.text)
        name = outbox_file_name(message.key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(bytes(mime))
            Path(temporary).replace(self.folder / name)
        except OSError as exc:
            raise EmailSendError(f"outbox {self.folder} not writable: {exc}"[:300], retryable=True) from exc
        return name
