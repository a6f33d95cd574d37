"""Tenant webhooks: subscriptions, HMAC-signed deliveries with retries, and the event log."""
