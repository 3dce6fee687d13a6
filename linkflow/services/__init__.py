"""Use cases: where the engine meets the store, queue and bus. No HTTP here."""
