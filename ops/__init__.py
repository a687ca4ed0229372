"""claims-dc operations: the operators' tools on the control node and the hosts.

The inventory, backups, the access review, key rotation, the fleet, the evidence pack, the
signed bundles and the vault, each a package or module here; the lab is not (lab/).
"""
