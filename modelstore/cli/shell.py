"""bash completion that understands ``NAME:VERSION``.

bash splits words at ``:`` (it is in ``COMP_WORDBREAKS``), so ``modelstore show alpha:<Tab>``
reaches click as the words ``alpha`` and ``:``, and readline then replaces only the text after
the colon. This class joins such words back before click completes them, and answers with the
part after the colon, as bash-completion's ``__ltrim_colon_completions`` does for other tools.
zsh and fish pass words whole and need nothing of this.
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


class ColonAwareBashComplete(BashComplete):
    _typed_before_colon = ""
    """What readline will keep of the word being completed (up to its last ``:``), when bash
    split that word at a colon; the candidates are answered without it."""

    def get_completion_args(self) -> tuple[list[str], str]:
        cwords = split_arg_string(os.environ["COMP_WORDS"])
        cword = int(os.environ["COMP_CWORD"])
        words = [*cwords[1:cword], cwords[cword] if cword < len(cwords) else ""]
        joined: list[str] = []
        glue = False
        for word in words:
            if joined and (glue or word == ":"):
                joined[-1] += word
            else:
                joined.append(word)
            glue = word == ":"
        incomplete = joined[-1]
        if incomplete != words[-1] or incomplete == ":":  # bash split the word at a colon
            self._typed_before_colon = incomplete[: incomplete.rfind(":") + 1]
        return joined[:-1], incomplete

    def format_completion(self, item: CompletionItem[Any]) -> str:
        value = item.value
        if self._typed_before_colon and value.startswith(self._typed_before_colon):
            value = value[len(self._typed_before_colon) :]
        return f"{item.type},{value}"


def use_colon_aware_bash() -> None:
    """Make ``bash`` completion (the protocol and ``modelstore completion bash``) use it."""
    add_completion_class(ColonAwareBashComplete, "bash")
