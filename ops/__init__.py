"""claims-dc operations: the local lab, backups, access reviews and shared helpers."""
