"""The OpenFlow model vtap speaks: neutral rules, the pipeline layout, and desired-vs-actual diffs.

Imported by the compiler (which produces rules) and by the OpenFlow channel (which encodes them);
it imports neither.
"""
