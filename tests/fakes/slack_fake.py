"""A loopback Slack: the Web API mailbolt calls, and the platform that calls mailbolt.

``SlackFake`` serves the Web API methods mailbolt uses on ``127.0.0.1:<free port>``
(a threaded ``http.server``), so the real ``slack_sdk.WebClient`` talks to it
through ``SLACK_API_URL`` and every request goes through the real client code:
- It records every call, keeps messages (``chat.update`` edits them), views and
  Home tabs, and serves ``users.info``, ``auth.test`` (with ``x-oauth-scopes``),
  ``files.info`` and file downloads (bearer token required; without it, an HTML
  sign-in page, as Slack does).
- ``trigger_id`` s it hands out expire after 3 seconds and work once.
- Views are checked with ``slack_sdk.models`` and with the limits the SDK does
  not check (``plain_text_input`` max_length ≤ 3,000, ``file_input`` max_files ≤
  10, 250 kB per view); messages with Slack's 50-block and 4,000-character limits.
  A bad one is refused the way Slack refuses it (``invalid_arguments``,
  ``invalid_blocks``, ``msg_too_long``) and noted in ``problems``.
- ``fail_next`` makes a method answer 429 with ``Retry-After`` (or an error code).
- Audiences: ``usergroups.list``/``usergroups.users.list`` (``usergroups:read``),
  ``conversations.members`` and ``users.list`` paged with ``cursor``/``limit``
  (a page of ``conversations.members`` may hold fewer than ``limit``, as Slack's
  may); ``add_group``, ``add_channel`` set them up.
- The file upload of today (``files.upload`` is retired): ``files.getUploadURLExternal``,
  a POST of the bytes to the URL it gives, ``files.completeUploadExternal``
  (``files:write``), kept in ``shared_files``.
- ``rate_tiers=True`` answers 429 past each method's tier per minute (Tier 2: 20,
  Tier 3: 50, Tier 4: 100), so a test can show a flow stays within Slack's limits.
- ``gate(method, event)`` holds a method's answers until ``event`` is set, so a
  test can show an acknowledgement came before slow work finished;
  ``hold_answers(method, event)`` does the work but holds the answer.

It also plays the Slack platform: ``command``, ``submit_view``, ``click`` and
``event`` sign their requests with the signing secret and POST them to the app's
``/slack/events`` exactly as Slack does (form bodies for commands, ``payload=``
JSON for interactions), and the app's ``response_action`` is applied to the
views kept here.

Many workspaces: ``GET /oauth/v2/authorize`` plays the person consenting in the
workspace a test chose (``consent_as``) and redirects back with a code;
``oauth.v2.access`` (client ID and secret checked, each code once) gives that
workspace a bot token. Every Web API call is answered in the workspace of the
token it carries (``auth.test``, users, messages, views and triggers are kept
per workspace; ``Call.team`` says which), and ``command``/``click``/
``submit_view``/``event`` take ``team=``. ``uninstall`` revokes a workspace's
tokens and tells the app. Without any of this it is the one workspace ``TEAM``.

The last section starts the real mailbolt server against the fake.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlparse

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier

T = TypeVar("T")

BOT_TOKEN = "xoxb-1-fake-bot-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM = "T0FAKE"
BOT_USER = "U0BOT"
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "fake-client-secret"
DEFAULT_SCOPES = (
    "commands,chat:write,users:read,users:read.email,files:read,channels:read,groups:read,"
    "usergroups:read,files:write"
)
#: Calls a minute each method is allowed (https://api.slack.com/docs/rate-limits),
#: for the methods this fake serves; unnamed ones are Tier 4 here.
TIERS = {
    "users.list": 20,
    "usergroups.list": 20,
    "usergroups.users.list": 20,
    "conversations.info": 50,
    "chat.update": 50,
    "users.lookupByEmail": 50,
}
TIER_4 = 100
TRIGGER_SECONDS = 3.0
MAX_VIEW_BYTES = 250_000
MAX_MESSAGE_BLOCKS = 50
MAX_MESSAGE_TEXT = 4000
LOGIN_PAGE = b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>"


class SlackRefusal(Exception):
    """What Slack answers for a bad request: an error code and, maybe, messages."""

    def __init__(self, error: str, messages: list[str] | None = None):
        self.error = error
        self.messages = messages or []
        super().__init__(f"{error}: {'; '.join(self.messages)}")


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    status: int
    error: str = ""
    #: The workspace whose token the call carried ("" with none, or an unknown one).
    team: str = ""


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@dataclass
class Reply:
    """The app's HTTP answer to something the platform sent (header names lowercased)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body) if self.body.strip() else {}


@dataclass
class _Failure:
    status: int
    retry_after: int
    error: str
    times: int


def view_problems(view: dict[str, Any], kind: str) -> list[str]:
    """Why Slack would refuse ``view`` (empty when it would take it)."""
    problems: list[str] = []
    if view.get("type") != kind:
        problems.append(f"view type must be {kind!r}, not {view.get('type')!r}")
    try:
        View(**view).to_dict()
    except (SlackObjectFormationError, TypeError, ValueError, KeyError) as exc:
        problems.append(str(exc))
    if len(json.dumps(view)) > MAX_VIEW_BYTES:
        problems.append("view_too_large")
    for block in view.get("blocks") or []:
        element = block.get("element") or {}
        if element.get("type") == "plain_text_input":
            if not 0 < element.get("max_length", 3000) <= 3000:
                problems.append(f"{block.get('block_id')}: max_length must be 1..3000")
            if len(element.get("initial_value", "")) > element.get("max_length", 3000):
                problems.append(f"{block.get('block_id')}: initial_value longer than max_length")
        if element.get("type") == "file_input" and not 1 <= element.get("max_files", 10) <= 10:
            problems.append(f"{block.get('block_id')}: max_files must be 1..10")
    return problems


def message_problems(text: str, blocks: list[dict[str, Any]] | None) -> SlackRefusal | None:
    if not text and not blocks:
        return SlackRefusal("no_text")
    if len(text) > MAX_MESSAGE_TEXT:
        return SlackRefusal("msg_too_long")
    if blocks:
        if len(blocks) > MAX_MESSAGE_BLOCKS:
            return SlackRefusal("invalid_blocks", [f"{len(blocks)} blocks; the limit is 50"])
        try:
            for block in Block.parse_all(blocks):
                block.to_dict()
        except (SlackObjectFormationError, TypeError, ValueError) as exc:
            return SlackRefusal("invalid_blocks", [str(exc)])
    return None


class SlackFake:
    """The Web API on a free loopback port, plus the platform's side of the conversation."""

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        signing_secret: str = SIGNING_SECRET,
        scopes: str = DEFAULT_SCOPES,
        rate_tiers: bool = False,
    ):
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        self.scopes = scopes
        self.app_url = ""
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.problems: list[str] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.open_views: set[str] = set()
        self.home: dict[str, dict[str, Any]] = {}
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.non_member: set[str] = set()
        self.rate_tiers = rate_tiers
        self.groups: dict[str, dict[str, Any]] = {}
        self.group_members: dict[str, list[str]] = {}
        self.channel_members: dict[str, list[str]] = {}
        self.shared_files: list[dict[str, Any]] = []
        self._uploads: dict[str, dict[str, Any]] = {}
        self._gates: dict[str, threading.Event] = {}
        self._held_answers: dict[str, threading.Event] = {}
        self._minute: dict[str, list[float]] = {}
        self._triggers: dict[str, tuple[float, str]] = {}
        self._trigger_teams: dict[str, str] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._ids = itertools.count(1)
        # Many workspaces: which workspace each bot token speaks for, and the installs.
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.tokens: dict[str, str] = {bot_token: TEAM}
        self.team_names: dict[str, str] = {TEAM: "Fake Team"}
        self._consent: tuple[str, str] | None = None
        self._codes: dict[str, tuple[str, str, str]] = {}
        self._local = threading.local()
        #: What apps posted to response_url s (commands and clicks).
        self.responses: list[dict[str, Any]] = []
        # Socket Mode, set by tests/fakes/socket_mode_fake.py: the app-level token
        # apps.connections.open requires, and where its WebSocket URLs come from.
        self.app_token = ""
        self.socket_url: Callable[[], str] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> SlackFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    @property
    def authorize_url(self) -> str:
        """Slack's consent page (``SLACK_OAUTH_AUTHORIZE_URL``)."""
        return f"{self.base_url}/oauth/v2/authorize"

    # -- many workspaces -------------------------------------------------------------------

    def consent_as(self, *, team: str, user: str, name: str = "") -> None:
        """Who says "Allow" on the next visits to the consent page: ``user`` of ``team``."""
        with self.lock:
            self._consent = (team, user)
            self.team_names.setdefault(team, name or f"Team {team}")

    def refuse_consent(self) -> None:
        """The next visit to the consent page presses Cancel (``error=access_denied``)."""
        with self.lock:
            self._consent = None

    def token_of(self, team: str) -> str:
        """The newest bot token of ``team`` ("" if it has none)."""
        with self.lock:
            mine = [t for t, owner in self.tokens.items() if owner == team]
        return mine[-1] if mine else ""

    def uninstall(self, team: str) -> Reply:
        """Someone removes the app from ``team``: its tokens stop working, and Slack
        tells the app (``app_uninstalled``)."""
        with self.lock:
            self.tokens = {t: owner for t, owner in self.tokens.items() if owner != team}
        return self.event({"type": "app_uninstalled"}, team=team)

    def _response_url(self, path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """A message posted to a command's or a click's ``response_url``."""
        with self.lock:
            self.responses.append({"path": path, **json.loads(raw or b"{}")})
        return 200, {"Content-Type": "text/plain"}, b"ok"

    def _current_team(self) -> str:
        return getattr(self._local, "team", "") or TEAM

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """The consent page: the chosen person allows at once, and the browser is sent
        back to ``redirect_uri`` with a single-use code and the app's ``state``."""
        with self.lock:
            self.calls.append(Call("oauth.authorize", dict(query), 200))
            consent = self._consent
        if query.get("client_id") != self.client_id or not query.get("redirect_uri"):
            return 400, {"Content-Type": "text/plain"}, b"invalid client_id or redirect_uri"
        if consent is None:
            back = {"error": "access_denied", "state": query.get("state", "")}
        else:
            code = f"code-{next(self._ids)}"
            with self.lock:
                self._codes[code] = (consent[0], consent[1], query["redirect_uri"])
            back = {"code": code, "state": query.get("state", "")}
        location = f"{query['redirect_uri']}?{urlencode(back)}"
        return 302, {"Location": location, "Content-Type": "text/plain"}, b""

    def _m_oauth_v2_access(self, args: dict) -> dict:
        if (args.get("client_id"), args.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            raise SlackRefusal("invalid_client_id")
        with self.lock:
            found = self._codes.pop(args.get("code", ""), None)
        if found is None:
            raise SlackRefusal("invalid_code")
        team, user, redirect_uri = found
        # Slack: it "must match the originally submitted URI (if one was sent)".
        if redirect_uri and args.get("redirect_uri") != redirect_uri:
            raise SlackRefusal("bad_redirect_uri")
        token = f"xoxb-{team}-{next(self._ids)}-fake"
        with self.lock:
            self.tokens[token] = team
        return {
            "access_token": token,
            "token_type": "bot",
            "scope": self.scopes,
            "bot_user_id": self._bot_user(team),
            "app_id": "A0FAKE",
            "team": {"id": team, "name": self.team_names.get(team, team)},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": user},
        }

    @staticmethod
    def _bot_user(team: str) -> str:
        return BOT_USER if team == TEAM else f"U0BOT{team[-3:]}"

    # -- set-up ------------------------------------------------------------------------

    def add_user(
        self, user_id: str, email: str | None, name: str = "", *, team: str = TEAM, **extra: Any
    ) -> dict:
        profile = {"real_name": name, "display_name": name.split(" ")[0] if name else ""}
        if email is not None:
            profile["email"] = email
        user = {
            "id": user_id,
            "team_id": team,
            "name": (name or user_id).lower().replace(" ", "."),
            "real_name": name,
            "deleted": False,
            "is_bot": False,
            "profile": profile,
            **extra,
        }
        with self.lock:
            self.users[user_id] = user
        return user

    def add_file(self, name: str, content: bytes, filetype: str = "csv") -> dict[str, Any]:
        """An uploaded file, as it appears in a ``file_input``'s state."""
        file_id = f"F{next(self._ids):08d}"
        quoted = quote(name)  # Slack's file URLs are percent-encoded, as URLs must be
        url = f"{self.base_url}/files-pri/{TEAM}-{file_id}/{quoted}"
        meta = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": "text/csv" if filetype == "csv" else "application/octet-stream",
            "filetype": filetype,
            "size": len(content),
            "url_private": url,
            "url_private_download": url.replace(f"/{quoted}", f"/download/{quoted}"),
        }
        with self.lock:
            self.files[file_id] = (meta, content)
        return dict(meta)

    def add_group(self, group_id: str, handle: str, members: list[str], name: str = "") -> None:
        """A user group (``@handle``) with these members."""
        with self.lock:
            self.groups[group_id] = {
                "id": group_id,
                "team_id": TEAM,
                "handle": handle,
                "name": name or handle,
                "user_count": len(members),
                "date_delete": 0,
            }
            self.group_members[group_id] = list(members)

    def add_channel(self, channel_id: str, members: list[str]) -> None:
        with self.lock:
            self.channel_members[channel_id] = list(members)

    def gate(self, method: str, event: threading.Event) -> None:
        """Hold every answer of ``method`` until ``event`` is set."""
        with self.lock:
            self._gates[method] = event

    def hold_answers(self, method: str, event: threading.Event) -> None:
        """Do what ``method`` asks at once but hold its answer until ``event`` is set,
        so a test can act in the moment Slack shows a message the caller has not yet
        heard back about."""
        with self.lock:
            self._held_answers[method] = event

    def fail_next(self, method: str, *, error: str = "", retry_after: int = 1, times: int = 1):
        """The next ``times`` calls of ``method`` fail: with ``{"ok": false, "error":
        error}`` if ``error`` is given, else with HTTP 429 and ``Retry-After``."""
        with self.lock:
            self._failures.setdefault(method, []).append(
                _Failure(200 if error else 429, retry_after, error or "ratelimited", times)
            )

    def new_trigger(self, user: str, team: str = TEAM) -> str:
        trigger = f"{next(self._ids)}.{int(time.time())}.fake"
        with self.lock:
            self._triggers[trigger] = (time.monotonic(), user)
            self._trigger_teams[trigger] = team
        return trigger

    # -- inspection ----------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def messages_in(self, channel: str, team: str | None = None) -> list[dict[str, Any]]:
        """Messages in ``channel`` (of ``team`` only, when given)."""
        with self.lock:
            return [
                m
                for (ch, _), m in sorted(self.messages.items())
                if ch == channel and team in (None, m["team"])
            ]

    def top_view(self, user: str) -> dict[str, Any] | None:
        """The open modal a user is looking at (the most recent one)."""
        with self.lock:
            mine = [self.views[v] for v in self.open_views if self.views[v]["user"] == user]
        return max(mine, key=lambda v: v["seq"]) if mine else None

    # -- the Web API ------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                authorization = self.headers.get("Authorization") or ""
                token = authorization.removeprefix("Bearer ")
                basic = {}
                if authorization.startswith("Basic "):
                    pair = base64.b64decode(authorization[6:]).decode()
                    client_id, _, secret = pair.partition(":")
                    basic = {"client_id": client_id, "client_secret": secret}
                    token = ""
                if url.path.startswith(("/commands/", "/actions/")):
                    status, headers, body = fake._response_url(url.path, raw)
                elif url.path == "/oauth/v2/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    status, headers, body = fake._authorize(query)
                elif url.path.startswith("/files-pri/"):
                    status, headers, body = fake._download(url.path, token)
                elif url.path.startswith("/upload/"):
                    status, headers, body = fake._upload(url.path, raw)
                elif url.path.startswith("/api/"):
                    args = {k: v[0] for k, v in parse_qs(url.query).items()}
                    kind = self.headers.get("Content-Type") or ""
                    if raw and kind.startswith("application/json"):
                        args.update(json.loads(raw))
                    elif raw:
                        args.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
                    token = token or args.pop("token", "")
                    args.update(basic)
                    status, headers, body = fake._api(url.path[5:], args, token)
                else:
                    status, headers, body = 404, {}, b"not found"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _download(self, path: str, token: str) -> tuple[int, dict[str, str], bytes]:
        file_id = path.split("/")[2].split("-", 1)[1]
        with self.lock:
            self.calls.append(Call("file.download", {"file": file_id}, 200))
            found = self.files.get(file_id)
        if token not in self.tokens or found is None:
            return 200, {"Content-Type": "text/html; charset=utf-8"}, LOGIN_PAGE
        meta, content = found
        return 200, {"Content-Type": meta["mimetype"]}, content

    def _upload(self, path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """The bytes of a file, POSTed to the URL ``files.getUploadURLExternal`` gave."""
        file_id = path.rsplit("/", 1)[-1]
        with self.lock:
            self.calls.append(Call("file.upload", {"file": file_id}, 200))
            pending = self._uploads.get(file_id)
            if pending is None:
                return 404, {}, b"unknown upload"
            pending["content"] = raw
        return 200, {"Content-Type": "text/plain"}, b"OK - " + str(len(raw)).encode()

    def _over_tier(self, method: str) -> bool:
        """Whether one more call of ``method`` goes past its tier this minute."""
        now = time.monotonic()
        with self.lock:
            recent = [t for t in self._minute.get(method, []) if now - t < 60]
            over = len(recent) >= TIERS.get(method, TIER_4)
            if not over:
                recent.append(now)
            self._minute[method] = recent
        return over

    def _api(self, method: str, args: dict[str, Any], token: str) -> tuple[int, dict, bytes]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        with self.lock:
            gate = self._gates.get(method)
        if gate is not None:
            gate.wait(30)
        if self.rate_tiers and self._over_tier(method):
            self._record(method, args, 429, "ratelimited")
            headers["Retry-After"] = "1"
            return 429, headers, json.dumps({"ok": False, "error": "ratelimited"}).encode()
        with self.lock:
            queue = self._failures.get(method) or []
            failure = queue[0] if queue else None
            if failure:
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
        if failure and failure.status == 429:
            self._record(method, args, 429, "ratelimited")
            headers["Retry-After"] = str(failure.retry_after)
            return 429, headers, json.dumps({"ok": False, "error": "ratelimited"}).encode()
        self._local.team = self.tokens.get(token, "")
        try:
            if method != "oauth.v2.access" and not self._token_fits(method, token):
                raise SlackRefusal("invalid_auth")
            if failure:
                raise SlackRefusal(failure.error)
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                raise SlackRefusal("unknown_method")
            result = handler(args)
        except SlackRefusal as refusal:
            self._record(method, args, 200, refusal.error)
            if refusal.error in ("invalid_arguments", "invalid_blocks", "msg_too_long"):
                with self.lock:
                    self.problems.append(f"{method}: {refusal}")
            body: dict[str, Any] = {"ok": False, "error": refusal.error}
            if refusal.messages:
                body["response_metadata"] = {"messages": refusal.messages}
            return 200, headers, json.dumps(body).encode()
        self._record(method, args, 200)
        with self.lock:
            held = self._held_answers.get(method)
        if held is not None:
            held.wait(30)
        if method == "auth.test":
            headers["x-oauth-scopes"] = self.scopes
        return 200, headers, json.dumps({"ok": True, **result}).encode()

    def _record(self, method: str, args: dict[str, Any], status: int, error: str = "") -> None:
        team = getattr(self._local, "team", "")
        with self.lock:
            self.calls.append(Call(method, args, status, error, team))

    def _m_auth_test(self, args: dict) -> dict:
        team = self._current_team()
        return {
            "url": "https://fake.slack.test/",
            "team": self.team_names.get(team, team),
            "user": "mailbolt",
            "team_id": team,
            "user_id": self._bot_user(team),
            "bot_id": "B0BOT" if team == TEAM else f"B0BOT{team[-3:]}",
        }

    def _m_users_info(self, args: dict) -> dict:
        with self.lock:
            user = self.users.get(args.get("user", ""))
        if user is None or user["team_id"] != self._current_team():
            raise SlackRefusal("user_not_found")
        return {"user": self._visible(user)}

    def _m_files_info(self, args: dict) -> dict:
        if "files:read" not in self.scopes.split(","):
            raise SlackRefusal("missing_scope")
        with self.lock:
            found = self.files.get(args.get("file", ""))
        if found is None:
            raise SlackRefusal("file_not_found")
        return {"file": dict(found[0])}

    def _m_conversations_info(self, args: dict) -> dict:
        """Public channels need channels:read, private ones (G…) groups:read; a
        private channel the app is not in is not found, as on Slack."""
        channel = args.get("channel", "")
        private = channel.startswith("G")
        if ("groups:read" if private else "channels:read") not in self.scopes.split(","):
            raise SlackRefusal("missing_scope")
        with self.lock:
            member = channel not in self.non_member
        if private and not member:
            raise SlackRefusal("channel_not_found")
        return {"channel": {"id": channel, "is_channel": not private, "is_member": member}}

    # -- audiences ---------------------------------------------------------------------------

    def _needs(self, scope: str) -> None:
        if scope not in self.scopes.split(","):
            raise SlackRefusal("missing_scope")

    @staticmethod
    def _page(items: list[Any], args: dict, *, short: bool = False) -> tuple[list[Any], str]:
        """One page of ``items`` from ``cursor`` (an offset here) and ``limit``; with
        ``short`` a page holds one fewer than asked, as Slack's pages sometimes do."""
        try:
            start = int(args.get("cursor") or 0)
            limit = int(args.get("limit") or 100)
        except ValueError:
            raise SlackRefusal("invalid_cursor") from None
        if not 1 <= limit <= 1000:
            raise SlackRefusal("invalid_limit")
        end = start + (limit - 1 if short and limit > 1 else limit)
        return items[start:end], str(end) if end < len(items) else ""

    def _m_usergroups_list(self, args: dict) -> dict:
        self._needs("usergroups:read")
        with self.lock:
            return {"usergroups": [dict(g) for g in self.groups.values()]}

    def _m_usergroups_users_list(self, args: dict) -> dict:
        self._needs("usergroups:read")
        with self.lock:
            members = self.group_members.get(args.get("usergroup", ""))
        if members is None:
            raise SlackRefusal("no_such_subteam")
        return {"users": list(members)}

    def _m_conversations_members(self, args: dict) -> dict:
        channel = args.get("channel", "")
        self._needs("groups:read" if channel.startswith("G") else "channels:read")
        with self.lock:
            members = self.channel_members.get(channel)
        if members is None:
            raise SlackRefusal("channel_not_found")
        page, cursor = self._page(members, args, short=True)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _m_users_list(self, args: dict) -> dict:
        self._needs("users:read")
        if not args.get("limit"):
            raise SlackRefusal("limit_required")
        with self.lock:
            here = self._current_team()
            everyone = [self._visible(u) for u in self.users.values() if u["team_id"] == here]
        page, cursor = self._page(everyone, args)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _visible(self, user: dict[str, Any]) -> dict[str, Any]:
        visible = json.loads(json.dumps(user))
        if "users:read.email" not in self.scopes.split(","):
            visible["profile"].pop("email", None)
        return visible

    # -- uploading a file ------------------------------------------------------------------

    def _m_files_getUploadURLExternal(self, args: dict) -> dict:
        self._needs("files:write")
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            raise SlackRefusal("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        with self.lock:
            self._uploads[file_id] = {"filename": args["filename"], "length": int(args["length"])}
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict) -> dict:
        self._needs("files:write")
        files = args.get("files")
        files = json.loads(files) if isinstance(files, str) else files or []
        channel = args.get("channel_id", "")
        if channel and channel in self.non_member:
            raise SlackRefusal("not_in_channel")
        done = []
        with self.lock:
            for item in files:
                pending = self._uploads.get(item.get("id", ""))
                if pending is None or "content" not in pending:
                    raise SlackRefusal("file_not_found")
                if len(pending["content"]) != pending["length"]:
                    raise SlackRefusal("file_upload_size_mismatch")
                shared = {
                    "id": item["id"],
                    "title": item.get("title") or pending["filename"],
                    "name": pending["filename"],
                    "channel": channel,
                    "initial_comment": args.get("initial_comment", ""),
                    "content": pending["content"],
                }
                self.shared_files.append(shared)
                done.append({"id": item["id"], "title": shared["title"]})
        return {"files": done}

    def _take_trigger(self, trigger: str) -> str:
        with self.lock:
            issued = self._triggers.get(trigger)
            if issued is None or self._trigger_teams.get(trigger) != self._current_team():
                raise SlackRefusal("invalid_trigger_id")
            self._triggers[trigger] = (-1.0, issued[1])
        if issued[0] < 0:
            raise SlackRefusal("exchanged_trigger_id")
        if time.monotonic() - issued[0] > TRIGGER_SECONDS:
            raise SlackRefusal("expired_trigger_id")
        return issued[1]

    def _check_view(self, view: Any, kind: str = "modal") -> dict[str, Any]:
        if isinstance(view, str):
            view = json.loads(view)
        problems = view_problems(view, kind)
        if problems:
            raise SlackRefusal("invalid_arguments", problems)
        return view

    def _store_view(self, view: dict, user: str, previous: dict | None = None) -> dict:
        seq = next(self._ids)
        view_id = previous["id"] if previous else f"V{seq:08d}"
        stored = {
            **view,
            "id": view_id,
            "team_id": previous["team_id"] if previous else self._current_team(),
            "hash": f"{seq}.{view_id}",
            "state": {"values": {}},
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "root_view_id": (previous or {}).get("root_view_id", view_id),
            "app_id": "A0FAKE",
            "bot_id": "B0BOT",
            "user": user,
            "seq": seq,
        }
        with self.lock:
            self.views[view_id] = stored
            self.open_views.add(view_id)
        return stored

    def _public(self, view: dict) -> dict:
        return {k: v for k, v in view.items() if k not in ("user", "seq")}

    def _m_views_open(self, args: dict) -> dict:
        user = self._take_trigger(args.get("trigger_id", ""))
        return {"view": self._public(self._store_view(self._check_view(args["view"]), user))}

    def _m_views_push(self, args: dict) -> dict:
        user = self._take_trigger(args.get("trigger_id", ""))
        with self.lock:
            stack = [v for v in self.open_views if self.views[v]["user"] == user]
        if len(stack) >= 3:
            raise SlackRefusal("push_limit_reached")
        return {"view": self._public(self._store_view(self._check_view(args["view"]), user))}

    def _m_views_update(self, args: dict) -> dict:
        with self.lock:
            view_id = args.get("view_id") or next(
                (
                    v
                    for v, d in self.views.items()
                    if d.get("external_id") == args.get("external_id")
                ),
                "",
            )
            current = self.views.get(view_id)
            if current is None or view_id not in self.open_views:
                raise SlackRefusal("not_found")
            if current["team_id"] != self._current_team():
                raise SlackRefusal("not_found")
            if args.get("hash") and args["hash"] != current["hash"]:
                raise SlackRefusal("hash_conflict")
        view = self._check_view(args["view"])
        return {"view": self._public(self._store_view(view, current["user"], current))}

    def _m_views_publish(self, args: dict) -> dict:
        view = self._check_view(args["view"], kind="home")
        with self.lock:
            self.home[args["user_id"]] = view
        return {"view": {**view, "id": f"VH{args['user_id']}"}}

    def _channel_for(self, channel: str) -> str:
        if channel in self.non_member:
            raise SlackRefusal("not_in_channel")
        return f"D{channel[1:]}" if channel.startswith("U") else channel

    def _decode_blocks(self, args: dict) -> list[dict] | None:
        blocks = args.get("blocks")
        return json.loads(blocks) if isinstance(blocks, str) else blocks

    def _m_chat_postMessage(self, args: dict) -> dict:
        channel = self._channel_for(args.get("channel", ""))
        blocks = self._decode_blocks(args)
        refusal = message_problems(args.get("text", ""), blocks)
        if refusal:
            raise refusal
        ts = f"{int(time.time())}.{next(self._ids):06d}"
        message = {
            "ts": ts,
            "channel": channel,
            "text": args.get("text", ""),
            "blocks": blocks or [],
            "thread_ts": args.get("thread_ts"),
            "edits": 0,
            "team": self._current_team(),
        }
        with self.lock:
            self.messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": message}

    def _m_chat_update(self, args: dict) -> dict:
        key = (args.get("channel", ""), args.get("ts", ""))
        blocks = self._decode_blocks(args)
        refusal = message_problems(args.get("text", ""), blocks)
        if refusal:
            raise refusal
        with self.lock:
            message = self.messages.get(key)
            if message is None or message["team"] != self._current_team():
                raise SlackRefusal("message_not_found")
            message.update(text=args.get("text", ""), blocks=blocks or [])
            message["edits"] += 1
        return {"channel": key[0], "ts": key[1], "text": message["text"]}

    def _m_chat_postEphemeral(self, args: dict) -> dict:
        refusal = message_problems(args.get("text", ""), self._decode_blocks(args))
        if refusal:
            raise refusal
        with self.lock:
            self.ephemerals.append(dict(args))
        return {"message_ts": f"{int(time.time())}.{next(self._ids):06d}"}

    # -- Socket Mode: apps.connections.open (see tests/fakes/socket_mode_fake.py) ---------------

    def _token_fits(self, method: str, token: str) -> bool:
        """Whether ``token`` may call ``method``: the app-level one (xapp-) for Socket
        Mode's URL, a bot token of an installed workspace for everything else."""
        if method == "apps.connections.open" and self.socket_url is not None:
            return token == self.app_token
        return token in self.tokens

    def _m_apps_connections_open(self, args: dict) -> dict:
        if self.socket_url is None:
            raise SlackRefusal("unknown_method")
        return {"url": self.socket_url()}

    # -- the platform: requests to the app ----------------------------------------------------

    def post_signed(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """POST ``body`` to the app, signed the way Slack signs it."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret or self.signing_secret).generate_signature(
            timestamp=ts, body=body.decode()
        )
        request = urllib.request.Request(
            self.app_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": signature,
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, _lower(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, _lower(error.headers), error.read())

    def _interaction(self, payload: dict[str, Any], **kwargs: Any) -> Reply:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post_signed(body, "application/x-www-form-urlencoded", **kwargs)

    def _user(self, user: str, team: str = TEAM) -> dict[str, str]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}

    def command(
        self,
        text: str = "",
        *,
        user: str,
        channel: str = "C0GENERAL",
        retry_num: int | None = None,
        team: str = TEAM,
        **kwargs: Any,
    ) -> tuple[Reply, str]:
        """``/sendmail text`` typed by ``user`` in ``team``; returns the answer and the
        trigger_id."""
        trigger = self.new_trigger(user, team)
        form = {
            "token": "legacy-verification-token",
            "team_id": team,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/sendmail",
            "text": text,
            "api_app_id": "A0FAKE",
            "is_enterprise_install": "false",
            "response_url": f"{self.base_url}/commands/{team}/response",
            "trigger_id": trigger,
        }
        headers = kwargs.pop("headers", {}) or {}
        if retry_num is not None:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "timeout"}
        body = urlencode(form).encode()
        reply = self.post_signed(
            body, "application/x-www-form-urlencoded", headers=headers, **kwargs
        )
        return reply, trigger

    def submit_view(
        self,
        view_id: str,
        values: dict[str, Any],
        *,
        user: str,
        apply: bool = True,
        team: str | None = None,
    ) -> Reply:
        """Press the modal's submit button with ``values`` as its state.

        ``apply=False`` leaves the view as it was, as when a second click arrives
        before Slack has shown the app's answer to the first.
        """
        with self.lock:
            view = json.loads(json.dumps(self.views[view_id]))
            assert view_id in self.open_views, f"view {view_id} is closed"
        view["state"] = {"values": values}
        team = team or view["team_id"]
        payload = {
            "type": "view_submission",
            "team": {"id": team, "domain": "fake"},
            "user": self._user(user, team),
            "api_app_id": "A0FAKE",
            "token": "legacy-verification-token",
            "trigger_id": self.new_trigger(user, team),
            "view": self._public(view),
            "response_urls": [],
            "is_enterprise_install": False,
        }
        reply = self._interaction(payload)
        if reply.status == 200 and apply:
            self._apply(view_id, reply.json, user)
        return reply

    def _apply(self, view_id: str, answer: dict[str, Any], user: str) -> None:
        """Do with the view what Slack does with the app's answer to a submission."""
        action = answer.get("response_action")
        with self.lock:
            current = self.views[view_id]
            self._local.team = current["team_id"]  # a pushed view opens in the same workspace
            if action == "errors":
                inputs = {b.get("block_id") for b in current["blocks"] if b["type"] == "input"}
                wrong = set(answer.get("errors", {})) - inputs
                if wrong:
                    self.problems.append(f"errors for blocks that are not inputs: {wrong}")
                current["errors"] = answer.get("errors", {})
            elif action in ("update", "push"):
                problems = view_problems(answer["view"], "modal")
                if problems:
                    self.problems.append(f"response_action {action}: {problems}")
                    return
                self._store_view(answer["view"], user, current if action == "update" else None)
            elif action == "clear":
                self.open_views -= {v for v in self.open_views if self.views[v]["user"] == user}
            else:
                self.open_views.discard(view_id)

    def click(
        self,
        action_id: str,
        *,
        user: str,
        view_id: str | None = None,
        message: tuple[str, str] | None = None,
        home: bool = False,
        value: str | None = None,
        team: str = TEAM,
    ) -> Reply:
        """Press the button ``action_id`` in an open view, in a message, or (``home``)
        on the user's App Home tab. ``value`` forges the button's value (an edited
        payload, still signed: what a tampering client could send)."""
        with self.lock:
            if home:
                view_id = f"VH{user}"
                container = json.loads(json.dumps(self.home[user]))
            elif view_id is not None:
                container = json.loads(json.dumps(self.views[view_id]))
            else:
                assert message is not None
                container = json.loads(json.dumps(self.messages[message]))
        found = [
            (block.get("block_id", ""), element)
            for block in container["blocks"]
            if block["type"] == "actions"
            for element in block["elements"]
            if element.get("action_id") == action_id
        ]
        assert found, f"there is no {action_id!r} button to press"
        block_id, element = found[0]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "team": {"id": team, "domain": "fake"},
            "user": self._user(user, team),
            "api_app_id": "A0FAKE",
            "token": "legacy-verification-token",
            "trigger_id": self.new_trigger(user, team),
            "is_enterprise_install": False,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": element.get("value", "") if value is None else value,
                    "text": element.get("text"),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        if home:
            payload["container"] = {"type": "view", "view_id": view_id}
            payload["view"] = {**container, "id": view_id}
        elif view_id is not None:
            payload["container"] = {"type": "view", "view_id": view_id}
            payload["view"] = self._public(container)
        else:
            channel, ts = message  # type: ignore[misc]
            payload["container"] = {"type": "message", "message_ts": ts, "channel_id": channel}
            payload["channel"] = {"id": channel, "name": "general"}
            payload["message"] = container
            payload["response_url"] = f"{self.base_url}/actions/{team}/response"
        return self._interaction(payload)

    def suggest(
        self, action_id: str, value: str, *, user: str, view_id: str = "", team: str = TEAM
    ) -> Reply:
        """Typing ``value`` into an external select: Slack asks the app for options."""
        payload: dict[str, Any] = {
            "type": "block_suggestion",
            "team": {"id": team, "domain": "fake"},
            "user": self._user(user, team),
            "api_app_id": "A0FAKE",
            "token": "legacy-verification-token",
            "action_id": action_id,
            "block_id": action_id,
            "value": value,
            "container": {"type": "view", "view_id": view_id},
        }
        if view_id:
            with self.lock:
                payload["view"] = self._public(json.loads(json.dumps(self.views[view_id])))
        return self._interaction(payload)

    def event(
        self, event: dict[str, Any], *, retry_num: int | None = None, team: str = TEAM
    ) -> Reply:
        body = {
            "token": "legacy-verification-token",
            "team_id": team,
            "api_app_id": "A0FAKE",
            "event": {"event_ts": f"{time.time():.6f}", **event},
            "type": "event_callback",
            "event_id": f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "team_id": team,
                    "user_id": self._bot_user(team),
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return self.post_signed(json.dumps(body).encode(), "application/json", headers=headers)


def wait_for(check: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- running mailbolt against the fake ----------------------------------------------------


@dataclass
class Mailbolt:
    """A running mailbolt server wired to a ``SlackFake``."""

    fake: SlackFake
    settings: Any
    deps: Any
    runner: Any
    server: Any
    listeners: Any = None  # the app's ListenerExecutor
    wiring: Any = None  # the composition root (sender accounts)
    outbox: Path = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Path(self.settings.sandbox_outbox)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every listener Slack's requests so far started has finished.

        Bolt submits a request's lazy listeners before it answers, so after this an
        assertion that something did not happen is not a race with a slow thread.
        """
        assert self.listeners.wait_idle(timeout), "listeners still running after the deadline"

    def eml_files(self) -> list[Path]:
        return sorted(self.outbox.glob("*.eml")) if self.outbox.is_dir() else []


@contextmanager
def running_mailbolt(
    settings: Any,
    fake: SlackFake,
    *,
    status_interval: float = 0.2,
    transport: Any = None,
    port: int = 0,
    clock: Callable[[], float] | None = None,
    hand_off: bool = False,
    many_workspaces: bool = False,
) -> Iterator[Mailbolt]:
    """The real app (Bolt, WebClient, waitress) on a free port, talking to ``fake``.

    ``transport`` replaces the sandbox transport (a test double of the port);
    ``clock`` the wall clock the use cases read (a scheduled time comes sooner).
    ``hand_off``: as ``serve --no-send``, campaigns are left to workers.
    ``many_workspaces``: installed per workspace through ``/slack/install`` (no
    ``SLACK_BOT_TOKEN``; ``PUBLIC_BASE_URL`` is the server's own URL), see
    ``tests/fakes/workspaces.py``.
    """
    from bot.runner import Runner
    from bot.slack.app import ListenerExecutor, build_app
    from bot.web import WebServer, make_wsgi_app
    from bot.wiring import Wiring

    late: dict[str, Any] = {}  # the WSGI app, built once the server's URL is known
    server = WebServer(lambda env, start: late["app"](env, start), "127.0.0.1", port)
    settings = settings.replace(
        slack_bot_token=fake.bot_token,
        slack_signing_secret=fake.signing_secret,
        slack_api_url=fake.api_url,
    )
    if many_workspaces:
        settings = settings.replace(
            slack_bot_token="",
            slack_client_id=fake.client_id,
            slack_client_secret=fake.client_secret,
            slack_oauth_authorize_url=fake.authorize_url,
            public_base_url=server.url,
        )
    wiring = Wiring(settings)
    deps = wiring.default_deps()
    if transport is not None:
        deps.transport = lambda: transport
    if clock is not None:
        deps.clock = clock
    runner = Runner(deps, deps_for=wiring.deps_for, due_check_seconds=0.5, hand_off=hand_off)
    listeners = ListenerExecutor()
    app = build_app(
        settings,
        deps,
        runner,
        status_interval=status_interval,
        checking_min_seconds=0.0,
        listener_executor=listeners,
        wiring=wiring,
    )
    oauth = wiring.oauth_pages(lambda account: runner.resume_paused(account.address))
    late["app"] = make_wsgi_app(settings, deps.store, app, oauth=oauth)
    server.start()
    fake.app_url = f"{server.url}/slack/events"
    runner.open()
    try:
        yield Mailbolt(fake, settings, deps, runner, server, listeners, wiring)
    finally:
        runner.wait_idle(30)
        runner.close()
        server.stop()


def compose_values(
    *,
    template: str | None = "welcome",
    paste: str = "",
    people: list[str] | None = None,
    files: list[dict[str, Any]] | None = None,
    subject: str = "",
    variables: str = "",
    channel: str = "",
    skip_invalid: bool = False,
    sender: str | None = None,
    groups: list[tuple[str, str]] | None = None,
    channels: list[str] | None = None,
    include_guests: bool = False,
) -> dict[str, Any]:
    """The compose modal's ``state.values`` as Slack sends them on submit
    (``sender``: the From menu's choice, when the form has one; ``groups`` as
    (id, label) pairs)."""
    from bot.slack import views

    def field(block: str, value: dict[str, Any]) -> dict[str, Any]:
        return {block: {views.ACTION: value}}

    values: dict[str, Any] = {}
    values |= field(
        views.B_TEMPLATE,
        {
            "type": "static_select",
            "selected_option": {"value": template, "text": {"type": "plain_text", "text": template}}
            if template
            else None,
        },
    )
    values |= field(views.B_RECIPIENTS, {"type": "plain_text_input", "value": paste or None})
    values |= field(views.B_PEOPLE, {"type": "multi_users_select", "selected_users": people or []})
    values |= field(views.B_CSV, {"type": "file_input", "files": files or []})
    values |= field(views.B_SUBJECT, {"type": "plain_text_input", "value": subject or None})
    values |= field(views.B_VARIABLES, {"type": "plain_text_input", "value": variables or None})
    values |= field(
        views.B_CHANNEL,
        {"type": "conversations_select", "selected_conversation": channel or None},
    )
    skip = [{"value": views.OPT_SKIP_INVALID}] if skip_invalid else []
    values |= field(views.B_OPTIONS, {"type": "checkboxes", "selected_options": skip})
    if sender is not None:
        chosen = {"value": sender, "text": {"type": "plain_text", "text": sender}}
        values |= field(views.B_FROM, {"type": "static_select", "selected_option": chosen})
    values[views.B_GROUPS] = {
        views.A_GROUPS: {
            "type": "multi_external_select",
            "selected_options": [
                {"value": g, "text": {"type": "plain_text", "text": label}}
                for g, label in groups or []
            ],
        }
    }
    values |= field(
        views.B_CHANNELS,
        {"type": "multi_conversations_select", "selected_conversations": channels or []},
    )
    guests = [{"value": views.OPT_INCLUDE_GUESTS}] if include_guests else []
    values |= field(views.B_GUESTS, {"type": "checkboxes", "selected_options": guests})
    return values


def confirm_values() -> dict[str, Any]:
    """The preview's large-send confirmation box, ticked."""
    from bot.slack import views

    return {
        views.B_CONFIRM: {
            views.ACTION: {
                "type": "checkboxes",
                "selected_options": [{"value": views.OPT_CONFIRMED}],
            }
        }
    }
