"""The emulated data center: Open vSwitch service, leaf-spine address plan, Mininet lab."""
