"""The worker layer: what `runplane worker` processes run (remote tool tasks, runs to resume)."""
