"""Key rotation without lockout: one phase machine for every secret, and an
append-only ledger of what happened, on the control node."""
