#!/usr/bin/env python3
"""Verifies webhook requests captured by tests/webhooks.rs with the Standard Webhooks
reference library: reads a JSON list of {"secret", "headers", "body"} on stdin and exits
non-zero (naming the request) unless every one verifies."""
import json
import sys

from standardwebhooks import Webhook

captured = json.load(sys.stdin)
for i, c in enumerate(captured):
    try:
        Webhook(c["secret"]).verify(c["body"], c["headers"])
    except Exception as e:  # the library raises WebhookVerificationError
        print(f"request {i} ({c['headers'].get('webhook-id')}) does not verify: {e}", file=sys.stderr)
        sys.exit(1)
print(f"{len(captured)} verified")
