"""A channel setting for many workspaces: ``APPROVAL_CHANNEL`` and ``STATUS_CHANNEL``.

Why it looks like this:
- A channel ID belongs to one Slack workspace. Posting workspace B's approval
  request with B's token into A's channel fails (``channel_not_found``) forever,
  so a setting that names a channel must be able to name one per workspace.
- The old form, one bare ID, keeps its meaning: it applies to every workspace,
  which is right for one workspace. In a list of ``TEAM:CHANNEL`` pairs one bare
  ID may stay as the default for the workspaces not named.
- Parsed once (``ChannelMap.parse``, called by ``bot.config``'s range check), then
  asked ``for_team(team)`` everywhere: nobody splits the string a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.handlers.team_ids import TEAM_ID

#: Public (C…) and private (G…) channels; STATUS_CHANNEL also takes a DM (D…).
CHANNEL_PREFIXES = ("C", "G")
WITH_DMS = ("C", "G", "D")
_WHERE = "(the channel's details show its ID at the bottom)"


@dataclass(frozen=True)
class ChannelMap:
    """Which channel each workspace uses: named teams first, else ``default``.

    ``default`` ``""`` and no teams: no channel anywhere. ``teams`` is sorted
    (team, channel) pairs, so two equal settings compare equal.
    """

    default: str = ""
    teams: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, raw: str, prefixes: tuple[str, ...] = CHANNEL_PREFIXES) -> ChannelMap:
        """``C0123ABCD``, or ``T0AAA:C0123ABCD,T0BBB:C0456EFGH`` with at most one bare
        ID among the pairs (the default). ``ValueError`` says what is wrong."""
        default = ""
        teams: dict[str, str] = {}
        for part in (p.strip() for p in raw.split(",")):
            if not part:
                continue
            if ":" not in part:
                _check_channel(part, prefixes, part)
                if default:
                    raise ValueError(
                        f"names two channels without a workspace ({default} and {part}); "
                        "give at most one as the default and the others as TEAM:CHANNEL"
                    )
                default = part
                continue
            team, _, channel = (s.strip() for s in part.partition(":"))
            if not team or not channel or ":" in channel:
                raise ValueError(
                    f"has {part!r}, which is not TEAM:CHANNEL (for example T0123ABCD:C0123ABCD)"
                )
            if not TEAM_ID.match(team):
                raise ValueError(
                    f"has {part!r}: {team!r} is not a Slack workspace ID (they look like "
                    "T0123ABCD: it follows /client/ in the address of Slack in a browser)"
                )
            _check_channel(channel, prefixes, part)
            if team in teams:
                raise ValueError(
                    f"names workspace {team} twice ({team}:{teams[team]} and {part}); "
                    "give each workspace one channel"
                )
            teams[team] = channel
        return cls(default, tuple(sorted(teams.items())))

    def for_team(self, team: str) -> str:
        """The channel of workspace ``team`` (``""``: the CLI's, which uses the
        default); ``""`` when there is none for it."""
        return dict(self.teams).get(team, self.default) if team else self.default

    def named(self) -> frozenset[str]:
        """The workspaces given a channel of their own."""
        return frozenset(team for team, _ in self.teams)

    def __bool__(self) -> bool:
        """Some workspace has a channel."""
        return bool(self.default or self.teams)

    def __str__(self) -> str:
        """The setting's text, normalized (``T0AAA:C1,T0BBB:C2,C3``)."""
        pairs = [f"{team}:{channel}" for team, channel in self.teams]
        return ",".join([*pairs, *([self.default] if self.default else [])])


#: No channel for any workspace (the settings' default).
NO_CHANNELS = ChannelMap()


def _check_channel(channel: str, prefixes: tuple[str, ...], part: str) -> None:
    if not (channel[:1] in prefixes and channel[1:].isalnum() and channel.isupper()):
        where = "" if channel == part else f" in {part!r}"
        raise ValueError(
            f"has {channel!r}{where}, which is not a channel ID: give an ID such as "
            f"C0123ABCD {_WHERE}, not a name, or TEAM:CHANNEL pairs separated by commas"
        )
