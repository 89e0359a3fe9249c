"""Problems from results: soft and hard states, flapping, mass silence (pure rules, no storage)."""
