"""Floor 6, running it for people: background jobs and the queue, hosted sessions and the sweep, run comparison."""
