"""Counters read from the switches turned into what an operator watches: rates and history.

Pure: no asyncio, no clock. The poller (controller/flowstats.py) reads the switches and passes
the time of each reading in, so the arithmetic is tested with made-up times.
"""
