"""Lifecycle events: an outbox in the registry, CloudEvents 1.0 envelopes, webhook delivery.

- types.py: the registry of event types (`mlc.model.registered`, ...), refusing overwrites.
- outbox.py: `record` writes an event in the caller's registry transaction (the change and its
  event commit together or not at all); `read` and `follow` list them.
- hooks.py: webhook subscriptions (URL, event types, optional secret), stored in the registry.
- deliver.py: the deliverer that POSTs each event to each hook, signed, retried with
  exponential backoff on an injectable clock, every attempt recorded; at-least-once.

Nothing is imported here, so the registry imports the outbox without the deliverer's HTTP code.
"""
