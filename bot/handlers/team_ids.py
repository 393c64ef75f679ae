"""What a Slack workspace (team) ID looks like, in one place.

Its own tiny module (only ``re``) so the command line's argument parser and the
template catalogue can check one without importing the store's records.
"""

from __future__ import annotations

import re

#: A Slack workspace ID: ``T0123ABCD`` (``E…`` for an Enterprise Grid organization).
#: The template catalogue makes a folder name only of something that matches it.
TEAM_ID = re.compile(r"[TE][A-Z0-9]{2,20}\Z")
