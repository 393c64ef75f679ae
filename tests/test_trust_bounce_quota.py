"""A bounce scan spends the sending account's quota, and says so in the quota log.

The scan (``bot/handlers/bounces.py``) paces and records each read; the Gmail
adapter only reads. Checked against the Gmail fake's own request log: every
list and get the mailbox served is in mailbolt's quota log, at Gmail's price.
"""

from __future__ import annotations

from bot.handlers.quota import GET_UNITS, LIST_UNITS, SEND_UNITS
from bot.wiring import Wiring
from tests.test_bounces import PEOPLE, fake, reader, send_news, sent_to  # noqa: F401 - fixtures


def _gmail_price(requests_by_path: dict[str, int]) -> int:
    """Units the fake charged: sends, lists (``…/messages``) and gets (``…/messages/<id>``)."""
    total = 0
    for path, n in requests_by_path.items():
        if path.endswith("/messages/send"):
            total += SEND_UNITS * n
        elif path.endswith("/messages"):
            total += LIST_UNITS * n
        elif "/messages/" in path:
            total += GET_UNITS * n
    return total


def test_a_scan_logs_every_read_it_made_against_the_sending_account(reader, store, fake):  # noqa: F811
    send_news(reader, store, PEOPLE[:2])
    fake.bounce(sent_to(fake, "bob@example.com"), "bob@example.com")
    wiring = Wiring(reader, store)
    before = store.quota.units_since(0, wiring.account)

    result = wiring.scan_bounces()

    assert (result.reports, result.new) == (1, 1)
    spent = store.quota.units_since(0, wiring.account) - before
    assert spent == LIST_UNITS + GET_UNITS
    assert store.quota.units_since(0, wiring.account) == _gmail_price(fake.requests_by_path)
