"""Containers driven through the Docker Engine API, served by Docker or by Podman."""
