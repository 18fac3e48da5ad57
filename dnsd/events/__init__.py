"""The event stream: what changed, in Docker's `events.Message` shape (messages), kept in a
ring and fanned out to watchers (bus), selected by Docker's filters (select)."""
