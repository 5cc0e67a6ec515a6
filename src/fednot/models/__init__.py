"""Models with named layers, the model registry, and the layer graph NoT selects from."""
