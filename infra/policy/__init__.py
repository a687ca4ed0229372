"""The claims-dc policy pack: rules in rules.py, the Pulumi adapter in __main__.py."""
