"""Hub and local model loading, shared pixel preprocessing and the builders that turn options
into segmenters and propagators: the one layer that knows both halves of the decoupled design
(``deva.segmenters`` and ``deva.propagation`` never import each other)."""
