"""Network components: ClosedSegment, LgwanLink, DedicatedLine (issue 3)."""
