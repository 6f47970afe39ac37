"""Floor 1, what a run is: RunConfig, the backbone registry and the transfer strategies, as data. Imports only floor 0."""
