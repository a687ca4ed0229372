"""Network components: ClosedSegment, LgwanLink, DedicatedLine."""
