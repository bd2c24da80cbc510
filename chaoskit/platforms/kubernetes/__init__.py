"""The kubernetes platform: faults, recovery and distributed load through the Kubernetes API."""
