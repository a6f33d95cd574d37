"""Tenant administration machinery: plugin enablement, the audit log, webhooks."""
