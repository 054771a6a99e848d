"""`vtap trace`: where a packet goes, from the controller's own model of the rules it compiled
(walker.py), and optionally what each switch really does with it (`ovs-appctl ofproto/trace`)."""
