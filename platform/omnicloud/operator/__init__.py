"""Tenant provisioning for the SaaS operator."""
