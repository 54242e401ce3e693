"""SeaweedFS fixtures (being written)."""
