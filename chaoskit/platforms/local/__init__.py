"""The local lab: the payment stack on emulated nodes (netns + cgroups as root, else loopback)."""
