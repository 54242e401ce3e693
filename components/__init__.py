"""kfedge package."""
