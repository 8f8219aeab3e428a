"""Data in: the shapes world generator, robust image loading, caption/pair files and sample sets."""
