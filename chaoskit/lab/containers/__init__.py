"""The lab's containers runtime (`chaoskit lab up --runtime containers`): every node a container
from the payment stack's image on a lab network (a /24 of 198.18.0.0/15, internal: no route
out), run by any Docker Engine API (chaoskit's Podman service by default).

    engine      the engine and the image, checked before `lab up` makes anything; labels
    network     the lab network (its bridge is the host's side: Toxiproxy listens there)
    node        a node's container: its services, addresses, logs, weights
    supervisor  the node container's init: runs the node's services, one dies: all go
    runtime     ContainerRuntime, the lab's NodeRuntime for container nodes
    sweep       removing everything of a lab from the engine, and asking the engine it is gone

Node loss, co-location and capacity reuse the containers platform's engine code
(`chaoskit.platforms.containers`): the same marks, batch containers and address pinning.
"""
