"""Compose projects the containers platform's tests bring up (docker-compose v1 on Podman)."""
