"""The controller: switch events in, compiled intent out. The one stateful core of vtap."""
