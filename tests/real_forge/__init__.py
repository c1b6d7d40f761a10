"""End-to-end tests against a real Forge / Forge Neo (opt-in: ORCH_FORGE_URL)."""
