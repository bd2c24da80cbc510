"""The local payment lab's lifecycle: `chaoskit lab up/down/status/logs`, its nodes (network
namespaces with cgroups as root, process groups on loopback otherwise, or containers of the stack
image with `--runtime containers`: see `runtime`), HAProxy, Toxiproxy and PostgreSQL. Faults
reach the lab through `chaoskit.platforms.local.LocalPlatform`."""
