"""The consoles every command prints through.

On a terminal, rich fits output to the window. Anywhere else (a pipe, a file, a
CI log) there is no window: rich would assume 80 columns and break lines, which
splits the paths and commands people copy from the output. So when the stream is
not a terminal, lines are never wrapped and tables get all the width they need.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

NOT_A_TERMINAL_WIDTH = 4096


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=NOT_A_TERMINAL_WIDTH)
