"""In-context learning: the method, its endpoint backends and demo selection."""
