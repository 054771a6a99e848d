"""Domain objects shared by the pure core (topology, compiler) and the edges (API, channel)."""
