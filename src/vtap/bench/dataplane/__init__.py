"""`vtap bench dataplane`: the seed's Section V data-plane measurements on this machine."""
