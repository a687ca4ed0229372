"""Data-center components: DataCenterHosts, BackupStorage, roles (issue 3)."""
