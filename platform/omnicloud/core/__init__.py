"""Cross-cutting machinery: database, tenancy, security, errors, paging, idempotency,
audit, events, jobs, cache and money. No business rules live here."""
