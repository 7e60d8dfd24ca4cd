#!/usr/bin/env python3
"""Writes the shipped traces of `powerstack sim cluster` (docs/traces/*.toml), deterministically.

Each trace is written for a 64-node cluster (`--nodes` scales the jobs' node counts) and holds
more work than an hour on its nodes can finish, so that the queue never empties and the work done
in the horizon measures throughput. Job shapes are a handful of kinds (below), sizes 1 to 16
nodes, arrivals spread over the first 40 minutes. Run from the repository root.
"""
import random

CPU_DOMAINS = """
[[node.domains]]
kind = "cpu"
count = 2
idle_watts = 60
max_watts = 270
min_cap_watts = 90

[[node.domains]]
kind = "memory"
count = 2
idle_watts = 10
max_watts = 40
"""

CPU_NODE = """[node]
# A dual-socket CPU server (docs/budget.md, "The node model"): 2 x 270 W packages (idle 60 W,
# lowest RAPL limit 90 W), 2 x 40 W of memory (idle 10 W, no DRAM limit: counted uncappable),
# 120 W of board, fans, network and disks. Uncapped 698 W computing, 260 W idle.
base_watts = 120
""" + CPU_DOMAINS

GPU_NODE = """[node]
# A 4-GPU node: 4 x 700 W GPUs (idle 80 W, as an H200 measured idle at 77-117 W; lowest limit
# 200 W), 2 x 270 W packages (idle 60 W, lowest 90 W), 2 x 40 W of memory (uncappable), 300 W of
# board, fans, network and disks.
base_watts = 300

[[node.domains]]
kind = "gpu"
count = 4
idle_watts = 80
max_watts = 700
min_cap_watts = 200
""" + CPU_DOMAINS

# name: (phases [(kind, work_s)], repeat range)
KINDS = {
    "cfd": ([("compute", 120), ("memory", 30), ("idle", 10)], (4, 8)),
    "md": ([("compute", 200), ("idle", 5)], (3, 6)),
    "stencil": ([("memory", 90), ("compute", 20), ("idle", 10)], (4, 8)),
    "graph": ([("memory", 150), ("idle", 20)], (3, 6)),
    "io": ([("compute", 60), ("idle", 90)], (3, 6)),
    "train": ([("gpu", 300), ("idle", 20), ("compute", 30)], (3, 6)),
    "infer": ([("gpu", 60), ("idle", 60)], (4, 8)),
}

TRACES = {
    "mixed": ("compute, memory-bound and I/O-heavy CPU jobs, evenly mixed", CPU_NODE,
              {"cfd": 3, "md": 2, "stencil": 3, "graph": 2, "io": 2}),
    "compute-heavy": ("mostly compute-bound CPU jobs", CPU_NODE,
                      {"cfd": 4, "md": 5, "stencil": 1, "io": 1}),
    "memory-heavy": ("mostly memory-bound CPU jobs", CPU_NODE,
                     {"stencil": 4, "graph": 4, "cfd": 1, "io": 1}),
    "gpu": ("GPU training and inference with CPU phases, on 4-GPU nodes", GPU_NODE,
            {"train": 3, "infer": 2, "cfd": 1}),
}


def jobs(rng, weights, count, node_max):
    names = [k for k, w in weights.items() for _ in range(w)]
    out = []
    for i in range(count):
        kind = rng.choice(names)
        phases, (lo, hi) = KINDS[kind]
        nodes = rng.choice([1, 2, 2, 4, 4, 4, 8, 8, 16])
        arrive = round(rng.uniform(0, 2400) if i >= 16 else 0.0, 1)
        priority = rng.choice([0, 0, 0, 1, 2])
        request = None
        if rng.random() < 0.2:
            request = round(nodes * node_max * rng.choice([0.65, 0.75, 0.85]))
        out.append((f"{kind}-{i:03}", arrive, nodes, priority, request, phases, rng.randint(lo, hi)))
    return sorted(out, key=lambda j: (j[1], j[0]))


def write(name, description, node, weights):
    # A request is a share of the node's uncapped highest draw, per node.
    node_max = 3720 if node is GPU_NODE else 698
    rng = random.Random(f"powerstack-{name}")
    lines = [f"# Written by scripts/gen-traces.py; see docs/budget.md.",
             f'description = "{description}"', "cluster_nodes = 64", "", node]
    for jid, arrive, nodes, priority, request, phases, repeat in jobs(rng, weights, 160, node_max):
        lines.append("[[jobs]]")
        lines.append(f'id = "{jid}"')
        lines.append(f"arrive_s = {arrive}")
        lines.append(f"nodes = {nodes}")
        lines.append(f"priority = {priority}")
        if request is not None:
            lines.append(f"power_watts = {request}")
        lines.append(f"repeat = {repeat}")
        ph = ", ".join(f'{{ kind = "{k}", work_s = {w} }}' for k, w in phases)
        lines.append(f"phases = [{ph}]")
        lines.append("")
    with open(f"docs/traces/{name}.toml", "w") as f:
        f.write("\n".join(lines))


for name, (description, node, weights) in TRACES.items():
    write(name, description, node, weights)
