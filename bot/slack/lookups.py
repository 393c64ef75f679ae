"""People's profiles and uploaded files, fetched from Slack for the compose form.

Profiles are cached briefly and fetched several at a time, because a form can
name 200 people and ``users.info`` is one call each (Tier 4). A channel of
thousands would blow that tier, so past ``BULK_AT`` unknown people the whole
directory is paged once with ``users.list`` (Tier 2, ``USERS_PAGE`` a page) and
cached instead. A file is downloaded with
the bot token only from Slack's own hosts, and never across a redirect.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import UserInputError
from bot.handlers.recipient_csv import MAX_CSV_BYTES

USER_CACHE_SECONDS = 600.0
#: Membership is asked on the 3-second path of every compose submission; a
#: rate-limited ``conversations.info`` (Tier 3) would sleep its Retry-After there.
#: Membership rarely changes, and a post that fails falls back to a DM anyway.
MEMBER_CACHE_SECONDS = 60.0
LOOKUP_THREADS = 8
#: More unknown profiles than this are read with ``users.list`` pages, not one by one.
BULK_AT = 50
#: ``users.list`` page size: Slack recommends no more than 200.
USERS_PAGE = 200


#: User groups change rarely and ``usergroups.list`` is Tier 2, while the form's
#: group menu asks on every keystroke: the list is reused this long.
GROUPS_CACHE_SECONDS = 300.0
#: ``conversations.members`` page size (Tier 4; Slack recommends no more than 200,
#: and a page may hold fewer while more remain, so the cursor decides the end).
MEMBERS_PAGE = 200


class Lookups:
    """People's profiles (cached briefly), user groups, channel members and uploaded
    files, fetched from Slack: ``bot.ports.Directory`` for the compose form."""

    def __init__(
        self,
        client: WebClient,
        *,
        cache_seconds: float = USER_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._users: dict[str, tuple[float, dict[str, Any]]] = {}
        self._members: dict[str, tuple[float, bool | None]] = {}
        self._groups: tuple[float, list[dict[str, Any]]] | None = None

    def is_member(self, channel: str) -> bool | None:
        """Whether the app is in ``channel`` (so it can post there); None when Slack
        will not say (the ``channels:read``/``groups:read`` scopes are missing, or
        the call failed). A private channel the app is not in is ``channel_not_found``.
        A known answer is reused for ``MEMBER_CACHE_SECONDS``.
        """
        now = self._clock()
        known = self._members.get(channel)
        if known is not None and now - known[0] <= MEMBER_CACHE_SECONDS:
            return known[1]
        try:
            member: bool | None = bool(
                self.client.conversations_info(channel=channel)["channel"].get("is_member")
            )
        except SlackApiError as exc:
            if exc.response.get("error") != "channel_not_found":
                return None  # unknown: ask again next time
            member = False
        self._members[channel] = (now, member)
        return member

    def users(self, user_ids: Sequence[str]) -> list[dict[str, Any]]:
        """``users.info`` of each id, in order; several at once, reusing fresh answers."""
        now = self._clock()
        missing = [
            u
            for u in dict.fromkeys(user_ids)
            if u not in self._users or now - self._users[u][0] > self.cache_seconds
        ]
        if len(missing) > BULK_AT:
            self._load_directory(now)
            missing = [u for u in missing if u not in self._users]
        if missing:
            with ThreadPoolExecutor(max_workers=min(LOOKUP_THREADS, len(missing))) as pool:
                for user_id, user in zip(missing, pool.map(self._user, missing), strict=True):
                    self._users[user_id] = (now, user)
        return [self._users[u][1] for u in user_ids]

    def known(self, user_id: str) -> dict[str, Any] | None:
        """The profile read last for ``user_id``, however old; None if never read.
        For what rarely changes (a time zone), where a call to Slack would cost
        more than a stale answer."""
        found = self._users.get(user_id)
        return found[1] if found else None

    def _load_directory(self, now: float) -> None:
        """Every profile of the workspace, page by page, into the cache."""
        try:
            for page in self.client.users_list(limit=USERS_PAGE):
                for user in page.get("members") or []:
                    self._users[user["id"]] = (now, user)
        except SlackApiError as exc:
            raise UserInputError(
                f"Slack did not list the workspace's people ({exc.response.get('error')}). "
                "If the error is missing_scope, an admin adds users:read and "
                "users:read.email to the app and reinstalls it.",
                field="people",
            ) from exc

    def _user(self, user_id: str) -> dict[str, Any]:
        try:
            return self.client.users_info(user=user_id)["user"]
        except SlackApiError as exc:
            error = exc.response.get("error", "")
            if error in ("user_not_found", "user_not_visible"):
                return {"id": user_id, "deleted": True}
            raise UserInputError(
                f"Slack did not show the profile of <@{user_id}> ({error}). If the error is "
                "missing_scope, an admin adds users:read and users:read.email to the app "
                "and reinstalls it.",
                field="people",
            ) from exc

    def usergroups(self) -> list[dict[str, Any]]:
        """The workspace's enabled user groups (``usergroups.list``), reused briefly."""
        now = self._clock()
        if self._groups is not None and now - self._groups[0] <= GROUPS_CACHE_SECONDS:
            return self._groups[1]
        try:
            groups = list(self.client.usergroups_list(include_count=True)["usergroups"] or [])
        except SlackApiError as exc:
            raise UserInputError(_audience_error("user groups", exc), field="groups") from exc
        self._groups = (now, groups)
        return groups

    def group_members(self, group_id: str) -> list[str]:
        """The user ids in a user group (``usergroups.users.list``, one call, no paging)."""
        try:
            return list(self.client.usergroups_users_list(usergroup=group_id)["users"] or [])
        except SlackApiError as exc:
            raise UserInputError(
                _audience_error(f"the members of user group {group_id}", exc), field="groups"
            ) from exc

    def channel_members(self, channel_id: str) -> list[str]:
        """Every member of a channel, following ``next_cursor`` page by page."""
        members: list[str] = []
        try:
            for page in self.client.conversations_members(channel=channel_id, limit=MEMBERS_PAGE):
                members += page.get("members") or []
        except SlackApiError as exc:
            raise UserInputError(
                _audience_error(f"the members of <#{channel_id}>", exc), field="channels"
            ) from exc
        return members

    def download(
        self, file: Mapping[str, Any], *, field: str = "csv", max_bytes: int = MAX_CSV_BYTES
    ) -> tuple[str, bytes]:
        """The name and bytes of an uploaded file, fetched with the bot token.

        ``field`` is the form field a problem is shown on; at most ``max_bytes``
        (and one more, so a caller can tell the file was larger) are read.
        """
        try:
            info = self.client.files_info(file=file["id"])["file"]
        except SlackApiError as exc:
            raise UserInputError(
                f"Slack did not hand over the file ({exc.response.get('error')}). If the "
                "error is missing_scope, an admin adds files:read to the app and reinstalls it.",
                field=field,
            ) from exc
        name = info.get("name") or file.get("name") or "recipients.csv"
        url = info.get("url_private_download") or info.get("url_private") or ""
        if not self._is_slack_file_url(url):
            raise UserInputError(
                f"Slack gave an unexpected download address for {name}; it was not fetched.",
                field=field,
            )
        request = urllib.request.Request(url)  # noqa: S310 (an http(s) Slack host, checked above)
        # Unredirected: the token never follows a redirect to another host.
        request.add_unredirected_header("Authorization", f"Bearer {self.client.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (checked)
                kind = response.headers.get_content_type()
                data = response.read(max_bytes + 1)
        except OSError as exc:
            raise UserInputError(
                f"{name} could not be downloaded from Slack ({exc}). Try again.", field=field
            ) from exc
        if kind == "text/html" and info.get("mimetype") != "text/html":
            raise UserInputError(
                f"Slack answered with a sign-in page instead of {name}: the app may lack "
                "the files:read scope. An admin adds it and reinstalls the app.",
                field=field,
            )
        return name, data

    def _is_slack_file_url(self, url: str) -> bool:
        """Only Slack's own hosts get the bot token: the API host or its ``files.`` host."""
        target = urlparse(url)
        api = urlparse(self.client.base_url)
        if target.scheme != api.scheme or not target.hostname or not api.hostname:
            return False
        return target.netloc == api.netloc or target.hostname == f"files.{api.hostname}"


def _audience_error(what: str, exc: SlackApiError) -> str:
    """Why Slack did not show an audience, and what a person can do about it."""
    error = exc.response.get("error", "")
    fixes = {
        "missing_scope": "an admin adds the usergroups:read, channels:read and groups:read "
        "scopes to the app and reinstalls it",
        "plan_upgrade_required": "user groups need a paid Slack plan; pick people or a "
        "channel instead",
        "channel_not_found": "for a private channel, invite me first (/invite @mailbolt)",
        "no_such_subteam": "the group may have been deleted; pick it again",
        "ratelimited": "Slack is busy; try again in a minute",
    }
    fix = fixes.get(error, "try again, or pick the people another way")
    return f"Slack did not show {what} ({error}): {fix}."
