"""Secrets at rest on the control node: Ansible Vault, with its password wrapped by KMS.

Why KMS Decrypt of a wrapped key rather than an SSM Parameter Store SecureString: the control
node sits outside the VPC and needs only one call, Decrypt, which CloudTrail records with the
caller and the encryption context; the wrapped key lives beside the inventory, so an inventory
copied elsewhere is useless without the KMS key's grant; and there is no second store to
provision, name and keep in step per environment (a SecureString is itself KMS-encrypted, so it
would add a service without adding protection).

Modules: `keyring` (the wrapped vault password: made, unwrapped), `sealed` (secret files, each
sealed whole with Ansible Vault: Ansible opens them where it reads them, the tools through
this module), `client` (the vault-id client script Ansible runs for the password), `scan`
(plaintext secrets left in an inventory directory), `environment` (a new inventory's vault).
"""

from __future__ import annotations

# The vault-id of every sealed file and of the client that opens them.
VAULT_ID = "claims-dc"


class VaultError(Exception):
    """The vault could not be opened or written; the message names the file or the call."""
