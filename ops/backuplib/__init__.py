"""claims-dc's backup library: one module per concern, like borgbackup's source.

chunker      content-defined chunking (FastCDC), its parameters kept in the repository
crypto       the master key, blob IDs, AES-256-GCM sealing, KMS and key-file wrapping
storage      S3 (Object Lock, checksums, retries) and local directories; fault injection
repository   the format (FORMAT.md): packs, indexes, snapshots, leases, the commit protocol
sources      what is backed up: PostgreSQL (pg_dump, base backups), directories
archiver     backup, restore, verify, prune: what the CLI (ops/backup.py) calls
drill        the restore drill into a scratch PostgreSQL, compared with the live one
wal          the WAL archive (wal-push, wal-fetch) for point-in-time recovery
recovery     bringing a live PostgreSQL back: a base backup and the WAL, or a dump
retention    the generations policy
report       the auditors' run reports
progress     progress on stderr
settings     the configuration file
"""
