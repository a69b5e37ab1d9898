"""Loopback simulators of every remote API syncd talks to."""
