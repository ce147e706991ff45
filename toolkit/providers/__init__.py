"""Provider adapters: each translates one wire format into normalized events, and nothing else."""
