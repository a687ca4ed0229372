-- Failed logins slow the one who fails, they never lock an account: each failure from an
-- address for a username (and, more loosely, from an address for any username) pushes that
-- pair's next allowed attempt further out, up to a cap. Nobody elsewhere is kept out.
CREATE TABLE login_throttle (
    username     text NOT NULL,  -- '' for the address as a whole
    address      inet NOT NULL,
    failures     integer NOT NULL,
    not_before   timestamptz NOT NULL,
    last_failure timestamptz NOT NULL,
    PRIMARY KEY (username, address)
);
CREATE INDEX login_throttle_by_age ON login_throttle (last_failure);

-- The account-wide lock these replace.
ALTER TABLE users DROP COLUMN failed_logins, DROP COLUMN locked_until;
