"""Data-center components: DataCenterHosts, BackupStorage, roles."""
