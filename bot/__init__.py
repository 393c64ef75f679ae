"""mailbolt: personalized email from Slack through the Gmail API, safely."""

__version__ = "0.1.0"
