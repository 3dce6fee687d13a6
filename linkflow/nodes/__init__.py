"""Node types: the SDK that node authors use, the registry, and the built-in nodes."""
