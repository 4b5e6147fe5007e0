"""Developer tools for Weft: building tiny test models, deriving shipped data files."""
