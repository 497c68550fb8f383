-- Query and action API, version 4: the people who use the API and their roles.

-- One row version per change of a user (created, revoked); reads use FINAL. Tokens are stored as
-- the SHA-256 of their secret half, like API keys. ORDER BY user_id: looked up by id only.
CREATE TABLE IF NOT EXISTS users (
    user_id String,
    name String,
    role LowCardinality(String),
    token_sha256 String,
    created_at DateTime64(6, 'UTC'),
    revoked_at Nullable(DateTime64(6, 'UTC')),
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY user_id;
