"""vtap: a virtual TAP for data-center and NFV networks on Open vSwitch."""

__version__ = "0.1.0"
