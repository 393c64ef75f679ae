"""Test sends: the previewed first message, sent to the person who asks.

This module owns ``send_test`` and its outcome (``TrialSend``). It is named
``trial_send`` so that pytest's ``test_*.py`` pattern never mistakes it for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import (
    MailboltError,
    UncertainSendError,
)
from bot.handlers.campaign import (
    FAILED,
    SENDING,
    SENT,
    UNCERTAIN,
    Deps,
    Plan,
    list_unsubscribe_headers,
    message_variables,
)
from bot.handlers.compose import build_message
from bot.handlers.quota import SEND_UNITS
from bot.handlers.send_loop import daily_left
from bot.handlers.unsubscribe import make_token, unsubscribe_url
from bot.models import OutgoingMessage, Recipient, RenderedMessage
from bot.records import MessageState

TEST_MARK = "[TEST]"


@dataclass
class TrialSend:
    """What became of "send a test to me": ``state`` is sent, failed, uncertain or
    not_sent (refused before anything left); ``detail`` says why, in words."""

    state: str
    to: str
    detail: str = ""
    test_id: int | None = None


def send_test(
    plan: Plan, deps: Deps, *, to: Recipient, requested_by: str, reference: str
) -> TrialSend:
    """Send exactly the previewed first message to ``to``, marked as a test.

    The body, subject and values are those of the first recipient shown in the
    preview; only the address it goes to differs, the subject starts with
    ``[TEST]``, and an unsubscribe link names the tester (clicking it must not
    unsubscribe the real recipient). It is recorded as a test send, not as a
    campaign: it is audited and spends the account's quota and daily limit, but
    does not show in campaign lists or delivery statistics. One per ``reference``.
    """
    store = deps.store
    earlier = store.test_sends.by_reference(reference)
    if earlier is not None and earlier.state in (SENT, SENDING, UNCERTAIN):
        return TrialSend("not_sent", to.email, "a test of this preview was already sent")
    if not plan.to_send or plan.first is None:
        return TrialSend("not_sent", to.email, "nobody in the preview would get a message")
    first = plan.to_send[0]
    variables = message_variables(
        deps, first.email, first.name, first.variables, plan.request.common_vars, 0, plan.category
    )
    if variables["unsubscribe_url"]:
        token = make_token(deps.unsubscribe_secret, to.email, 0)
        variables["unsubscribe_url"] = unsubscribe_url(deps.policy.unsubscribe_base, token)
    rendered = plan.renderer.render(variables, who=first.label)
    rendered = RenderedMessage(f"{TEST_MARK} {rendered.subject}", rendered.html, rendered.text)
    if daily_left(deps) == 0:
        return TrialSend("not_sent", to.email, "the daily sending limit is reached")
    message_id = deps.envelope.new_message_id()
    files = plan.request.attachments  # the first recipient's files, as they would get them
    raw = build_message(
        deps.envelope,
        to_address=to.email,
        to_name=to.name,
        rendered=rendered,
        message_id=message_id,
        extra_headers={**list_unsubscribe_headers(deps, variables), "X-Mailbolt-Test": "yes"},
        attachments=[f.part for f in files.for_row(first.variables)] if files else (),
    )
    deps.pacer.acquire(SEND_UNITS)
    test_id = store.test_sends.start(
        account=deps.account,
        requested_by=requested_by,
        email=to.email,
        template=plan.renderer.info.name,
        subject=rendered.subject,
        message_id=message_id,
        reference=reference,
        team=plan.request.team,  # the workspace of the preview or of the campaign
    )
    outcome = TrialSend(SENT, to.email, test_id=test_id)
    provider_id = ""
    try:
        store.quota.record_units(SEND_UNITS, "messages.send", account=deps.account)
        provider_id = deps.transport().send(OutgoingMessage(test_id, 0, to.email, message_id, raw))
    except UncertainSendError as exc:
        outcome = TrialSend(UNCERTAIN, to.email, str(exc), test_id)
    except MailboltError as exc:  # transient, permanent, quota, authorization: not sent
        outcome = TrialSend(FAILED, to.email, str(exc), test_id)
    store.test_sends.finish(
        test_id, MessageState(outcome.state), provider_id=provider_id, error=outcome.detail
    )
    return outcome
