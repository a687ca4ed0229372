-- Caseworkers' accounts, their sessions, and the append-only audit log.
CREATE TABLE users (
    id            serial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-z][a-z0-9_.-]{2,31}$'),
    role          text NOT NULL CHECK (role IN ('caseworker', 'supervisor', 'auditor', 'admin')),
    password_hash text NOT NULL,  -- argon2id
    disabled      boolean NOT NULL DEFAULT false,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    token_sha256 char(64) PRIMARY KEY,  -- the cookie's token is never stored, only its hash
    user_id      integer NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    address      inet
);

CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text,
    address inet,
    success boolean NOT NULL
);

-- Append-only for everyone, the owner included: history is never rewritten.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
