"""claims-dc infrastructure: the typed stack config and the Pulumi program built from it."""
