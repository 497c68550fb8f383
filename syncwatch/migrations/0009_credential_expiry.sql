-- Credential expiry, version 9 (7 and 8 are the reconciler's): user tokens may expire like API keys
-- (api_keys.expires_at exists since 0001). Nullable: NULL is "never expires", so every existing user
-- keeps working.
ALTER TABLE users ADD COLUMN IF NOT EXISTS expires_at Nullable(DateTime64(6, 'UTC')) AFTER created_at;
