"""People's profiles and uploaded files, fetched from Slack for the compose form.

Profiles are cached briefly and fetched several at a time, because a form can
name 200 people and ``users.info`` is one call each. A file is downloaded with
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


class Lookups:
    """People's profiles (cached briefly) and uploaded files, fetched from Slack."""

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
        if missing:
            with ThreadPoolExecutor(max_workers=min(LOOKUP_THREADS, len(missing))) as pool:
                for user_id, user in zip(missing, pool.map(self._user, missing), strict=True):
                    self._users[user_id] = (now, user)
        return [self._users[u][1] for u in user_ids]

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
