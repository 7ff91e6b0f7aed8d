"""Notifications, application side: the outbox table, who gets what, the dispatcher job, the bell and the
preferences. The channels themselves live in the top-level `notifications` package."""
