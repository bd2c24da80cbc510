"""The local platform: the adapter through which faults, probes and the engine use a lab."""
