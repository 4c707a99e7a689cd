"""Showing user-controlled text on a terminal: every renderer of the CLI passes such text through :func:`visible`.

Job names, commands, reasons, token and team names come from other users. Printed raw, a control sequence in them
(``ESC [1A ESC [2K`` moves the cursor up and erases the line, ``ESC [8m`` hides text) or a bidirectional override
(U+202E) makes a reviewer's terminal show something other than what is stored. :func:`visible` shows such characters
as escapes (``\\x1b``, ``\\u202e``, ``\\n``) instead. ``stargate logs`` is the exception: it prints a job's output
bytes as they are, like ``cat``.
"""

from rich.markup import escape

__all__ = ["cell", "visible"]


def visible(value: object) -> str:
    """``value`` as text with every non-printable character shown as an escape: the domain's
    :func:`stargate.domain.base.visible`, imported only for text that needs escaping (importing the domain builds
    every pydantic model, which would double a client command's start-up time)."""
    text = str(value)
    if text.isprintable():  # the domain's own fast path: every character it escapes is non-printable
        return text
    from stargate.domain.base import visible as escaped

    return escaped(text)


def cell(value: object) -> str:
    """``value`` for a Rich table cell: :func:`visible`, and Rich markup (``[red]``) shown as written."""
    return escape(visible(value))
