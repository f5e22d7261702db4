"""The shapes of Stripe's ids crossfill accepts from outside: one place for each.

Matched with ``fullmatch`` (or anchored with ``\\Z``), never ``$``, which lets a trailing newline
through into a Redis key.
"""
from __future__ import annotations

import re

EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,250}\Z")  #: an Event
SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}\Z")  #: a Checkout Session
ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9_]{1,250}\Z")  #: a connected account (Connect events carry one)
