"""claims-dc's backup library: one module per concern, like borgbackup's source.

chunker      content-defined chunking (FastCDC), its parameters kept in the repository
crypto       the master key, blob IDs, AES-256-GCM sealing, KMS and key-file wrapping
storage      S3 (Object Lock, checksums, retries) and local directories; fault injection
repository   the format (FORMAT.md): packs, indexes, snapshots, leases, the commit protocol
sources      what is backed up: PostgreSQL (pg_dump), directories
archiver     backup, restore, verify, prune, drill: what the CLI (ops/backup.py) calls
retention    the generations policy
report       the auditors' run reports
settings     the configuration file
"""
