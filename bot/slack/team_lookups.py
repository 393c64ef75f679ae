"""``Lookups`` for many workspaces: one cache per workspace, each asking Slack with
that workspace's token. User IDs, groups and channels of one workspace mean
nothing in another, so nothing is shared between them.

The workspace is the one of the request being handled (``CURRENT_TEAM``), so
listeners keep calling ``services.lookups`` as in a single workspace.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from bot.handlers.recipient_csv import MAX_CSV_BYTES
from bot.slack.installations import SlackClients, current_team
from bot.slack.lookups import Lookups


class TeamLookups(Lookups):
    """A ``Lookups`` per workspace, chosen by the request's workspace."""

    def __init__(self, clients: SlackClients):
        super().__init__(clients.base)
        self._clients = clients
        self._per_team: dict[str, Lookups] = {}
        self._teams_lock = threading.Lock()

    def of(self, team: str) -> Lookups:
        client = self._clients.for_team(team)
        with self._teams_lock:
            found = self._per_team.get(team)
            if found is None or found.client is not client:  # reinstalled: a new token
                found = self._per_team[team] = Lookups(client)
            return found

    def _here(self) -> Lookups:
        return self.of(current_team())

    def is_member(self, channel: str) -> bool | None:
        return self._here().is_member(channel)

    def users(self, user_ids: Sequence[str]) -> list[dict[str, Any]]:
        return self._here().users(user_ids)

    def known(self, user_id: str) -> dict[str, Any] | None:
        return self._here().known(user_id)

    def usergroups(self) -> list[dict[str, Any]]:
        return self._here().usergroups()

    def group_members(self, group_id: str) -> list[str]:
        return self._here().group_members(group_id)

    def channel_members(self, channel_id: str) -> list[str]:
        return self._here().channel_members(channel_id)

    def download(
        self, file: Mapping[str, Any], *, field: str = "csv", max_bytes: int = MAX_CSV_BYTES
    ) -> tuple[str, bytes]:
        return self._here().download(file, field=field, max_bytes=max_bytes)
