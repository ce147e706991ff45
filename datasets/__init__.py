"""The bundled datasets (JSONL), shipped inside the package as ``toolkit._datasets``."""
