"""The engine: recompute desired values, decide what to push, push it, record the replies.

- :mod:`syncd.engine.recompute` turns balances and reservations into desired values;
- :mod:`syncd.engine.feeds` judges the source feeds a channel depends on;
- :mod:`syncd.engine.core` holds the :class:`Engine` that the daemon and
  `syncd once` drive.
"""

from syncd.engine.core import CONFIRM_TTL, ChannelCycle, Engine
from syncd.engine.feeds import FeedInfo, is_stale

__all__ = ["CONFIRM_TTL", "ChannelCycle", "Engine", "FeedInfo", "is_stale"]
