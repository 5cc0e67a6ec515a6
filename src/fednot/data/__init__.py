"""Data: readers of the standard on-disk formats, partitioners, client views, forget splits."""
