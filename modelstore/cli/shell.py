"""bash completion that understands ``NAME:VERSION`` and ``NAME@ALIAS``.

bash splits words at ``:`` and ``@`` (both are in its default ``COMP_WORDBREAKS``), so
``modelstore show alpha:<Tab>`` reaches click as the words ``alpha`` and ``:``, and readline
then replaces only the text after the colon. This class joins such words back before click
completes them, and answers with the part after the last break, as bash-completion's
``__ltrim_colon_completions`` does for other tools. zsh and fish pass words whole and need
nothing of this.
"""

from __future__ import annotations

import os
from typing import Any

from click.shell_completion import (
    BashComplete,
    CompletionItem,
    add_completion_class,
    split_arg_string,
)

_BREAKS = (":", "@")
"""The characters of a REF that bash splits words at."""


class ColonAwareBashComplete(BashComplete):
    _typed_before_colon = ""
    """What readline will keep of the word being completed (up to its last ``:`` or ``@``),
    when bash split that word there; the candidates are answered without it."""

    def get_completion_args(self) -> tuple[list[str], str]:
        cwords = split_arg_string(os.environ["COMP_WORDS"])
        cword = int(os.environ["COMP_CWORD"])
        words = [*cwords[1:cword], cwords[cword] if cword < len(cwords) else ""]
        joined: list[str] = []
        glue = False
        for word in words:
            if joined and (glue or word in _BREAKS):
                joined[-1] += word
            else:
                joined.append(word)
            glue = word in _BREAKS
        incomplete = joined[-1]
        if incomplete != words[-1] or incomplete in _BREAKS:  # bash split the word
            cut = max(incomplete.rfind(b) for b in _BREAKS)
            self._typed_before_colon = incomplete[: cut + 1]
        return joined[:-1], incomplete

    def format_completion(self, item: CompletionItem[Any]) -> str:
        value = item.value
        if self._typed_before_colon and value.startswith(self._typed_before_colon):
            value = value[len(self._typed_before_colon) :]
        return f"{item.type},{value}"


def use_colon_aware_bash() -> None:
    """Make ``bash`` completion (the protocol and ``modelstore completion bash``) use it."""
    add_completion_class(ColonAwareBashComplete, "bash")
