"""The fleet: one environment per municipality, each a stack file in one directory."""
