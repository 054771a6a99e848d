"""Pure compilation of intent (forwarding paths, TAP policies) into neutral OpenFlow rules."""
