"""The query and action API under /api/v1: people (users with roles), not integrations (API keys)."""
