"""Notifications (DESIGN section 14): events of the daemon sent to webhooks, Slack, Teams and GitHub statuses.

`events` defines what happened (pure data), `payloads` renders it for each kind of receiver (pure functions),
`config` reads the `notifications` section of the daemon's configuration and the `--notify` flags, and
`dispatch.Notifier` delivers in the background: filters, deduplication, a rate limit and retries per
receiver, and never a wait in the pass that emitted the event.
"""

from reconciler.daemon.notify.config import NotificationsConfig, NotifyConfigError, load_notifications
from reconciler.daemon.notify.dispatch import Notifier
from reconciler.daemon.notify.events import Event, EventKind

__all__ = ["Event", "EventKind", "NotificationsConfig", "Notifier", "NotifyConfigError", "load_notifications"]
