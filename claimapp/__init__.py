"""The reference claim application that claims-dc installs, backs up and audits."""
