"""Benchmarks: Citygate against the Node.js federation gateways (see bench/README.md)."""
