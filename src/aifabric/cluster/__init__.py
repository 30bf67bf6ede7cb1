"""One fabric, many workloads: training, inference and storage traffic on one flow engine
(``aifabric simulate cluster``; seed 004's strategies, seed 002's storage traffic)."""
