"""Data-center components: EnvironmentKeys, DataCenterHosts (instances and their roles),
BackupStorage, AuditTrail and StatusStore."""
