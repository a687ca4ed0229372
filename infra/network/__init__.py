"""Network components: ClosedSegment, LgwanLink and DedicatedLine; the rules each filter
gets from the flow policy (flows) and the AWS services an endpoint may reach (services)."""
